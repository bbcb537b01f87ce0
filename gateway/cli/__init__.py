"""``python run.py <command>``: every process and operator task of the gateway."""

from __future__ import annotations

import argparse
import asyncio
import errno
import os
import signal
import sys
from pathlib import Path

from aiohttp import web

from gateway import logs
from gateway.domain.parties import CLIENT_ROLES
from gateway.security.clients import ClientConfigError, ClientStore
from gateway.security.keys import UnacceptableKey, load_private_key, write_keypair
from gateway.security.tokens import issue_token
from gateway.settings import Settings, load_settings


def _api(settings: Settings, args: argparse.Namespace) -> int:
    from gateway.web.app import create_app

    port = args.port or settings.api.port
    web.run_app(create_app(settings), host=args.host or settings.api.host, port=port, print=None)
    return 0


def _worker(settings: Settings, args: argparse.Namespace) -> int:
    from gateway.worker.main import serve

    if args.metrics_port is not None:
        settings = settings.model_copy(
            update={"worker": settings.worker.model_copy(update={"metrics_port": args.metrics_port})}
        )
    asyncio.run(serve(settings))
    return 0


def _simulate(settings: Settings, args: argparse.Namespace) -> int:
    from gateway.simulators.main import serve

    # Started in the background by a script, SIGINT comes in ignored: `kill -INT` should stop it anyway.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        asyncio.run(serve(settings, args))
    except OSError as exc:
        if exc.errno != errno.EADDRINUSE:
            raise
        # Most often the demo's own simulators hold the ports: say so instead of a traceback.
        print(
            f"error: {exc.strerror or exc} (the simulators of run.py demo or of another run.py simulate "
            "hold it?). To fault a partner of a running demo: curl -X POST "
            'http://127.0.0.1:PORT/_sim/mode -d \'{"mode": "down"}\', see docs/partners.md',
            file=sys.stderr,
        )
        return 2
    except KeyboardInterrupt:
        return 0
    return 0


def _demo(settings: Settings, args: argparse.Namespace) -> int:
    from gateway.demo import run_demo

    return run_demo(settings, args)


def _demo_banks(text: str) -> int:
    """``--banks``: a whole number of banks the demo can configure (each bank has its own queues)."""
    from gateway.demo import MAX_BANKS

    try:
        n = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"a number of banks, 1 to {MAX_BANKS}, not {text!r}") from None
    if not 1 <= n <= MAX_BANKS:
        raise argparse.ArgumentTypeError(f"1 to {MAX_BANKS} banks, not {n}")
    return n


def _db(settings: Settings, args: argparse.Namespace) -> int:
    from gateway.storage.migrate import upgrade_sync

    upgrade_sync(settings.resolved_database_url, args.revision)
    print(f"database at {args.revision}: {settings.resolved_database_url}")
    return 0


def _clients(settings: Settings, args: argparse.Namespace) -> int:
    store = ClientStore(settings.clients_dir, recheck_seconds=0)
    if args.action == "add":
        client = store.add(
            args.id,
            Path(args.public_key).read_bytes(),
            args.grant,
            deliver_to=args.deliver_to,
            name=args.name,
            outbound_hosts=args.outbound_host,
            role=args.role,
        )
        print(
            f"client {client.id}: grants {', '.join(sorted(client.grants))}; keys {len(client.keys)}; "
            f"delivery {client.deliver_to or '-'}; role {client.role or '-'}"
        )
        change = {
            "grants": sorted(client.grants),
            "keys": len(client.keys),
            "deliver_to": str(client.deliver_to or ""),
            "outbound_hosts": list(client.outbound_hosts or []),
            "role": client.role,
        }
        return _audit_client_change(settings, args, client.id, change)
    elif args.action == "revoke":
        store.revoke(args.id)
        print(f"client {args.id} revoked")
        return _audit_client_change(settings, args, args.id, None)
    else:
        for c in store.all():
            state = "revoked" if c.revoked else "active"
            role = c.role or "-"
            print(f"{c.id:<16} {state:<8} {role:<18} {','.join(sorted(c.grants)):<48} {c.deliver_to or '-'}")
    return 0


def _audit_client_change(
    settings: Settings, args: argparse.Namespace, client_id: str, change: dict[str, object] | None
) -> int:
    """Record a client change in the audit log (actor: --actor or the login name)."""
    from gateway.cli.evidence import operator
    from gateway.storage.audit import AuditEntry, append
    from gateway.storage.database import Database
    from gateway.storage.migrate import upgrade

    entry = AuditEntry(
        actor=operator(args)[:64],
        action=f"clients.{args.action}",
        outcome="changed",
        object_ref=client_id,
        data=change,
    )

    async def run() -> None:
        await upgrade(settings.resolved_database_url)
        db = Database(settings.resolved_database_url)
        try:
            async with db.transaction() as conn:
                await append(conn, entry)
        finally:
            await db.dispose()

    try:
        asyncio.run(run())
    except Exception as exc:
        print(
            f"error: client {client_id} changed, but its audit record was not written: {exc}", file=sys.stderr
        )
        return 1
    return 0


def _token(settings: Settings, args: argparse.Namespace) -> int:
    key = load_private_key(Path(args.private_key).read_bytes())
    print(issue_token(args.client, key, settings.auth.audience, ttl=args.ttl, subject=args.subject))
    return 0


def _keys(_settings: Settings, args: argparse.Namespace) -> int:
    priv, pub = write_keypair(Path(args.out), args.name, args.kind)
    print(f"private key: {priv}\npublic key:  {pub}")
    return 0


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="run.py", description="Civil judgment enforcement data-exchange gateway")
    p.add_argument("--log-level", default=os.environ.get("GATEWAY_LOG_LEVEL", "INFO"))
    sub = p.add_subparsers(dest="command", required=True)

    api = sub.add_parser("api", help="serve the HTTP API (stateless; run several behind a balancer)")
    api.add_argument("--port", type=int)
    api.add_argument("--host")
    api.set_defaults(func=_api)

    worker = sub.add_parser("worker", help="outbox relay, deliveries, lookups, deadlines")
    worker.add_argument(
        "--metrics-port", type=int, help="port of /metrics, /healthz, /readyz (default: worker.metrics_port)"
    )
    worker.set_defaults(func=_worker)

    sim = sub.add_parser(
        "simulate",
        help="partner simulators (court, case system, land, banks, tax, vehicles, population), the "
        "X-Road security server and LGSPs the partners configuration routes them through, and a test CA "
        "(OCSP, CRL, time-stamps) the court signs its judgments with",
    )
    sim.add_argument("--court-interval", type=float, default=10.0, help="seconds between pushed judgments")
    sim.add_argument("--court-count", type=int, default=0, help="judgments to push (0 = forever)")
    partner_kinds = ["land", "bank", "tax", "vehicle", "population"]
    for mode, meaning in (
        ("down", "port closed"),
        ("slow", "answers after 30 s, longer than the gateway's timeout"),
        ("failing", "HTTP 503 / SOAP Fault, or a malformed body"),
    ):
        sim.add_argument(
            f"--{mode}",
            nargs="*",
            choices=partner_kinds,
            default=[],
            metavar="KIND",
            help=f"{meaning}; KIND is one of {', '.join(partner_kinds)}",
        )
    sim.add_argument(
        "--silent",
        nargs="*",
        default=[],
        metavar="BANK",
        help="banks that accept orders and never report (to watch deadlines escalate), e.g. BANK-AGR",
    )
    sim.add_argument(
        "--partners-only", action="store_true", help="only the asset partners, no court/case system"
    )
    sim.set_defaults(func=_simulate)

    demo = sub.add_parser("demo", help="api + worker + simulators on this machine, with a ready token")
    demo.add_argument("--port", type=int, default=8080)
    demo.add_argument(
        "--banks",
        type=_demo_banks,
        metavar="N",
        help="configure N banks (1-120): the shipped ones, then Vietnam's other credit institutions, "
        "each served by the bank simulator (default: the shipped banks)",
    )
    demo.add_argument(
        "--platforms",
        action="store_true",
        help="reach the land registry through a simulated X-Road security server (:9110) and two banks "
        "through a simulated provincial LGSP (:9120), as partners are reached in production",
    )
    demo.set_defaults(func=_demo)

    db = sub.add_parser("db", help="database schema")
    db.add_argument("action", choices=["upgrade"])
    db.add_argument("--revision", default="head")
    db.set_defaults(func=_db)

    cl = sub.add_parser("clients", help="manage API clients (stored under the config directory)")
    cl_sub = cl.add_subparsers(dest="action", required=True)
    add = cl_sub.add_parser("add", help="register a client or add a key / change grants")
    add.add_argument("--id", required=True, help="the client's agency code, e.g. TAND-HN")
    add.add_argument("--public-key", required=True, help="PEM file, Ed25519 or EC P-256")
    add.add_argument("--grant", nargs="+", required=True, metavar="SERVICE")
    add.add_argument("--deliver-to", help="amqp:QUEUE or https://… webhook for documents addressed to it")
    add.add_argument("--name")
    add.add_argument(
        "--outbound-host",
        nargs="+",
        metavar="HOST",
        help="the only hosts its callback and webhook URLs may name (default: any host the policy allows)",
    )
    add.add_argument(
        "--role",
        choices=sorted(CLIENT_ROLES),
        help="the kind of party it is: it may send only the document types its role sends "
        "(default: the partner kind in partners.toml, else the agency-code prefix)",
    )
    add.add_argument("--actor", help="who makes the change, for the audit log (default: $USER)")
    cl_sub.add_parser("list")
    rev = cl_sub.add_parser("revoke")
    rev.add_argument("--id", required=True)
    rev.add_argument("--actor", help="who makes the change, for the audit log (default: $USER)")
    cl.set_defaults(func=_clients)

    tok = sub.add_parser("token", help="print a token the gateway accepts for a client")
    tok.add_argument("--client", required=True)
    tok.add_argument("--private-key", required=True)
    tok.add_argument("--ttl", type=int, default=3600)
    tok.add_argument("--subject")
    tok.set_defaults(func=_token)

    keys = sub.add_parser("keys", help="generate a key pair for a client")
    keys.add_argument("--out", required=True)
    keys.add_argument("--name", required=True)
    keys.add_argument("--kind", choices=["ed25519", "p256"], default="ed25519")
    keys.set_defaults(func=_keys)

    # Operator and evidence commands live beside this module, one file per concern.
    from gateway.cli import citizens, evidence, operations

    operations.register(sub)
    evidence.register(sub)
    citizens.register(sub)
    return p


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    logs.configure(args.log_level)
    settings = load_settings()
    try:
        return int(args.func(settings, args))
    except (ClientConfigError, UnacceptableKey, FileNotFoundError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
