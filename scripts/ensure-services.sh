#!/usr/bin/env bash
# Make sure the brokers and databases the test suite talks to are up on loopback.
# RabbitMQ is mandatory; PostgreSQL is optional (its tests skip when it is absent).
set -euo pipefail

RABBIT_HOST=127.0.0.1
RABBIT_PORT=5672
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

ensure_rabbitmq() {
    if port_open "$RABBIT_HOST" "$RABBIT_PORT"; then
        if amqp_answers_soon "$RABBIT_HOST" "$RABBIT_PORT"; then
            log "RabbitMQ already answering on $RABBIT_HOST:$RABBIT_PORT"
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

    log "starting RabbitMQ (rabbitmq-server -detached)"
    # A non-zero exit can just mean the node is already booting; the port probe below decides.
    if can_be_root; then
        as_root rabbitmq-server -detached </dev/null || warn "rabbitmq-server -detached exited non-zero"
    else
        rabbitmq-server -detached </dev/null || warn "rabbitmq-server -detached exited non-zero"
    fi

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
            as_root rabbitmq-server -detached </dev/null || true
            wait_for_port "$RABBIT_HOST" "$RABBIT_PORT" || die "RabbitMQ did not come back (see /var/log/rabbitmq/)"
            as_root timeout "$WAIT_SECONDS" rabbitmqctl -q await_startup </dev/null >/dev/null 2>&1 || true
        fi
        amqp_answers "$RABBIT_HOST" "$RABBIT_PORT" || die "RabbitMQ on $RABBIT_HOST:$RABBIT_PORT does not answer AMQP"
    fi
    log "RabbitMQ is up on $RABBIT_HOST:$RABBIT_PORT"
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
