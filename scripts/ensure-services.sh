#!/usr/bin/env bash
# Make sure the brokers and databases the test suite talks to are up on loopback.
# RabbitMQ is mandatory; PostgreSQL is optional (its tests skip when it is absent).
set -euo pipefail

RABBIT_HOST=127.0.0.1
RABBIT_PORT="${GATEWAY_RABBIT_PORT:-5672}"
# Descriptors: a RabbitMQ 3.10 node reserves 3 per quorum queue replica and stops answering once its
# reservations pass its limit; 100 partners declare ~416 quorum queues (docs/deployment.md). A broker
# this script starts gets RABBIT_NOFILE (or the hard limit, if lower); one already running is only
# checked against RABBIT_NOFILE_NEEDED (416 x 3 + 1,024 for connections and the runtime).
RABBIT_NOFILE="${GATEWAY_RABBIT_NOFILE:-65536}"
RABBIT_NOFILE_NEEDED=2272
RABBIT_HOME=/var/lib/rabbitmq
RABBIT_SERVER=/usr/lib/rabbitmq/bin/rabbitmq-server
PG_HOST=127.0.0.1
PG_PORT=5432
WAIT_SECONDS="${GATEWAY_SERVICES_WAIT:-60}"

log() { printf 'ensure-services: %s\n' "$*"; }
warn() { printf 'ensure-services: WARNING: %s\n' "$*" >&2; }
die() {
    printf 'ensure-services: ERROR: %s\n' "$*" >&2
    exit 1
}

if [[ "${GATEWAY_SKIP_SERVICES:-0}" == "1" ]]; then
    log "GATEWAY_SKIP_SERVICES=1, leaving services alone"
    exit 0
fi

# Bounded so a filtered port cannot stall the probe.
port_open() {
    timeout 2 bash -c ": >/dev/tcp/$1/$2" 2>/dev/null
}

wait_for_port() {
    local host=$1 port=$2 deadline=$((SECONDS + WAIT_SECONDS))
    while ((SECONDS < deadline)); do
        port_open "$host" "$port" && return 0
        sleep 1
    done
    return 1
}

# Services need root to start or install; passwordless sudo is the fallback on workstations.
as_root() {
    if [[ $(id -u) -eq 0 ]]; then
        "$@"
    elif command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
        sudo -n "$@"
    else
        return 1
    fi
}

can_be_root() {
    [[ $(id -u) -eq 0 ]] || { command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; }
}

# An open port is not a working broker: a wedged node accepts TCP but never answers the AMQP
# protocol header. Send it and wait for the first byte of Connection.Start.
amqp_answers() {
    timeout 10 bash -c "exec 3<>/dev/tcp/$1/$2; printf 'AMQP\\0\\0\\011\\001' >&3; head -c 1 <&3 | grep -q ." 2>/dev/null
}

# A busy broker (hundreds of queues recovering, a test run hammering it) can take a while to answer:
# ask a few times before deciding it is wedged.
amqp_answers_soon() {
    local deadline=$((SECONDS + WAIT_SECONDS))
    while ((SECONDS < deadline)); do
        amqp_answers "$1" "$2" && return 0
        sleep 2
    done
    return 1
}

# The broker's usable descriptor limit, as the node itself counts it (rabbitmqctl needs the node's
# Erlang cookie: root, or the rabbitmq user); the limit of the process otherwise; empty if unknown.
rabbit_fd_limit() {
    local limit="" pid
    if command -v rabbitmqctl >/dev/null 2>&1 && can_be_root; then
        limit=$(as_root timeout 20 rabbitmqctl -q status --formatter json </dev/null 2>/dev/null |
            grep -o '"total_limit":[0-9]*' | head -n 1 | cut -d: -f2) || limit=""
    fi
    if [[ -z "$limit" ]]; then
        # The beam process of a node started from the distribution runs as the rabbitmq user.
        pid=$(pgrep -u rabbitmq -o beam.smp 2>/dev/null || true)
        if [[ -n "$pid" && -r /proc/$pid/limits ]]; then
            limit=$(awk '/^Max open files/ {print $4}' "/proc/$pid/limits")
        fi
    fi
    printf '%s' "$limit"
}

check_rabbitmq_limits() {
    local limit
    limit=$(rabbit_fd_limit)
    if [[ -z "$limit" ]]; then
        warn "could not read RabbitMQ's descriptor limit (needs root); 100 partners need >= $RABBIT_NOFILE_NEEDED (docs/deployment.md)"
        return 0
    fi
    if ((limit < RABBIT_NOFILE_NEEDED)); then
        warn "RabbitMQ's descriptor limit is $limit: about $((limit / 3)) quorum queues fit before the broker stops"
        warn "  answering, and 100 partners need >= $RABBIT_NOFILE_NEEDED. This script does not restart a broker it did not"
        warn "  start. Raise the limit and restart the broker yourself: under systemd, LimitNOFILE=$RABBIT_NOFILE in a"
        warn "  drop-in (systemctl edit rabbitmq-server); otherwise start it after \`ulimit -n $RABBIT_NOFILE\` (docs/deployment.md)."
    else
        log "RabbitMQ descriptor limit: $limit (100 partners need >= $RABBIT_NOFILE_NEEDED)"
    fi
}

# The health readings of /readyz and `run.py status` come from the management API (GET /api/nodes):
# AMQP reports no descriptor, memory or disk figures. The plugin ships with rabbitmq-server and needs
# nothing from the network, so a broker this script starts gets it. A broker already running is left as
# it is (enabling a plugin changes what other users of that broker see); only the hint is printed.
enable_management_offline() {
    command -v rabbitmq-plugins >/dev/null 2>&1 || return 0
    as_root rabbitmq-plugins --offline enable rabbitmq_management </dev/null >/dev/null 2>&1 ||
        warn "could not enable rabbitmq_management; the broker's health readings will say unknown"
}

management_hint() {
    if ! port_open "$RABBIT_HOST" 15672; then
        log "the RabbitMQ management API does not answer on $RABBIT_HOST:15672: /readyz and run.py status show the"
        log "  broker's health as unknown (enable it with: rabbitmq-plugins enable rabbitmq_management)"
    fi
}

# Start the installed broker with a raised descriptor limit. As root the node runs as the rabbitmq
# user, as the distribution's service would; the soft limit is raised as far as the hard limit allows.
start_rabbitmq() {
    local raise="ulimit -n $RABBIT_NOFILE 2>/dev/null || ulimit -n \"\$(ulimit -Hn)\""
    if can_be_root && id rabbitmq >/dev/null 2>&1 && [[ -x "$RABBIT_SERVER" ]]; then
        enable_management_offline
        as_root runuser -u rabbitmq -- bash -c \
            "$raise; cd $RABBIT_HOME && HOME=$RABBIT_HOME exec $RABBIT_SERVER -detached" </dev/null ||
            warn "rabbitmq-server -detached exited non-zero"
    else
        bash -c "$raise; exec rabbitmq-server -detached" </dev/null || warn "rabbitmq-server -detached exited non-zero"
    fi
}

ensure_rabbitmq() {
    if port_open "$RABBIT_HOST" "$RABBIT_PORT"; then
        if amqp_answers_soon "$RABBIT_HOST" "$RABBIT_PORT"; then
            log "RabbitMQ already answering on $RABBIT_HOST:$RABBIT_PORT"
            check_rabbitmq_limits
            management_hint
            return 0
        fi
        can_be_root || die "RabbitMQ on $RABBIT_HOST:$RABBIT_PORT accepts connections but does not speak AMQP; restart it"
        warn "RabbitMQ accepts connections but does not answer AMQP: restarting it"
        as_root pkill -9 -f beam.smp || true
        sleep 2
    fi

    if ! command -v rabbitmq-server >/dev/null 2>&1; then
        can_be_root || die "RabbitMQ is not running on $RABBIT_HOST:$RABBIT_PORT and not installed; install rabbitmq-server (needs root) or start a broker there"
        log "installing rabbitmq-server with apt-get"
        as_root apt-get update -q
        as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -q rabbitmq-server </dev/null
    fi

    log "starting RabbitMQ (rabbitmq-server -detached, descriptor limit $RABBIT_NOFILE or the hard limit)"
    # A non-zero exit can just mean the node is already booting; the port probe below decides.
    start_rabbitmq

    log "waiting up to ${WAIT_SECONDS}s for RabbitMQ"
    wait_for_port "$RABBIT_HOST" "$RABBIT_PORT" \
        || die "RabbitMQ did not start answering on $RABBIT_HOST:$RABBIT_PORT within ${WAIT_SECONDS}s (see /var/log/rabbitmq/)"
    # await_startup confirms the node finished booting, not just that the listener is bound.
    if command -v rabbitmqctl >/dev/null 2>&1 && can_be_root; then
        as_root timeout "$WAIT_SECONDS" rabbitmqctl -q await_startup </dev/null >/dev/null 2>&1 \
            || warn "rabbitmqctl await_startup did not confirm startup; continuing since the port answers"
    fi
    if ! amqp_answers_soon "$RABBIT_HOST" "$RABBIT_PORT"; then
        # A node that came back still silent is stuck recovering its queues (seen on a test machine
        # after hundreds of quorum queues were created and deleted in a burst). This script serves
        # development and test machines: keep the old data directory aside and start empty.
        local data=/var/lib/rabbitmq/mnesia
        if can_be_root && [[ -d "$data" ]]; then
            warn "RabbitMQ still does not answer AMQP: moving $data aside and starting it empty"
            as_root pkill -9 -f beam.smp || true
            sleep 2
            as_root mv "$data" "$data.wedged.$(date +%s)"
            start_rabbitmq
            wait_for_port "$RABBIT_HOST" "$RABBIT_PORT" || die "RabbitMQ did not come back (see /var/log/rabbitmq/)"
            as_root timeout "$WAIT_SECONDS" rabbitmqctl -q await_startup </dev/null >/dev/null 2>&1 || true
        fi
        amqp_answers "$RABBIT_HOST" "$RABBIT_PORT" || die "RabbitMQ on $RABBIT_HOST:$RABBIT_PORT does not answer AMQP"
    fi
    log "RabbitMQ is up on $RABBIT_HOST:$RABBIT_PORT"
    check_rabbitmq_limits
}

ensure_postgres() {
    if port_open "$PG_HOST" "$PG_PORT"; then
        log "PostgreSQL already answering on $PG_HOST:$PG_PORT"
        return 0
    fi

    local version=""
    if command -v pg_ctlcluster >/dev/null 2>&1 && [[ -d /etc/postgresql ]]; then
        version=$(ls /etc/postgresql | sort -V | tail -n 1)
    fi
    if [[ -z "$version" ]]; then
        warn "PostgreSQL is not installed; PostgreSQL tests will be skipped"
        return 0
    fi

    log "starting PostgreSQL $version/main (pg_ctlcluster)"
    if ! as_root pg_ctlcluster --skip-systemctl-redirect "$version" main start </dev/null; then
        warn "could not start PostgreSQL $version/main; PostgreSQL tests will be skipped"
        return 0
    fi
    if wait_for_port "$PG_HOST" "$PG_PORT"; then
        log "PostgreSQL is up on $PG_HOST:$PG_PORT"
    else
        warn "PostgreSQL did not answer on $PG_HOST:$PG_PORT within ${WAIT_SECONDS}s; PostgreSQL tests will be skipped"
    fi
}

ensure_rabbitmq
ensure_postgres
