"""The deployment kit: docker-compose.yml, deploy/ (nginx, Prometheus and its alert rules, Grafana) and
their description in docs/operations.md. Without a Docker engine nothing here starts a container: the
files are checked against each other, against the gateway's command line and metric names, and with
`promtool` and `docker compose config` when those exist on the machine."""

from __future__ import annotations

import copy
import json
import re
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path
from typing import Any, get_args
from urllib.parse import urlsplit

import pytest
import yaml

from gateway.cli import parser as cli_parser

ROOT = Path(__file__).resolve().parent.parent
COMPOSE = ROOT / "docker-compose.yml"
DEPLOY = ROOT / "deploy"
PROMETHEUS = DEPLOY / "prometheus" / "prometheus.yml"
ALERTS = DEPLOY / "prometheus" / "alerts.yml"
DASHBOARD = DEPLOY / "grafana" / "dashboards" / "gateway.json"
PROXY_CONF = DEPLOY / "nginx" / "gateway.conf"
PARTNER_PORTS_CONF = DEPLOY / "nginx" / "partners.conf"
OPERATIONS = ROOT / "docs" / "operations.md"

# The metric names the gateway exports, the contract the dashboard and the alert rules are written
# against; docs/metrics.md describes each one. A name used in deploy/ must be one of these.
METRICS = frozenset(
    {
        "gateway_http_requests_total",
        "gateway_http_request_duration_seconds",
        "gateway_partner_calls_total",
        "gateway_partner_call_seconds",
        "gateway_partner_deliveries_total",
        "gateway_partner_delivery_seconds",
        "gateway_partner_breaker_state",
        "gateway_partner_in_flight",
        "gateway_queue_messages",
        "gateway_queue_consumers",
        "gateway_parking_messages",
        "gateway_outbox_backlog",
        "gateway_outbox_oldest_age_seconds",
        "gateway_outbox_published_total",
        "gateway_outbox_publish_failures_total",
        "gateway_deliveries_total",
        "gateway_delivery_retries_total",
        "gateway_delivery_parked_total",
        "gateway_inquiries",
        "gateway_documents_overdue",
        "gateway_deadline_events_total",
        "gateway_signing_key_expiry_timestamp_seconds",
    }
)
HISTOGRAMS = frozenset(
    {
        "gateway_http_request_duration_seconds",
        "gateway_partner_call_seconds",
        "gateway_partner_delivery_seconds",
    }
)
METRIC_NAME = re.compile(r"\bgateway_[a-z0-9_]+\b")

# Gateway services and the run.py command line each must run (arguments after the role unchecked).
GATEWAY_ROLES = {
    "migrate": ["db", "upgrade"],
    "api1": ["api"],
    "api2": ["api"],
    "worker1": ["worker"],
    "worker2": ["worker"],
    "simulators": ["simulate"],
}
REQUIRED_SERVICES = {
    *GATEWAY_ROLES,
    "rabbitmq",
    "postgres",
    "redis",
    "bootstrap",
    "proxy",
    "simulator-ports",
    "prometheus",
    "grafana",
}
# Alerts the issue asks for (the rules may have more).
REQUIRED_ALERTS = {
    "GatewayProcessDown",
    "GatewayDeliveriesParked",
    "GatewayPartnerDown",
    "GatewayParkingNotEmpty",
    "GatewayDocumentsOverdue",
    "GatewayOutboxLag",
    "GatewaySigningKeyExpiring",
}
SEVERITIES = {"critical", "warning"}


def load_yaml(path: Path) -> Any:
    return yaml.safe_load(path.read_text("utf-8"))


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    doc: dict[str, Any] = load_yaml(COMPOSE)
    return doc


@pytest.fixture(scope="module")
def services(compose: dict[str, Any]) -> dict[str, Any]:
    by_name: dict[str, Any] = compose["services"]
    return by_name


def alert_rules() -> list[dict[str, Any]]:
    return [rule for group in load_yaml(ALERTS)["groups"] for rule in group["rules"] if "alert" in rule]


def dashboard() -> dict[str, Any]:
    doc: dict[str, Any] = json.loads(DASHBOARD.read_text("utf-8"))
    return doc


def dashboard_exprs(node: Any) -> list[str]:
    """Every PromQL text of the dashboard: panel targets and variable queries."""
    found: list[str] = []
    if isinstance(node, dict):
        for key, value in node.items():
            if key in ("expr", "query", "definition") and isinstance(value, str):
                found.append(value)
            else:
                found.extend(dashboard_exprs(value))
    elif isinstance(node, list):
        for item in node:
            found.extend(dashboard_exprs(item))
    return found


def panel_exprs() -> list[str]:
    exprs = [t["expr"] for p in dashboard()["panels"] for t in p.get("targets", [])]
    assert exprs
    return exprs


def env(service: dict[str, Any]) -> dict[str, str]:
    return {k: str(v) for k, v in (service.get("environment") or {}).items()}


def run_py_roles() -> set[str]:
    """The roles `run.py --help` lists."""
    out = subprocess.run(
        [sys.executable, "run.py", "--help"], cwd=ROOT, capture_output=True, text=True, check=True
    ).stdout
    match = re.search(r"\{([a-z0-9_,-]+)\}", out)
    assert match, out
    return set(match.group(1).split(","))


def metric_base(name: str) -> str:
    for suffix in ("_bucket", "_sum", "_count"):
        if name.endswith(suffix) and name.removesuffix(suffix) in HISTOGRAMS:
            return name.removesuffix(suffix)
    return name


# --- docker-compose.yml ---------------------------------------------------------------------------


def test_compose_has_the_whole_stack(services: dict[str, Any]) -> None:
    assert set(services) >= REQUIRED_SERVICES, REQUIRED_SERVICES - set(services)
    assert services["rabbitmq"]["image"].startswith("rabbitmq:3-management")
    for name in ("rabbitmq", "postgres", "redis"):
        assert "test" in services[name]["healthcheck"], name
    assert env(services["postgres"])["POSTGRES_DB"] == "gateway"


def test_every_gateway_service_runs_a_real_run_py_role(services: dict[str, Any]) -> None:
    roles = run_py_roles()
    image = services["api1"]["image"]
    for name, expected in GATEWAY_ROLES.items():
        service = services[name]
        assert service["image"] == image and service["build"]["context"] == ".", name
        command = service["command"]
        assert command[:2] == ["python", "run.py"], (name, command)
        assert command[2] in roles, (name, command, roles)
        assert command[2 : 2 + len(expected)] == expected, (name, command)
        try:
            cli_parser().parse_args(command[2:])  # the whole command line, options included
        except SystemExit as exc:
            pytest.fail(f"{name}: run.py does not accept {command[2:]} ({exc})")
    bootstrap = services["bootstrap"]
    assert bootstrap["image"] == image
    script = next(v.split(":")[0] for v in bootstrap["volumes"] if v.endswith("bootstrap.py:ro"))
    assert (ROOT / script).is_file()
    assert bootstrap["command"][-1] == "/deploy/bootstrap.py"


def test_gateway_processes_reach_the_shared_services(services: dict[str, Any]) -> None:
    for name in ("migrate", "api1", "api2", "worker1", "worker2"):
        e = env(services[name])
        db = urlsplit(e["GATEWAY_DATABASE_URL"])
        assert db.scheme == "postgresql+asyncpg" and db.hostname == "postgres", name
        assert db.path == "/" + env(services["postgres"])["POSTGRES_DB"], name
        broker = urlsplit(e["GATEWAY_BROKER_URL"])
        assert broker.scheme == "amqp" and broker.hostname == "rabbitmq", name
        # RabbitMQ refuses guest from other hosts: the stack's own user.
        assert broker.username == env(services["rabbitmq"])["RABBITMQ_DEFAULT_USER"] != "guest", name
    for name in ("api1", "api2"):
        e = env(services[name])
        assert e["GATEWAY_API__HOST"] == "0.0.0.0"
        # Two api processes: the rate-limit counts must live in a shared store.
        storage = urlsplit(e["GATEWAY_API__RATE_LIMIT_STORAGE"])
        assert storage.scheme == "redis" and storage.hostname in services, name
        assert "clients:/app/config/clients:ro" in services[name]["volumes"]
        assert "keys:/app/var/keys" in services[name]["volumes"]


def test_workers_serve_metrics_on_distinct_ports(services: dict[str, Any]) -> None:
    ports = set()
    for name in ("worker1", "worker2"):
        e = env(services[name])
        assert e["GATEWAY_WORKER__METRICS_HOST"] == "0.0.0.0"
        port = e["GATEWAY_WORKER__METRICS_PORT"]
        ports.add(port)
        assert f"127.0.0.1:{port}/healthz" in " ".join(services[name]["healthcheck"]["test"])
        assert "keys:/app/var/keys" in services[name]["volumes"]
    assert len(ports) == 2


def test_processes_share_one_receipt_key_and_the_client_registrations(services: dict[str, Any]) -> None:
    """The key is made once by bootstrap before anything else starts; every gateway process mounts the
    same volume at the configured path, and the simulators register their clients in the same place."""
    settings = tomllib.loads((ROOT / "config" / "gateway.toml").read_text("utf-8"))
    key_dir = "/app/" + str(Path(settings["signing"]["private_key_file"]).parent)
    for name in ("bootstrap", "api1", "api2", "worker1", "worker2"):
        assert any(v.startswith(f"keys:{key_dir}") for v in services[name]["volumes"]), name
    for name in ("bootstrap", "simulators", "api1", "api2", "worker1", "worker2"):
        assert any(v.startswith("clients:/app/config/clients") for v in services[name]["volumes"]), name
    demo_keys = env(services["simulators"])["GATEWAY_DEMO_KEYS"]
    assert env(services["bootstrap"])["GATEWAY_DEMO_KEYS"] == demo_keys
    for name in ("bootstrap", "simulators"):
        assert f"demo-keys:{demo_keys}" in services[name]["volumes"], name
    for name in ("api1", "api2", "worker1", "worker2", "simulators"):
        assert services[name]["depends_on"]["bootstrap"]["condition"] == "service_completed_successfully"
    for name in ("api1", "api2", "worker1", "worker2"):
        assert services[name]["depends_on"]["migrate"]["condition"] == "service_completed_successfully"


def test_gateway_reaches_every_partner_simulator_by_service_name(services: dict[str, Any]) -> None:
    """The simulators listen on their container's loopback at the ports of config/partners.toml;
    simulator-ports forwards <port + 10000> there, and every gateway process is given those endpoints."""
    partners = tomllib.loads((ROOT / "config" / "partners.toml").read_text("utf-8"))["partner"]
    forwards = dict(
        re.findall(r"listen (\d+);\s*proxy_pass 127\.0\.0\.1:(\d+);", PARTNER_PORTS_CONF.read_text("utf-8"))
    )
    assert services["simulator-ports"]["network_mode"] == "service:simulators"
    assert any(v.startswith("./deploy/nginx/partners.conf:") for v in services["simulator-ports"]["volumes"])
    for name in ("api1", "api2", "worker1", "worker2"):
        e = env(services[name])
        for partner in partners:
            if partner.get("delivery") == "pull":
                continue  # never called: no endpoint to give
            variable = f"GATEWAY_PARTNER_{partner['code'].replace('-', '_')}__ENDPOINT"
            assert variable in e, (name, variable)
            given, configured = urlsplit(e[variable]), urlsplit(partner["endpoint"])
            assert given.hostname == "simulators" and given.path == configured.path, (name, variable)
            assert forwards[str(given.port)] == str(configured.port), (name, variable)
    # The simulators themselves keep the configured (loopback) ports.
    assert not any(k.startswith("GATEWAY_PARTNER_") for k in env(services["simulators"]))
    sim = env(services["simulators"])
    assert urlsplit(sim["GATEWAY_API__PUBLIC_URL"]).hostname == "proxy"
    assert urlsplit(sim["GATEWAY_BROKER_URL"]).hostname == "rabbitmq"


def test_the_proxy_spreads_over_both_api_processes(services: dict[str, Any]) -> None:
    conf = PROXY_CONF.read_text("utf-8")
    upstreams = set(re.findall(r"^\s*server\s+([a-z0-9-]+):(\d+)", conf, re.M))
    assert upstreams == {("api1", "8080"), ("api2", "8080")}
    assert services["proxy"]["image"].startswith(("nginx:", "haproxy:"))
    assert any(v.startswith("./deploy/nginx/gateway.conf:") for v in services["proxy"]["volumes"])
    for name in ("api1", "api2"):
        assert services["proxy"]["depends_on"][name]["condition"] == "service_healthy"


def test_bind_mounts_and_dependencies_exist(services: dict[str, Any]) -> None:
    for name, service in services.items():
        for volume in service.get("volumes", []):
            source = volume.split(":")[0]
            if source.startswith("./"):
                assert (ROOT / source).exists(), (name, volume)
        depends = service.get("depends_on", {})
        assert set(depends) <= set(services), (name, depends)


# --- Prometheus ----------------------------------------------------------------------------------


def test_prometheus_scrapes_every_gateway_process_and_loads_the_rules(services: dict[str, Any]) -> None:
    config = load_yaml(PROMETHEUS)
    assert config["rule_files"] == ["alerts.yml"]
    targets = {t for job in config["scrape_configs"] for c in job["static_configs"] for t in c["targets"]}
    expected = {f"{name}:{env(services[name]).get('GATEWAY_API__PORT', '8080')}" for name in ("api1", "api2")}
    expected |= {
        f"{name}:{env(services[name])['GATEWAY_WORKER__METRICS_PORT']}" for name in ("worker1", "worker2")
    }
    assert expected <= targets, expected - targets
    mounts = " ".join(services["prometheus"]["volumes"])
    for path in (PROMETHEUS, ALERTS):
        assert f"./{path.relative_to(ROOT)}:/etc/prometheus/{path.name}" in mounts


def test_alerts_say_what_to_do(services: dict[str, Any]) -> None:
    rules = alert_rules()
    assert {r["alert"] for r in rules} >= REQUIRED_ALERTS
    anchors = {
        re.sub(r"[^a-z0-9 -]", "", heading.strip().lower()).replace(" ", "-")
        for heading in re.findall(r"^#{2,4} (.+)$", OPERATIONS.read_text("utf-8"), re.M)
    }
    for rule in rules:
        name = rule["alert"]
        assert rule["labels"]["severity"] in SEVERITIES, name
        annotations = rule["annotations"]
        assert annotations["summary"].strip() and len(annotations["description"]) > 60, name
        url = annotations["runbook_url"]
        assert url == f"docs/operations.md#{name.lower()}", name
        assert name.lower() in anchors, f"docs/operations.md has no runbook section {name}"


def test_metric_names_are_from_the_contract() -> None:
    used: dict[str, set[str]] = {}
    for rule in alert_rules():
        for name in METRIC_NAME.findall(rule["expr"]):
            used.setdefault(metric_base(name), set()).add(f"alert {rule['alert']}")
    for expr in dashboard_exprs(dashboard()):
        for name in METRIC_NAME.findall(expr):
            used.setdefault(metric_base(name), set()).add("dashboard")
    for scenario in ALERT_SCENARIOS:
        for series in scenario["input_series"]:
            for name in METRIC_NAME.findall(series["series"].split("{")[0]):
                used.setdefault(metric_base(name), set()).add("alert scenario")
    unknown = {name: sorted(where) for name, where in used.items() if name not in METRICS}
    assert not unknown, f"not in the metric contract (docs/metrics.md): {unknown}"
    # Alerts on partner outcomes name failure outcomes that exist (gateway/connectors/resilience.py).
    from gateway.connectors.resilience import DeliveryStatus, OutcomeStatus

    outcomes = set(get_args(OutcomeStatus)) | set(get_args(DeliveryStatus))
    for rule in alert_rules():
        for values in re.findall(r'outcome=~?"([^"]+)"', rule["expr"]):
            assert set(values.split("|")) <= outcomes, (rule["alert"], values)


# --- Grafana -------------------------------------------------------------------------------------

DASHBOARD_TOPICS = {
    "requests by route",
    "latency p50",
    "latency p95",
    "latency p99",
    "errors by status",
    "partner lookups by outcome",
    "partner lookup latency",
    "circuit breakers",
    "queue depth",
    "parking",
    "outbox backlog",
    "deliveries by recipient",
    "delivery retries",
    "deliveries parked",
    "inquiries by status",
    "documents overdue",
    "signing key",
}


def test_dashboard_is_complete_and_uses_its_datasource_variable(services: dict[str, Any]) -> None:
    board = dashboard()
    variables = {v["name"]: v for v in board["templating"]["list"]}
    assert variables["datasource"]["type"] == "datasource"
    assert variables["datasource"]["query"] == "prometheus"
    titles = " | ".join(p["title"].lower() for p in board["panels"])
    missing = {topic for topic in DASHBOARD_TOPICS if topic not in titles}
    assert not missing, missing
    ids = [p["id"] for p in board["panels"]]
    assert len(ids) == len(set(ids))
    for panel in board["panels"]:
        assert {"x", "y", "w", "h"} <= set(panel["gridPos"]), panel["title"]
        if panel["type"] == "row":
            continue
        assert panel["datasource"]["uid"] == "${datasource}", panel["title"]
        assert panel["targets"], panel["title"]
        for target in panel["targets"]:
            assert target["datasource"]["uid"] == "${datasource}", panel["title"]
    provisioning = DEPLOY / "grafana" / "provisioning"
    datasource = load_yaml(provisioning / "datasources" / "prometheus.yml")["datasources"][0]
    assert datasource["type"] == "prometheus" and urlsplit(datasource["url"]).hostname == "prometheus"
    provider = load_yaml(provisioning / "dashboards" / "gateway.yml")["providers"][0]
    mounts = services["grafana"]["volumes"]
    assert f"./deploy/grafana/dashboards:{provider['options']['path']}:ro" in mounts
    assert "./deploy/grafana/provisioning:/etc/grafana/provisioning:ro" in mounts


# --- promtool ------------------------------------------------------------------------------------

needs_promtool = pytest.mark.skipif(
    shutil.which("promtool") is None,
    reason="promtool is not installed (Debian: apt-get install prometheus); rules checked by name only",
)


def promtool(*args: str | Path, cwd: Path) -> None:
    result = subprocess.run(["promtool", *map(str, args)], cwd=cwd, capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


@needs_promtool
def test_promtool_accepts_rules_and_config() -> None:
    promtool("check", "rules", ALERTS, cwd=ROOT)
    promtool("check", "config", PROMETHEUS, cwd=ROOT)


@needs_promtool
def test_promtool_parses_every_dashboard_query(tmp_path: Path) -> None:
    """Each panel query, with Grafana's variables filled in, as a recording rule promtool must accept."""
    rules = []
    for n, expr in enumerate(panel_exprs()):
        expr = expr.replace("$__rate_interval", "1m").replace("$partner", ".*")
        rules.append({"record": f"dashboard:query_{n}", "expr": expr})
    path = tmp_path / "dashboard.yml"
    path.write_text(yaml.safe_dump({"groups": [{"name": "dashboard", "rules": rules}]}), "utf-8")
    promtool("check", "rules", path, cwd=tmp_path)


def s(name: str, labels: str, values: str) -> dict[str, str]:
    return {"series": f"{name}{{{labels}}}", "values": values}


W1 = 'job="gateway-worker", instance="worker1:9180"'
W2 = 'job="gateway-worker", instance="worker2:9181"'
A1 = 'job="gateway-api", instance="api1:8080"'

# promtool unit tests of the alert rules (interval 1m; time starts at 0). Each alert has one at least.
ALERT_SCENARIOS: list[dict[str, Any]] = [
    {
        "input_series": [s("up", A1, "1x10"), s("up", W1, "1 1 0x10"), s("up", W2, "1x10")],
        "alert_rule_test": [
            {
                "eval_time": "6m",
                "alertname": "GatewayProcessDown",
                "exp_alerts": [
                    {
                        "exp_labels": {
                            "severity": "critical",
                            "job": "gateway-worker",
                            "instance": "worker1:9180",
                        }
                    }
                ],
            },
            {"eval_time": "6m", "alertname": "GatewayNoWorker", "exp_alerts": []},
        ],
    },
    {
        "input_series": [s("up", W1, "0x10"), s("up", W2, "0x10")],
        "alert_rule_test": [
            {
                "eval_time": "5m",
                "alertname": "GatewayNoWorker",
                "exp_alerts": [{"exp_labels": {"severity": "critical"}}],
            }
        ],
    },
    {
        "input_series": [
            s("gateway_http_requests_total", f'{A1}, route="push", method="POST", status="202"', "0+100x20"),
            s("gateway_http_requests_total", f'{A1}, route="push", method="POST", status="503"', "0+10x20"),
            s("gateway_http_requests_total", f'{A1}, route="push", method="POST", status="422"', "0+50x20"),
        ],
        "alert_rule_test": [
            {
                "eval_time": "15m",
                "alertname": "GatewayApiErrors",
                "exp_alerts": [{"exp_labels": {"severity": "warning"}}],
            }
        ],
    },
    {
        # The first parking of a recipient since the worker started: a series born at 1.
        # BANK-VCB's parked deliveries are older than the window: nothing new.
        "input_series": [
            s("up", W1, "1x80"),
            s("up", W2, "1x80"),
            s("gateway_delivery_parked_total", f'{W1}, recipient="THADS-HN"', "_x20 1x60"),
            s("gateway_delivery_parked_total", f'{W2}, recipient="BANK-VCB"', "2x80"),
        ],
        "alert_rule_test": [
            {
                "eval_time": "23m",
                "alertname": "GatewayDeliveriesParked",
                "exp_alerts": [{"exp_labels": {"severity": "critical", "recipient": "THADS-HN"}}],
            },
            {"eval_time": "50m", "alertname": "GatewayDeliveriesParked", "exp_alerts": []},
        ],
    },
    {
        "input_series": [
            s("gateway_delivery_parked_total", f'{W1}, recipient="THADS-HN"', "1x10 2x30"),
        ],
        "alert_rule_test": [
            {
                "eval_time": "15m",
                "alertname": "GatewayDeliveriesParked",
                "exp_alerts": [{"exp_labels": {"severity": "critical", "recipient": "THADS-HN"}}],
            },
        ],
    },
    {
        "input_series": [
            s("gateway_parking_messages", f'{W1}, queue="gw.deliver.THADS-HN"', "3x20"),
            s("gateway_parking_messages", f'{W2}, queue="gw.deliver.THADS-HN"', "3x20"),
            s("gateway_parking_messages", f'{W1}, queue="gw.deliver.BANK-VCB"', "0x20"),
        ],
        "alert_rule_test": [
            {
                "eval_time": "15m",
                "alertname": "GatewayParkingNotEmpty",
                "exp_alerts": [{"exp_labels": {"severity": "warning", "queue": "gw.deliver.THADS-HN"}}],
            }
        ],
    },
    {
        "input_series": [
            s("gateway_queue_messages", f'{W1}, queue="gw.deliver.THADS-HN", state="ready"', "5x20"),
            s("gateway_queue_consumers", f'{W1}, queue="gw.deliver.THADS-HN"', "0x20"),
            # The case system's own queue: consuming it is the case system's business.
            s("gateway_queue_messages", f'{W1}, queue="thads-hn.judgments", state="ready"', "5x20"),
            s("gateway_queue_consumers", f'{W1}, queue="thads-hn.judgments"', "0x20"),
            s("gateway_queue_messages", f'{W1}, queue="gw.deliver.TAX", state="ready"', "5x20"),
            s("gateway_queue_consumers", f'{W1}, queue="gw.deliver.TAX"', "2x20"),
        ],
        "alert_rule_test": [
            {
                "eval_time": "10m",
                "alertname": "GatewayQueueNotConsumed",
                "exp_alerts": [{"exp_labels": {"severity": "warning", "queue": "gw.deliver.THADS-HN"}}],
            }
        ],
    },
    {
        "input_series": [
            s("gateway_outbox_oldest_age_seconds", W1, "0+60x30"),
            s("gateway_outbox_oldest_age_seconds", W2, "0+60x30"),
        ],
        "alert_rule_test": [
            {"eval_time": "6m", "alertname": "GatewayOutboxLag", "exp_alerts": []},
            {
                "eval_time": "9m",
                "alertname": "GatewayOutboxLag",
                "exp_alerts": [{"exp_labels": {"severity": "warning"}}],
            },
            {
                "eval_time": "25m",
                "alertname": "GatewayOutboxLag",
                "exp_alerts": [
                    {"exp_labels": {"severity": "warning"}},
                    {"exp_labels": {"severity": "critical"}},
                ],
            },
        ],
    },
    {
        # Worker 1 sees BANK-VCB down (open, half-open while probing, open again); worker 2 saw no call.
        "input_series": [
            s("gateway_partner_breaker_state", f'{W1}, partner="BANK-VCB"', "2 2 1 2 2 1 2 2 1 2 2 1 2 2"),
            s("gateway_partner_breaker_state", f'{W2}, partner="BANK-VCB"', "0x13"),
            s("gateway_partner_breaker_state", f'{W1}, partner="TAX"', "0 0 1 0 0 0 0 0 0 0 0 0 0 0"),
        ],
        "alert_rule_test": [
            {"eval_time": "4m", "alertname": "GatewayPartnerDown", "exp_alerts": []},
            {
                "eval_time": "10m",
                "alertname": "GatewayPartnerDown",
                "exp_alerts": [{"exp_labels": {"severity": "warning", "partner": "BANK-VCB"}}],
            },
        ],
    },
    {
        # not_found is an answer, not a failure.
        "input_series": [
            s("gateway_partner_calls_total", f'{W1}, partner="POP-REG", outcome="not_found"', "0+10x30"),
            s("gateway_partner_calls_total", f'{W1}, partner="POP-REG", outcome="found"', "0+1x30"),
            s("gateway_partner_calls_total", f'{W1}, partner="TAX", outcome="unavailable"', "0+5x30"),
            s("gateway_partner_calls_total", f'{W2}, partner="TAX", outcome="timeout"', "0+5x30"),
            s("gateway_partner_calls_total", f'{W1}, partner="TAX", outcome="found"', "0+1x30"),
        ],
        "alert_rule_test": [
            {
                "eval_time": "25m",
                "alertname": "GatewayPartnerLookupsFailing",
                "exp_alerts": [{"exp_labels": {"severity": "warning", "partner": "TAX"}}],
            }
        ],
    },
    {
        "input_series": [
            s("gateway_partner_deliveries_total", f'{W1}, partner="BANK-AGR", outcome="error"', "0+2x30"),
            s("gateway_partner_deliveries_total", f'{W1}, partner="BANK-AGR", outcome="delivered"', "0+2x30"),
            s("gateway_partner_deliveries_total", f'{W1}, partner="BANK-VCB", outcome="delivered"', "0+5x30"),
        ],
        "alert_rule_test": [
            {
                "eval_time": "25m",
                "alertname": "GatewayPartnerDeliveriesFailing",
                "exp_alerts": [{"exp_labels": {"severity": "warning", "partner": "BANK-AGR"}}],
            }
        ],
    },
    {
        "input_series": [
            s("gateway_documents_overdue", f'{W1}, type="order.account_blocking"', "2x30"),
            s("gateway_documents_overdue", f'{W2}, type="order.account_blocking"', "2x30"),
            s("gateway_documents_overdue", f'{W1}, type="judgment.delivery"', "0x30"),
        ],
        "alert_rule_test": [
            {
                "eval_time": "20m",
                "alertname": "GatewayDocumentsOverdue",
                "exp_alerts": [{"exp_labels": {"severity": "warning", "type": "order.account_blocking"}}],
            }
        ],
    },
    {
        # Time starts at 0: a key expiring at 10 days; a process reporting 0 (no expiry) is ignored.
        "input_series": [
            s("gateway_signing_key_expiry_timestamp_seconds", A1, "864000x100"),
            s("gateway_signing_key_expiry_timestamp_seconds", W1, "0x100"),
        ],
        "alert_rule_test": [
            {"eval_time": "30m", "alertname": "GatewaySigningKeyExpiring", "exp_alerts": []},
            {
                "eval_time": "70m",
                "alertname": "GatewaySigningKeyExpiring",
                "exp_alerts": [{"exp_labels": {"severity": "warning"}}],
            },
        ],
    },
    {
        "input_series": [s("gateway_signing_key_expiry_timestamp_seconds", A1, "259200x100")],
        "alert_rule_test": [
            {
                "eval_time": "15m",
                "alertname": "GatewaySigningKeyExpiring",
                "exp_alerts": [{"exp_labels": {"severity": "critical"}}],
            },
            {
                "eval_time": "90m",
                "alertname": "GatewaySigningKeyExpiring",
                "exp_alerts": [
                    {"exp_labels": {"severity": "warning"}},
                    {"exp_labels": {"severity": "critical"}},
                ],
            },
        ],
    },
    {
        "input_series": [s("gateway_signing_key_expiry_timestamp_seconds", A1, "0x100")],
        "alert_rule_test": [{"eval_time": "90m", "alertname": "GatewaySigningKeyExpiring", "exp_alerts": []}],
    },
]


def test_every_alert_has_a_scenario() -> None:
    tested = {t["alertname"] for sc in ALERT_SCENARIOS for t in sc["alert_rule_test"] if t["exp_alerts"]}
    assert {r["alert"] for r in alert_rules()} <= tested


@needs_promtool
def test_alerts_fire_when_they_should(tmp_path: Path) -> None:
    """promtool test rules on a copy of the rules without annotations (promtool compares them too; the
    texts are checked above), with ALERT_SCENARIOS."""
    rules = copy.deepcopy(load_yaml(ALERTS))
    for group in rules["groups"]:
        for rule in group["rules"]:
            rule.pop("annotations", None)
    (tmp_path / "alerts.yml").write_text(yaml.safe_dump(rules), "utf-8")
    tests = {
        "rule_files": ["alerts.yml"],
        "evaluation_interval": "1m",
        "tests": [{"interval": "1m", **scenario} for scenario in ALERT_SCENARIOS],
    }
    (tmp_path / "alerts_test.yml").write_text(yaml.safe_dump(tests, sort_keys=False), "utf-8")
    promtool("test", "rules", "alerts_test.yml", cwd=tmp_path)


# --- docker compose config ------------------------------------------------------------------------


def compose_client() -> list[str] | None:
    for command in (["docker", "compose"], ["docker-compose"]):
        if shutil.which(command[0]) is None:
            continue
        try:
            result = subprocess.run([*command, "version"], capture_output=True, timeout=60)
        except (OSError, subprocess.TimeoutExpired):
            continue
        if result.returncode == 0:
            return command
    return None


def test_docker_compose_accepts_the_file() -> None:
    command = compose_client()
    if command is None:
        pytest.skip(
            "no Compose client here (`docker compose` plugin or `docker-compose`); on Debian 12 "
            "`apt-get install docker-compose` gives one (v1), Docker's own packages the v2 plugin"
        )
    result = subprocess.run(
        [*command, "-f", str(COMPOSE), "config", "-q"], cwd=ROOT, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stdout + result.stderr
