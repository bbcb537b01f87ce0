"""``run.py status``, ``run.py parking`` and ``run.py operators``: what operators look at and fix
from a shell. Replays and discards are audited like the console's (actor, queue, message, reason)."""

from __future__ import annotations

import argparse
import asyncio
import getpass
import json
import os
import sys
from collections.abc import Sequence
from typing import Any

import aio_pika

from gateway.settings import Settings


def _table(headers: Sequence[str], rows: Sequence[Sequence[Any]], right: Sequence[int] = ()) -> str:
    """A plain text table; columns in ``right`` are right-aligned (numbers)."""
    cells = [[("-" if v is None else str(v)) for v in row] for row in rows]
    widths = [max([len(h)] + [len(r[i]) for r in cells]) for i, h in enumerate(headers)]

    def fmt(values: Sequence[str]) -> str:
        parts = [
            v.rjust(w) if i in right else v.ljust(w)
            for i, (v, w) in enumerate(zip(values, widths, strict=True))
        ]
        return "  ".join(parts).rstrip()

    lines = [fmt(headers), fmt(["-" * w for w in widths])]
    lines += [fmt(r) for r in cells]
    return "\n".join(lines)


def _age(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    s = int(seconds)
    return f"{s} s" if s < 120 else f"{s // 60} min" if s < 7200 else f"{s // 3600} h {s % 3600 // 60} min"


def first_line(exc: BaseException) -> str:
    return (str(exc).splitlines() or [type(exc).__name__])[0]


def _status(settings: Settings, args: argparse.Namespace) -> int:
    from sqlalchemy.exc import SQLAlchemyError

    from gateway.ops import broker_health
    from gateway.ops.status import command_connection, snapshot
    from gateway.storage.database import Database

    async def run() -> int:
        # Read alongside the rest: bounded by broker.health_timeout_seconds, "unknown" past it.
        health_task = asyncio.create_task(broker_health.read(settings))
        # The broker first, within ops.broker_timeout_seconds: the database part is shown without it.
        broker_error = ""
        connection = None
        try:
            connection = await command_connection(settings)
        except (TimeoutError, OSError, aio_pika.exceptions.AMQPError) as exc:
            broker_error = first_line(exc) or type(exc).__name__
        db = Database(settings.resolved_database_url)
        try:
            snap = await snapshot(settings, db, connection, reach_broker=connection is not None)
        except SQLAlchemyError as exc:
            print(
                f"error: database unavailable or not migrated (python run.py db upgrade): {exc}",
                file=sys.stderr,
            )
            return 2
        finally:
            await db.dispose()
            if connection is not None:
                await connection.close()
            health = await health_task
        code = _print_status(settings, snap, as_json=args.json, health=health)
        if broker_error:
            print(f"error: broker unreachable: {broker_error}", file=sys.stderr)
            return 1
        return code

    return asyncio.run(run())


def _print_status(settings: Settings, snap: Any, *, as_json: bool, health: Any = None) -> int:
    """``run.py status`` output: the tables, or the console's JSON (plus ``broker_health``)."""
    if as_json:
        body = snap.as_json()
        if health is not None:
            body["broker_health"] = health.as_json()
        print(json.dumps(body, indent=2))
        return 0
    q = snap.queues
    print(f"Queues ({q.source if q else 'unavailable: ' + snap.broker_error})")
    if q and q.source == "AMQP":
        print("(the RabbitMQ management API does not answer: no unacked counts and no rates)")
    if q:
        print(
            _table(
                ["queue", "role", "ready", "unacked", "consumers", "in/s", "out/s", "parked"],
                [
                    [
                        r.name if r.exists else f"{r.name} (not declared)",
                        r.role,
                        r.ready,
                        r.unacked,
                        r.consumers,
                        None if r.publish_rate is None else f"{r.publish_rate:.1f}",
                        None if r.deliver_rate is None else f"{r.deliver_rate:.1f}",
                        r.parked,
                    ]
                    for r in q.rows
                ],
                right=(2, 3, 4, 5, 6, 7),
            )
        )
    if health is not None:
        print()
        _print_broker_health(health)
    print()
    print(
        f"Outbox: {snap.outbox.backlog} waiting for the broker; "
        f"oldest {_age(snap.outbox.oldest_age_seconds(snap.at))}"
    )
    print()
    print("Partners")
    print(
        _table(
            [
                "partner",
                "kind",
                "breaker",
                "success",
                "calls",
                "p50 ms",
                "p95 ms",
                "in flight",
                "last error",
            ],
            [
                [
                    p.code,
                    p.kind,
                    p.breaker,
                    None if p.success_rate is None else f"{p.success_rate * 100:.1f} %",
                    p.calls,
                    p.p50_ms,
                    p.p95_ms,
                    p.in_flight,
                    (p.last_error or "")[:60],
                ]
                for p in snap.partners
            ],
            right=(3, 4, 5, 6, 7),
        )
    )
    print()
    c = snap.counts
    print(
        f"Overdue: {c['overdue']}  Stuck (> {settings.ops.stuck_after_minutes:g} min): {c['stuck']}  "
        f"Retrying: {c['retrying']}  Inquiries pending: {c['pending_inquiries']}"
    )
    return 0


def _mib(value: int | None) -> str | None:
    return None if value is None else f"{value / 2**20:,.0f} MiB"


def _print_broker_health(health: Any) -> None:
    """The broker's nodes (descriptors, memory, disk) and a WARNING line per limit in reach."""
    from gateway.domain.broker_limits import committed_descriptors

    if not health.known:
        print(f"Broker health: unknown ({health.detail})")
        return
    print(f"Broker health ({health.source}; {health.quorum_queues} quorum queues)")
    print(
        _table(
            [
                "node",
                "running",
                "fds used",
                "fds committed",
                "fds limit",
                "memory",
                "watermark",
                "disk free",
                "disk limit",
            ],
            [
                [
                    n.name,
                    "yes" if n.running else "NO",
                    n.fd_used,
                    committed_descriptors(n, health.quorum_queues),
                    n.fd_total,
                    _mib(n.mem_used),
                    _mib(n.mem_limit),
                    _mib(n.disk_free),
                    _mib(n.disk_free_limit),
                ]
                for n in health.nodes
            ],
            right=(2, 3, 4, 5, 6, 7, 8),
        )
    )
    for alarm in health.verdict.alarms:
        print(f"ALARM: {alarm}")
    for warning in health.verdict.warnings:
        print(f"WARNING: {warning}")


def _actor(args: argparse.Namespace) -> str:
    actor = args.actor or os.environ.get("USER") or getpass.getuser() or "operator"
    return str(actor)[:64]


def _parking(settings: Settings, args: argparse.Namespace) -> int:
    from gateway.amqp.names import Names
    from gateway.ops import parking
    from gateway.ops.queues import gateway_queues, passive_counts
    from gateway.ops.status import READ_TIMEOUT_SECONDS, command_connection
    from gateway.storage.database import Database

    names = Names(settings.broker_namespace)
    where = parking.ParkingFilter(
        message_type=getattr(args, "type", None) or "",
        sender=getattr(args, "sender", None) or "",
        recipient=getattr(args, "recipient", None) or "",
        reason=getattr(args, "parked_reason", None) or "",
    )

    async def run() -> int:
        connection = await command_connection(settings)
        async with connection:
            if args.action == "list":
                # Reads only: bounded like the console's overview (a replay is never cut half-way).
                async def listed() -> list[tuple[str, tuple[int, int] | None]]:
                    return [
                        (names.parking(queue), await passive_counts(connection, names.parking(queue)))
                        for queue, _role in gateway_queues(settings)
                    ]

                for parking_queue, counts in await asyncio.wait_for(listed(), READ_TIMEOUT_SECONDS):
                    print(f"{parking_queue:<56} {'-' if counts is None else counts[0]}")
                return 0
            if args.action == "show":
                return await asyncio.wait_for(_show(connection, names, args, where), READ_TIMEOUT_SECONDS)
            ids = args.message_id or None
            if ids is None and args.action == "discard" and not args.all:
                # Replaying everything is harmless (consumers de-duplicate); discarding is not.
                print("error: name messages with --message-id, or pass --all (with filters)", file=sys.stderr)
                return 2
            if not args.reason.strip():
                print("error: --reason must say why", file=sys.stderr)
                return 2
            kind: parking.Action = "replay" if args.action == "replay" else "discard"
            outcome = parking.Outcome(kind, args.queue, [], [])
            try:
                await parking.act(
                    connection, names, args.queue, kind, ids, where, limit=args.limit, into=outcome
                )
            finally:
                # Whatever was done is audited, also when the broker failed half-way.
                db = Database(settings.resolved_database_url)
                try:
                    await parking.record(db, outcome, _actor(args), args.reason.strip(), via="cli")
                finally:
                    await db.dispose()
            if kind == "replay":
                moved = len(outcome.done)
                print(f"moved {moved} message(s) from {names.parking(args.queue)} back to {args.queue}")
            else:
                print(f"discarded {len(outcome.done)} message(s) from {names.parking(args.queue)}")
            for message_id in outcome.missing:
                print(f"not parked (any more): {message_id}")
            return 0 if not outcome.missing else 1

    try:
        return asyncio.run(run())
    except parking.NoSuchQueue as exc:
        print(f"error: no such queue: {exc}", file=sys.stderr)
        return 2
    except (TimeoutError, OSError, aio_pika.exceptions.AMQPError) as exc:
        print(f"error: broker unreachable: {first_line(exc) or type(exc).__name__}", file=sys.stderr)
        return 2


async def _show(connection: Any, names: Any, args: argparse.Namespace, where: Any) -> int:
    from gateway.ops import parking

    if args.message_id:
        found = await parking.show(connection, names, args.queue, args.message_id)
        if found is None:
            print(f"error: {args.message_id} is not parked in {names.parking(args.queue)}", file=sys.stderr)
            return 1
        rows: list[list[Any]] = [
            ["message_id", found.message_id],
            ["type", found.message_type],
            ["sender", found.sender],
            ["recipient", found.recipient],
            ["parked because", found.reason],
            ["parked at", found.parked_at.isoformat() if found.parked_at else "-"],
            ["deaths", found.deaths],
            ["bytes", found.size],
            *[[k, v] for k, v in found.headers.items()],
        ]
        print(_table(["field", "value"], rows))
        if args.body:
            print()
            print(parking.body_preview(found))
        return 0
    listed, seen = await parking.browse(connection, names, args.queue, where, limit=args.limit or 200)
    print(f"{names.parking(args.queue)}: {len(listed)} shown of {seen} parked")
    print(
        _table(
            ["message_id", "type", "sender", "recipient", "parked because", "parked at"],
            [
                [
                    p.message_id,
                    p.message_type,
                    p.sender,
                    p.recipient,
                    p.reason,
                    p.parked_at.isoformat(timespec="seconds") if p.parked_at else None,
                ]
                for p in listed
            ],
        )
    )
    return 0


def _operators(settings: Settings, args: argparse.Namespace) -> int:
    from gateway.ops import operators

    path = settings.path(settings.ops.operators_file)
    if args.action == "list":
        for account in operators.load(path).values():
            print(f"{account.username:<32} {account.role}")
        return 0
    if args.password_stdin:
        password = sys.stdin.readline().rstrip("\r\n")
    else:
        password = getpass.getpass(f"password for {args.username}: ")
        if getpass.getpass("again: ") != password:
            print("error: the passwords differ", file=sys.stderr)
            return 2
    try:
        account = operators.add(path, args.username, args.role, password)
    except operators.OperatorFileError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(f"operator {account.username} ({account.role}) written to {path}")
    return 0


def _filters(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--type", help="message type, e.g. judgment.delivery")
    parser.add_argument("--sender")
    parser.add_argument("--recipient")
    parser.add_argument(
        "--parked-reason", help="substring of why it was parked (rejected, delivery_limit...)"
    )


def register(sub: Any) -> None:
    status = sub.add_parser("status", help="queues, outbox, partners, overdue and stuck documents")
    status.add_argument("--json", action="store_true", help="the same as the console's /ops/api/overview")
    status.set_defaults(func=_status)

    park = sub.add_parser("parking", help="inspect parking (dead-letter) queues; replay or discard, audited")
    park_sub = park.add_subparsers(dest="action", required=True)
    park_sub.add_parser("list", help="parked messages per queue")
    queue_help = "the original queue, e.g. gw.deliver.THADS-HN"

    show = park_sub.add_parser("show", help="the parked messages of a queue, or one of them")
    show.add_argument("--queue", required=True, help=queue_help)
    show.add_argument("--message-id", help="show this one message (headers; --body for the body, masked)")
    show.add_argument("--body", action="store_true")
    show.add_argument("--limit", type=int, default=200)
    _filters(show)

    for action, helptext in (
        ("replay", "move parked messages back to their queue (same message_id: delivered once)"),
        ("discard", "drop parked messages for good; the message is marked failed with the reason"),
    ):
        p = park_sub.add_parser(action, help=helptext)
        p.add_argument("--queue", required=True, help=queue_help)
        p.add_argument("--message-id", action="append", help="this message (repeat for several)")
        p.add_argument(
            "--all",
            action="store_true",
            help="every parked message matching the filters (what replay does without --message-id)",
        )
        p.add_argument("--reason", required=True, help="why: recorded in the audit log")
        p.add_argument("--actor", help="who acts (default: $USER)")
        p.add_argument("--limit", type=int, default=None, help="at most this many")
        _filters(p)
    park.set_defaults(func=_parking)

    ops = sub.add_parser("operators", help="accounts of the operators' console (/ops)")
    ops_sub = ops.add_subparsers(dest="action", required=True)
    add = ops_sub.add_parser("add", help="create an account or set its role and password")
    add.add_argument("--username", required=True)
    add.add_argument("--role", required=True, choices=["operator", "auditor"])
    add.add_argument("--password-stdin", action="store_true", help="read the password from standard input")
    ops_sub.add_parser("list", help="usernames and roles")
    ops.set_defaults(func=_operators)
