"""``python run.py demo``: a complete local installation under ``var/demo`` with a court and a case
system, ready for curl. Everything it creates is regenerated or reused on the next run.

``--banks N``: the demo's configuration holds N banks, the shipped ones first, then Vietnam's other credit
institutions (``config/bank_directory.toml``), listed one line each in the demo's own ``banks.toml``
and served by the bank simulator under ``/banks/<CODE>``; the shipped ``config/`` is never touched."""

from __future__ import annotations

import argparse
import json
import os
import re
import secrets
import shutil
import signal
import subprocess
import sys
import time
import tomllib
import urllib.request
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import tomli_w

from gateway.demo_signing import SIGNED, TAMPERED, UNSIGNED, demo_tsa_url, prepare_signatures
from gateway.ops import operators
from gateway.partners import BANKS_FILE, load_partners
from gateway.security.clients import ClientStore
from gateway.security.keys import load_private_key, public_pem, write_keypair
from gateway.security.tokens import issue_token
from gateway.settings import DEFAULT_CONFIG_DIR, Settings, SimulateSettings, load_settings
from gateway.simulators.partners.banks import bank_path
from gateway.simulators.platforms import PROVIDER_SERVICE
from gateway.storage.migrate import upgrade_sync

ROOT = DEFAULT_CONFIG_DIR.parent
EXAMPLE = "gateway/schemas/examples/judgment.delivery/valid-civil-judgment-two-persons.json"
CASE_QUEUE = "thads-hn.judgments"
INQUIRY = "gateway/schemas/examples/asset-inquiry/valid-all-registers.json"
BLOCKING = "gateway/schemas/examples/order.account_blocking/valid-demo-rich-debtor-all-accounts.json"
#: Examples whose dates are checked against today (a coercion must be protected 10 days ahead): the demo
#: writes them under var/demo/examples with every date moved so that they are as far ahead as on the day
#: they were written (the README's curls send those copies).
DATED_EXAMPLES = ("police.protection_request/valid-eviction-with-risks.json",)
_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}")
#: Most banks ``--banks`` configures: each bank is a partner with its own queues on the broker.
MAX_BANKS = 120
#: Codes and names of Vietnam's credit institutions, the shipped banks first.
BANK_DIRECTORY = DEFAULT_CONFIG_DIR / "bank_directory.toml"
#: What the banner's lookup to every bank sends: the bundled inquiry, asking every configured bank.
BANKS_INQUIRY = "asset-inquiry-banks.json"
PARTNER_SECRETS = (
    "LAND_REG",
    "BANK_VCB",
    "BANK_BIDV",
    "BANK_CTG",
    "BANK_AGR",
    "BANK_TCB",
    "TAX",
    "POLICE_VEH",
    "POP_REG",
    "CA_HN",
    "VNEID",
)


#: Webhooks of the simulated court and procuracy (``python run.py simulate`` listens there), on the
#: ports of the ``[simulate]`` settings: ``{court_inbox}`` and ``{procuracy_inbox}`` in ``deliver_to``.
INBOX = "http://127.0.0.1:{port}/inbox"


def inbox_urls(settings: Settings) -> dict[str, str]:
    """The simulated court's and procuracy's webhook URLs, by ``deliver_to`` placeholder."""
    return {
        "court_inbox": INBOX.format(port=settings.simulate.court_port),
        "procuracy_inbox": INBOX.format(port=settings.simulate.procuracy_port),
    }


#: The clients whose simulators call the gateway back on their own (a bank's late report, the police's
#: answers, VNeID's statuses): ``run.py simulate --partners-only`` makes and registers these.
PARTNER_CLIENTS = ("BANK-TCB", "BANK-VPB", "CA-HN", "VNEID")


@dataclass(frozen=True, slots=True)
class DemoClient:
    grants: list[str]
    # ``{queue}`` stands for the case system's queue, ``{court_inbox}`` and ``{procuracy_inbox}`` for
    # the simulated court's and procuracy's webhooks (:func:`inbox_urls`).
    deliver_to: str | None
    name: str


#: Who the demo's simulators sign in as. BANK-TCB answers later and calls the gateway back.
DEMO_CLIENTS = {
    # Receives clarification requests and enforcement decisions on the simulated court's webhook.
    "TAND-HN": DemoClient(
        ["judgments.push", "messages.read", "messages.confirm", "documents.send"],
        "{court_inbox}",
        "Tòa án nhân dân thành phố Hà Nội",
    ),
    # Receives the copies of THADS-HN's enforcement decisions (config/routing.toml) on its webhook.
    "VKS-HN": DemoClient(
        ["documents.send", "messages.read", "messages.confirm"],
        "{procuracy_inbox}",
        "Viện kiểm sát nhân dân thành phố Hà Nội",
    ),
    "THADS-HN": DemoClient(
        ["messages.read", "messages.confirm", "assets.inquire", "documents.send"],
        "amqp:{queue}",
        "Thi hành án dân sự thành phố Hà Nội",
    ),
    # Pushes its late answers: lookup results and order reports.
    "BANK-TCB": DemoClient(
        ["assets.answer", "documents.send", "messages.read"], None, "Ngân hàng TMCP Kỹ thương Việt Nam"
    ),
    # A bank in pull mode: fetches its lookups and orders, answers them, acknowledges them.
    "BANK-VPB": DemoClient(
        ["partner.pull", "assets.answer", "documents.send", "messages.read"],
        None,
        "Ngân hàng TMCP Việt Nam Thịnh Vượng",
    ),
    # The police unit: pushes its late answers to protection and assistance requests.
    "CA-HN": DemoClient(
        ["documents.send:police.protection_answer", "documents.send:police.assistance_ack", "messages.read"],
        None,
        "Công an thành phố Hà Nội",
    ),
    # Records citizens' consents and pushes what became of each notice.
    "VNEID": DemoClient(
        ["consents.write", "documents.send:notice.delivery_status", "messages.read"],
        None,
        "Hệ thống định danh và xác thực điện tử (VNeID)",
    ),
    # Answers citizens who ask who looked at their data.
    "DVCQG": DemoClient(["data_access.read"], None, "Cổng Dịch vụ công quốc gia"),
}


@dataclass(frozen=True, slots=True)
class DemoKeys:
    """What :func:`ensure_demo_clients` did, by client id."""

    created: list[str]  # key pairs generated now
    registered: list[str]  # clients written to the clients directory now
    unknown_to_gateway: list[str]  # registered already, but without this key (or revoked): left alone


def ensure_demo_clients(
    keys: Path,
    clients_dir: Path,
    case_queue: str = CASE_QUEUE,
    *,
    replace: bool = True,
    inboxes: dict[str, str] | None = None,
    only: tuple[str, ...] | None = None,
) -> DemoKeys:
    """A key pair per demo client under ``keys`` (generated when missing) and its registration in
    ``clients_dir``. ``replace=False`` never changes a client that is already registered: it may be
    an operator's, and registering would reset its grants and lift a revocation. ``inboxes``: the
    webhooks of :func:`inbox_urls` (default: the shipped ports); ``only``: these clients alone."""
    store = ClientStore(clients_dir, recheck_seconds=0)
    created: list[str] = []
    registered: list[str] = []
    unknown: list[str] = []
    for client_id, demo in DEMO_CLIENTS.items():
        if only is not None and client_id not in only:
            continue
        if not (keys / f"{client_id}.key").exists():
            write_keypair(keys, client_id)
            created.append(client_id)
        # From the private key, which is what the simulators sign with (a stray .pub cannot mislead).
        pem = public_pem(load_private_key((keys / f"{client_id}.key").read_bytes()).public_key())
        existing = store.get(client_id)
        if existing is not None and not replace:
            if existing.revoked or pem not in map(public_pem, existing.keys):
                unknown.append(client_id)
            continue
        deliver_to = _deliver_to(demo, case_queue, inboxes)
        store.add(client_id, pem, demo.grants, deliver_to=deliver_to, name=demo.name)
        registered.append(client_id)
    return DemoKeys(created, registered, unknown)


def _deliver_to(demo: DemoClient, case_queue: str, inboxes: dict[str, str] | None) -> str | None:
    if demo.deliver_to is None:
        return None
    shipped = SimulateSettings()
    urls = inboxes or {
        "court_inbox": INBOX.format(port=shipped.court_port),
        "procuracy_inbox": INBOX.format(port=shipped.procuracy_port),
    }
    return demo.deliver_to.format(queue=case_queue, **urls)


def register_command(
    client_id: str, keys: Path, case_queue: str = CASE_QUEUE, inboxes: dict[str, str] | None = None
) -> str:
    """The operator command that registers a demo client's public key with a gateway."""
    demo = DEMO_CLIENTS[client_id]
    command = (
        f"python run.py clients add --id {client_id} --public-key {keys / f'{client_id}.pub'} "
        f"--grant {' '.join(demo.grants)}"
    )
    deliver_to = _deliver_to(demo, case_queue, inboxes)
    return command + (f" --deliver-to {deliver_to}" if deliver_to else "")


def bank_directory(n: int) -> list[tuple[str, str]]:
    """The first ``n`` (at most :data:`MAX_BANKS`) banks as ``(code, name)``: the directory's, then as many
    test banks as it lacks (``BANK-T071``…, neutral names)."""
    if not 1 <= n <= MAX_BANKS:
        raise ValueError(f"the demo configures 1 to {MAX_BANKS} banks, not {n}")
    listed = tomllib.loads(BANK_DIRECTORY.read_text("utf-8"))["bank"]
    out = [(str(b["code"]), str(b["name"])) for b in listed][:n]
    out += [(f"BANK-T{i:03d}", f"Ngân hàng thử nghiệm {i:03d}") for i in range(len(out) + 1, n + 1)]
    return out


def write_banks(config: Path, n: int | None) -> list[str]:
    """Make ``config`` (a copy of the shipped configuration) hold ``n`` banks; returns their codes. The
    shipped banks come first (fewer than those: the first ``n`` of them), the others go one line each to
    ``banks.toml``, on the shipped banks' simulator under ``/banks/<CODE>``, inheriting
    ``[defaults.bank]``. ``n`` None: the shipped banks alone (a ``banks.toml`` of an earlier run goes)."""
    (config / BANKS_FILE).unlink(missing_ok=True)
    path = config / "partners.toml"
    data = tomllib.loads(path.read_text("utf-8"))
    shipped = [b for b in data["partner"] if b.get("kind") == "bank"]
    if n is None:
        return [str(b["code"]) for b in shipped]
    wanted = bank_directory(n)
    if n < len(shipped):
        keep = {code for code, _ in wanted}
        data["partner"] = [b for b in data["partner"] if b.get("kind") != "bank" or b["code"] in keep]
        path.write_text(tomli_w.dumps(data), "utf-8")
        return [str(b["code"]) for b in shipped if b["code"] in keep]
    root = urlunsplit(urlsplit(str(shipped[0]["endpoint"]))._replace(path="", query="", fragment=""))
    known = {str(b["code"]) for b in shipped}
    extra = [(code, name) for code, name in bank_directory(MAX_BANKS) if code not in known]
    extra = extra[: n - len(shipped)]
    lines = [
        f"  {{ code = {json.dumps(code)}, name = {json.dumps(name, ensure_ascii=False)}, "
        f"endpoint = {json.dumps(root + bank_path(code))} }},"
        for code, name in extra
    ]
    header = "# Written by `run.py demo --banks`: every bank inherits [defaults.bank] of partners.toml.\n"
    (config / BANKS_FILE).write_text(header + "bank = [\n" + "\n".join(lines) + "\n]\n", "utf-8")
    return [str(b["code"]) for b in shipped] + [code for code, _ in extra]


#: ``--platforms``: the demo's X-Road and LGSP (simulated by ``run.py simulate``).
XROAD_CLIENT = "XROADVN/GOV/000.00.00.G22/THADS-GW"
XROAD_PORT = 9110
LGSP_PORT = 9120
LGSP_BANKS = ("BANK-VCB", "BANK-BIDV")
COURT_XROAD_ID = "XROADVN/GOV/000.00.00.T01/TAND-HN"
XROAD_FILE = "xroad.toml"
LGSP_SECRETS = {
    "GATEWAY_LGSP_HN_CLIENT_SECRET": "demo-lgsp-client-secret",
    "GATEWAY_LGSP_HN_ACCESS_TOKEN": "demo-lgsp-access-token",
}


def write_platforms(config: Path) -> None:
    """Route the demo's land registry through X-Road and two banks through the Hà Nội LGSP: the same
    partners (their simulators), reached as production reaches them."""
    path = config / "partners.toml"
    data = tomllib.loads(path.read_text("utf-8"))
    data["platforms"] = {
        "xroad": {"security_server": f"http://127.0.0.1:{XROAD_PORT}", "client": XROAD_CLIENT},
        "lgsp": {
            "HN": {
                "base_url": f"http://127.0.0.1:{LGSP_PORT}/lgsp",
                "token_url": f"http://127.0.0.1:{LGSP_PORT}/oauth2/token",
                "client_id": "thads-gateway",
                "client_secret_env": "GATEWAY_LGSP_HN_CLIENT_SECRET",
                "access_token_env": "GATEWAY_LGSP_HN_ACCESS_TOKEN",
            }
        },
    }
    for partner in data["partner"]:
        if partner["code"] == "LAND-REG":
            partner["transport"] = "xroad"
            partner["xroad"] = {"subsystem": "XROADVN/GOV/000.00.00.G12/LAND-REG"}
        elif partner["code"] in LGSP_BANKS:
            partner["transport"] = "lgsp"
            partner["lgsp"] = {"platform": "HN", "path": "/" + partner["code"].lower()}
    path.write_text(tomli_w.dumps(data), "utf-8")
    # The gateway as a provider: the court reaches it as an X-Road client through the same simulated
    # security server, trusted here by its loopback address (a demonstration only: docs/partners.md).
    provider = {
        "provider": {"enabled": True},
        "security_server": [{"name": "ss-demo", "addresses": ["127.0.0.1"]}],
        "client": [{"xroad_id": COURT_XROAD_ID, "client": "TAND-HN"}],
    }
    (config / XROAD_FILE).write_text(tomli_w.dumps(provider), "utf-8")


#: What the demo copies of the shipped configuration (its clients, keys and banks are its own).
DEMO_CONFIG_FILES = (
    "gateway.toml",
    "partners.toml",
    "legal_bases.toml",
    "holidays.toml",
    "documents.toml",
    "routing.toml",
)


def copy_config(config: Path) -> None:
    """The shipped configuration the demo runs on, copied to ``config`` (the shipped one is never touched)."""
    config.mkdir(parents=True, exist_ok=True)
    for name in DEMO_CONFIG_FILES:
        shutil.copy(DEFAULT_CONFIG_DIR / name, config / name)
    shutil.copytree(DEFAULT_CONFIG_DIR / "wsdl", config / "wsdl", dirs_exist_ok=True)


def prepare(
    home: Path, port: int, banks: int | None = None, platforms: bool = False
) -> tuple[dict[str, str], Settings]:
    """Config dir, keys and clients for the demo (``banks``: see :func:`write_banks`); returns the
    environment for its processes."""
    config = home / "config"
    copy_config(config)
    write_banks(config, banks)
    (config / XROAD_FILE).unlink(missing_ok=True)  # an earlier --platforms run's
    if platforms:
        write_platforms(config)
    # Every configured partner's token variable, the banks beyond the shipped ones' too.
    secrets_of = {p.credentials for p in load_partners(config) if p.credentials}
    env = {
        **os.environ,
        "GATEWAY_CONFIG_DIR": str(config),
        "GATEWAY_API__PORT": str(port),
        "GATEWAY_API__PUBLIC_URL": f"http://127.0.0.1:{port}",
        "GATEWAY_DEMO_KEYS": str(home / "keys"),
        "GATEWAY_DEMO_CASE_QUEUE": CASE_QUEUE,
        # The test PKI the simulated court signs with, made by prepare_signatures below.
        "GATEWAY_SIMULATE__PKI_DIR": str(home / "pki"),
        # The demo's receivers (case system callbacks, court and procuracy webhooks) are loopback listeners.
        "GATEWAY_OUTBOUND__ALLOW_HTTP_LOOPBACK": "true",
        # The simulators accept any partner token; real deployments put real ones in these variables.
        **{f"GATEWAY_SECRET_{code}": "demo-token" for code in PARTNER_SECRETS},
        **dict.fromkeys(secrets_of, "demo-token"),
        # A development convenience: the banner's curls reuse one printed token, so the demo's tokens are
        # not single-use (its simulators mint a token per request all the same).
        "GATEWAY_AUTH__SINGLE_USE_TOKENS": "false",
        # The simulated LGSP's credentials (production: the platform operator's, in a secret store).
        **(LGSP_SECRETS if platforms else {}),
    }
    os.environ.update(env)
    settings = load_settings()
    ensure_demo_clients(home / "keys", settings.clients_dir, CASE_QUEUE, inboxes=inbox_urls(settings))
    upgrade_sync(settings.resolved_database_url)
    example = json.loads((ROOT / EXAMPLE).read_text("utf-8"))
    prepare_signatures(home, config, settings.simulate.trust_port, example)
    # Archive time-stamps of the signed judgments kept (long-term proof) from the simulated TSA.
    env["GATEWAY_LONG_TERM__TSA_URL"] = demo_tsa_url(settings.simulate.trust_port)
    os.environ.update(env)
    write_dated_examples(home / "examples")
    write_banks_inquiry(home / "examples")
    return env, settings


def write_banks_inquiry(directory: Path) -> Path:
    """The bundled inquiry asking every configured bank (``sources: ["bank"]``) and nothing else."""
    directory.mkdir(parents=True, exist_ok=True)
    doc = json.loads((ROOT / INQUIRY).read_text("utf-8")) | {"sources": ["bank"]}
    path = directory / BANKS_INQUIRY
    path.write_text(json.dumps(doc, ensure_ascii=False, indent=2), "utf-8")
    return path


def write_dated_examples(directory: Path, today: date | None = None) -> list[Path]:
    """Copies of :data:`DATED_EXAMPLES` moved in time: written on their ``created_at`` day, sent today."""
    directory.mkdir(parents=True, exist_ok=True)
    written = []
    for name in DATED_EXAMPLES:
        doc = json.loads((ROOT / "gateway" / "schemas" / "examples" / name).read_text("utf-8"))
        shift = (today or date.today()) - datetime.fromisoformat(doc["created_at"]).date()
        path = directory / f"{name.split('/')[0]}.json"
        path.write_text(json.dumps(_shifted(doc, shift), ensure_ascii=False, indent=2), "utf-8")
        written.append(path)
    return written


def _shifted(value: Any, shift: timedelta) -> Any:
    """Every ISO date and timestamp in ``value`` moved by ``shift`` (times of day and offsets kept)."""
    if isinstance(value, dict):
        return {k: _shifted(v, shift) for k, v in value.items()}
    if isinstance(value, list):
        return [_shifted(v, shift) for v in value]
    if isinstance(value, str) and _DATE.match(value):
        try:
            if len(value) == 10:
                return (date.fromisoformat(value) + shift).isoformat()
            return (datetime.fromisoformat(value) + shift).isoformat()
        except ValueError:
            return value
    return value


def _wait_healthy(
    url: str, procs: list[subprocess.Popen[bytes]], timeout: float = 60, logs: Path | None = None
) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if any(p.poll() is not None for p in procs):
            # Its output went to its log file: name it (a port already taken is the usual cause).
            where = f"its log in {logs}" if logs is not None else "its log"
            raise SystemExit(f"a gateway process exited during start-up (a port taken?); see {where}")
        try:
            with urllib.request.urlopen(url + "/healthz", timeout=2) as resp:  # noqa: S310 - loopback
                if resp.status == 200:
                    return
        except OSError:
            time.sleep(0.3)
    raise SystemExit(f"the api did not answer on {url} within {timeout:.0f}s")


def run_demo(_settings: Settings, args: argparse.Namespace) -> int:
    home = ROOT / "var" / "demo"
    banks = getattr(args, "banks", None)
    platforms = bool(getattr(args, "platforms", False))
    env, settings = prepare(home, args.port, banks, platforms)
    url = settings.api.public_url
    log_dir = home / "logs"
    log_dir.mkdir(parents=True, exist_ok=True)
    procs: list[subprocess.Popen[bytes]] = []
    # SIGTERM (make's timeout, a service manager) stops the demo like Ctrl-C: children too. SIGINT is set
    # too: a shell starting the demo in the background leaves it ignored, so `kill -INT` did nothing.
    signal.signal(signal.SIGTERM, _interrupt)
    signal.signal(signal.SIGINT, _interrupt)
    worker_log = log_dir / "worker.log"
    worker_log_from = worker_log.stat().st_size if worker_log.exists() else 0  # the log is appended to
    for role in ("api", "worker", "simulate"):
        cmd = [sys.executable, str(ROOT / "run.py"), role]
        with (log_dir / f"{role}.log").open("ab") as out:
            procs.append(subprocess.Popen(cmd, env=env, cwd=ROOT, stdout=out, stderr=subprocess.STDOUT))  # noqa: S603
    try:
        _wait_healthy(url, procs, logs=log_dir)
        court_key = load_private_key((home / "keys" / "TAND-HN.key").read_bytes())
        case_key = load_private_key((home / "keys" / "THADS-HN.key").read_bytes())
        court_token = issue_token("TAND-HN", court_key, settings.auth.audience, ttl=3600)
        case_token = issue_token("THADS-HN", case_key, settings.auth.audience, ttl=3600)
        # A demo operator with a password made for this run only: there is no default password.
        operator_password = secrets.token_urlsafe(12)
        operators.add(settings.path(settings.ops.operators_file), "demo", "operator", operator_password)
        metrics = worker_metrics_url(worker_log, worker_log_from, alive=lambda: procs[1].poll() is None)
        print(banner(url, home, court_token, case_token, banks, platforms), flush=True)
        print(console_banner(url, settings, operator_password, metrics, worker_log), flush=True)
        while all(p.poll() is None for p in procs):
            time.sleep(0.5)
        print("a gateway process stopped; see", log_dir, file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 0
    finally:
        for p in procs:
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
        for p in procs:
            try:
                p.wait(timeout=10)
            except subprocess.TimeoutExpired:
                p.kill()


def _interrupt(_signum: int, _frame: object) -> None:
    raise KeyboardInterrupt


#: What the worker logs once its /metrics listener is up, and when it could not bind (gateway.worker.http).
_METRICS_UP = re.compile(r"worker metrics on (http://\S+?/metrics)")
_METRICS_FAILED = "worker metrics listener on "


def worker_metrics_url(
    log: Path, offset: int = 0, alive: Callable[[], bool] = lambda: True, timeout: float = 20
) -> str | None:
    """The worker's /metrics URL as its log (from byte ``offset``) reports it once listening; None when
    it says it could not bind, or says nothing within ``timeout`` seconds, or the worker is gone."""
    deadline = time.monotonic() + timeout
    while True:
        text = log.read_bytes()[offset:].decode("utf-8", "replace") if log.exists() else ""
        found = _METRICS_UP.search(text)
        if found is not None:
            return found.group(1)
        if _METRICS_FAILED in text or not alive() or time.monotonic() >= deadline:
            return None
        time.sleep(0.2)


def console_banner(
    url: str, settings: Settings, operator_password: str, worker_metrics: str | None, worker_log: Path
) -> str:
    """The operators' part of the banner; the worker's metrics only when its listener is up."""
    if worker_metrics is not None:
        worker = f"{worker_metrics}   {worker_metrics.removesuffix('/metrics')}/readyz"
    else:
        port = f"{settings.worker.metrics_host}:{settings.worker.metrics_port}"
        worker = f"no metrics listener (could not listen on {port}? see {worker_log})"
    return f"""Operators:
  Console        {url}/ops/   user demo, password {operator_password}  (made for this run)
  API docs       {url}/docs
  Worker         {worker}
  From a shell   GATEWAY_CONFIG_DIR={settings.config_dir} .venv/bin/python run.py status
"""


def banner(
    url: str,
    home: Path,
    court_token: str,
    case_token: str,
    banks: int | None = None,
    platforms: bool = False,
) -> str:
    examples = home / "examples"
    signed_id = json.loads((examples / SIGNED).read_text("utf-8"))["message_id"]
    examples = examples.relative_to(ROOT) if examples.is_relative_to(ROOT) else examples
    blocking_id = json.loads((ROOT / BLOCKING).read_text("utf-8"))["message_id"]
    return f"""
Gateway demo is running (Ctrl-C stops it). Logs: {home / "logs"}

  API            {url}            health {url}/healthz   metrics {url}/metrics
  Receipt keys   {url}/v1/keys
  SOAP (courts)  {url}/soap/courts?wsdl
  Simulators     court TAND-HN pushes a judgment every 10 s; case system THADS-HN consumes
                 queue '{CASE_QUEUE}' and confirms each one; land registry (SOAP) :9101, banks :9102,
                 tax :9103, vehicles :9104, population :9105; faults: POST :PORT/_sim/mode
                 {{"mode": "down"|"slow"|"failing"|"normal"}} (docs/partners.md)

Court token (TAND-HN, valid 1 h):
  export TOKEN={court_token}

Push a judgment signed by the court (PAdES, time-stamped; the gateway checks the signature against
its trust list, config/trust/, and the CA's revocation services before it takes the judgment):
  curl -sS -X POST {url}/v1/judgments -H "Authorization: Bearer $TOKEN" \\
       -H 'Content-Type: application/json' --data @{examples / SIGNED}

Follow it (status, timeline, and `signature`: the validation report, outcome "valid"):
  curl -sS {url}/v1/messages/{signed_id} -H "Authorization: Bearer $TOKEN"

The same judgment unsigned, and signed then altered: each is refused (422), the reasons at
$.body.document.content_base64 ("the document carries no signature"; "integrity: the signed bytes
were altered"):
  curl -sS -X POST {url}/v1/judgments -H "Authorization: Bearer $TOKEN" \\
       -H 'Content-Type: application/json' --data @{examples / UNSIGNED}
  curl -sS -X POST {url}/v1/judgments -H "Authorization: Bearer $TOKEN" \\
       -H 'Content-Type: application/json' --data @{examples / TAMPERED}

Asset lookup by the case system (land over SOAP, six banks — one answers by callback, one fetches
its work (pull mode, README) —, tax, vehicles, population; every answer within a few seconds):
  export CASE_TOKEN={case_token}
  curl -sS -X POST {url}/v1/asset-inquiries -H "Authorization: Bearer $CASE_TOKEN" \\
       -H 'Content-Type: application/json' -H 'Prefer: wait=10' --data @{INQUIRY}

{banks_part(url, home, banks)}{platforms_part(url, fresh_judgment_file(home)) if platforms else ""}
Block the debtor's accounts at a bank (an order through the generic documents endpoint; the bank
executes it once and its report comes back among the order's replies):
  curl -sS -X POST {url}/v1/documents -H "Authorization: Bearer $CASE_TOKEN" \\
       -H 'Content-Type: application/json' --data @{BLOCKING}
  curl -sS {url}/v1/messages/{blocking_id} -H "Authorization: Bearer $CASE_TOKEN"

New tokens: .venv/bin/python run.py token --client TAND-HN --private-key {home / "keys" / "TAND-HN.key"}
  (with GATEWAY_CONFIG_DIR={home / "config"})
"""


def fresh_judgment_file(home: Path) -> Path:
    """The signed example judgment as another judgment (a message id and a judgment number of its own),
    for the push through X-Road: the one pushed already would be answered as the duplicate it is."""
    doc = json.loads((home / "examples" / SIGNED).read_text("utf-8")) | {"message_id": str(uuid.uuid4())}
    doc["body"]["judgment"]["number"] = f"124/2026/DS-{uuid.uuid4().hex[:8].upper()}"
    path = home / "examples" / "judgment-via-xroad.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(doc, ensure_ascii=False, indent=2), "utf-8")
    return path.relative_to(ROOT) if path.is_relative_to(ROOT) else path


def platforms_part(url: str, example: Path) -> str:
    """The banner's lines on the exchange platforms (``--platforms``); ``example``: a judgment to push
    (a fresh copy: the bundled one may have been pushed already, and a message id is accepted once)."""
    xroad, lgsp = f"http://127.0.0.1:{XROAD_PORT}", f"http://127.0.0.1:{LGSP_PORT}"
    return f"""Through the exchange platforms (--platforms): the land registry is reached through the
simulated X-Road security server {xroad} (the gateway is {XROAD_CLIENT}),
{" and ".join(LGSP_BANKS)} through the simulated LGSP {lgsp} (OAuth2 token + lgspaccesstoken).
In the lookups above, sources `land`, `bank:BANK-VCB` and `bank:BANK-BIDV` carry `transport`: the
security server's request hash, the LGSP's transaction id.
The court as an X-Road client ({COURT_XROAD_ID}, no token: the security server vouches for it) pushes
a judgment through the same security server and gets its receipt:
  curl -sS -X POST {xroad}/r1/{XROAD_CLIENT}/{PROVIDER_SERVICE}/v1/judgments \\
       -H 'X-Road-Client: {COURT_XROAD_ID}' -H 'X-Road-UserId: VN079203000001' \\
       -H 'Content-Type: application/json' --data @{example}
Platform faults:
  curl -sS -X POST {xroad}/_sim/faults -d '{{"error": true}}'     (X-Road-Error: land unavailable)
  curl -sS -X POST {lgsp}/_sim/storm -d '{{"on": true}}'          (429s: the banks' breakers stay closed)
"""


def banks_part(url: str, home: Path, banks: int | None) -> str:
    """The banner's lookup to every configured bank (the shipped five, or ``--banks N``)."""
    count = f"all {banks} banks" if banks is not None else "every configured bank"
    example = home / "examples" / BANKS_INQUIRY
    example = example.relative_to(ROOT) if example.is_relative_to(ROOT) else example  # as the others
    # One connector call per bank, a worker serving them in parallel: a few seconds even at 100 banks.
    return f"""Asset lookup to {count} at once (banks only; each answers from the bank simulator, the
asynchronous one by callback; the answer comes when every bank has answered):
  curl -sS -X POST {url}/v1/asset-inquiries -H "Authorization: Bearer $CASE_TOKEN" \\
       -H 'Content-Type: application/json' -H 'Prefer: wait=30' --data @{example}
"""
