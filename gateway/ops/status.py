"""One picture of the gateway for operators: queues, outbox, partners, overdue and stuck counts.

Shared by the console's overview (``/ops/``, ``/ops/api/overview``) and ``run.py status``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import aio_pika
from aio_pika.abc import AbstractConnection, AbstractRobustConnection
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncConnection

from gateway.ops import backlog, broker_health, history, partners, queues
from gateway.ops.partners import PartnerHealth
from gateway.partners import load_partners
from gateway.settings import Settings
from gateway.storage.database import Database
from gateway.storage.tables import messages
from gateway.storage.timestamps import iso, now

log = logging.getLogger(__name__)

BROKER_TIMEOUT_SECONDS = 5.0
#: A broker that stops answering must not hang the overview.
READ_TIMEOUT_SECONDS = 15.0


#: Longest a console page waits on the broker (AMQP reads, the management API); past it, the page is
#: answered from the database and the broker's last known figures, and the read goes on in the background.
BROKER_BUDGET_SECONDS = 1.0
#: Queue figures younger than this are not read again (whatever the number of open consoles).
QUEUES_FRESH_SECONDS = 4.0
#: A broker read in flight for longer than this says the broker does not answer.
STALL_SECONDS = 3.0
#: Failed documents counted on the overview: those that failed this recently.
FAILED_WINDOW_HOURS = 24


@dataclass(frozen=True, slots=True)
class BrokerView:
    """What the console knows of the broker: whether it answers, when it last did, its alarms."""

    reachable: bool | None  # None: the first read is still under way
    last_seen: datetime | None  # when it last answered a read
    error: str  # why it is not reachable
    health: broker_health.BrokerHealth | None  # alarms and readings; None: not read (the CLI)
    health_pending: bool = False  # the management API is still being asked

    @property
    def alarms(self) -> list[str]:
        return list(self.health.verdict.alarms) if self.health else []

    @property
    def warnings(self) -> list[str]:
        return list(self.health.verdict.warnings) if self.health else []

    @property
    def state(self) -> str:
        """``ok``, ``alarm`` (answers, under a resource alarm or near a limit), ``down`` or ``checking``."""
        if self.reachable is None:
            return "checking"
        if not self.reachable:
            return "down"
        return "alarm" if self.alarms or self.warnings else "ok"

    def as_json(self) -> dict[str, Any]:
        return {
            "state": self.state,
            "reachable": self.reachable,
            "last_seen": iso(self.last_seen),
            "error": self.error,
            "alarms": self.alarms,
            "warnings": self.warnings,
            "readings": (self.health.source if self.health and self.health.known else "unknown"),
            "readings_detail": (
                "still asking the management API"
                if self.health_pending
                else (self.health.detail if self.health else "not read")
            ),
        }


@dataclass(frozen=True, slots=True)
class Snapshot:
    at: datetime
    queues: queues.QueueOverview | None  # the last known figures (None: never read, or the CLI failed)
    broker_error: str
    outbox: backlog.OutboxState
    partners: list[partners.PartnerHealth]
    counts: dict[str, int]
    broker: BrokerView = field(default_factory=lambda: BrokerView(None, None, "", None))
    #: When :attr:`queues` were read; older than the snapshot when the broker does not answer now.
    queues_at: datetime | None = None
    #: Parked messages in every parking queue: the broker's, or the worker's last sample (with its time).
    parked_total: int | None = None
    parked_at: datetime | None = None
    failed: int = 0  # documents failed in the last FAILED_WINDOW_HOURS

    @property
    def queues_fresh(self) -> bool:
        return self.queues is not None and self.broker.reachable is True

    @property
    def parked_age_seconds(self) -> float | None:
        return None if self.parked_at is None else max(0.0, (self.at - self.parked_at).total_seconds())

    @property
    def headline(self) -> dict[str, int | None]:
        """The overview's cards: each a number an operator wants at zero."""
        c = self.counts
        return {
            "failed": self.failed,
            "parked": self.parked_total,
            "overdue": c.get("overdue", 0),
            "stuck": c.get("stuck", 0),
            "retrying": c.get("retrying", 0),
        }

    def groups(self) -> list[QueueGroup]:
        return group_queues(self.queues.rows if self.queues else [], self.partners)

    def partner_kinds(self) -> list[tuple[str, list[PartnerHealth]]]:
        """Partners by kind (land, bank, tax, …), the kinds with a partner in trouble first."""
        kinds: dict[str, list[PartnerHealth]] = {}
        for p in self.partners:
            kinds.setdefault(p.kind, []).append(p)
        bad = {"down", "failing"}
        return sorted(kinds.items(), key=lambda kv: (not any(p.state in bad for p in kv[1]), kv[0]))

    def as_json(self) -> dict[str, Any]:
        """What ``GET /ops/api/overview`` returns (the page refreshes itself from it)."""
        q = self.queues
        return {
            "at": iso(self.at),
            "source": q.source if q and self.queues_fresh else "unavailable",
            "broker_error": self.broker_error,
            "broker": self.broker.as_json(),
            "queues_at": iso(self.queues_at),
            "queues": [
                {
                    "name": r.name,
                    "role": r.role,
                    "exists": r.exists,
                    "depth": r.depth,
                    "ready": r.ready,
                    "unacked": r.unacked,
                    "consumers": r.consumers,
                    "publish_rate": r.publish_rate,
                    "deliver_rate": r.deliver_rate,
                    "parking": r.parking,
                    "parked": r.parked,
                }
                for r in (q.rows if q else [])
            ],
            "parked_total": self.parked_total,
            "parked_at": iso(self.parked_at),
            "parked_age_seconds": self.parked_age_seconds,
            "headline": self.headline,
            "outbox": {
                "backlog": self.outbox.backlog,
                "oldest_at": iso(self.outbox.oldest_at),
                "oldest_age_seconds": self.outbox.oldest_age_seconds(self.at),
            },
            "partners": [
                {
                    "code": p.code,
                    "kind": p.kind,
                    "breaker": p.breaker,
                    "state": p.state,
                    "state_class": p.state_class,
                    "why": p.why,
                    "success_rate": p.success_rate,
                    "calls": p.calls,
                    "p50_ms": p.p50_ms,
                    "p95_ms": p.p95_ms,
                    "in_flight": p.in_flight,
                    "last_error": p.last_error,
                    "last_error_at": iso(p.last_error_at),
                }
                for p in self.partners
            ],
            "counts": self.counts,
            "alerts": [a.as_json() for a in alerts(self)],
        }


@dataclass(frozen=True, slots=True)
class QueueGroup:
    """The queues of one role, those that need a look (depth, parked, no consumer, missing) apart."""

    role: str
    busy: list[queues.QueueRow]
    quiet: list[queues.QueueRow]

    @property
    def parked(self) -> int:
        return sum(r.parked or 0 for r in self.busy + self.quiet)

    @property
    def undeclared(self) -> int:
        """Folded queues the broker does not have (yet: a worker declares them when it starts)."""
        return sum(1 for r in self.quiet if not r.exists)

    @property
    def unconsumed(self) -> int:
        """Folded queues nobody consumes (empty, so nothing waits; a worker may be missing)."""
        return sum(1 for r in self.quiet if r.exists and r.consumers == 0)

    @property
    def depth(self) -> int:
        return sum(r.depth or 0 for r in self.busy + self.quiet)


#: The order of the roles on the overview.
ROLES = ("delivery", "client", "partner", "urgent-delivery", "callbacks")


def _needs_a_look(r: queues.QueueRow) -> bool:
    """Something waits in it or was parked from it. An empty queue is folded even when it is not declared
    or has no consumer (the fold counts those): nothing waits, and a hundred banks' queues must fit."""
    return bool(r.depth) or bool(r.parked)


def group_queues(rows: list[queues.QueueRow], _partners: list[partners.PartnerHealth]) -> list[QueueGroup]:
    """By role; in each, the queues holding or parking something first (most parked, then deepest), the
    empty ones folded apart (one line on the page for a hundred banks)."""
    by_role: dict[str, list[queues.QueueRow]] = {}
    for r in rows:
        by_role.setdefault(r.role, []).append(r)
    order = {role: i for i, role in enumerate(ROLES)}
    out = []
    for role in sorted(by_role, key=lambda x: (order.get(x, len(ROLES)), x)):
        listed = by_role[role]
        busy = sorted(
            (r for r in listed if _needs_a_look(r)), key=lambda r: (-(r.parked or 0), -(r.depth or 0), r.name)
        )
        quiet = sorted((r for r in listed if not _needs_a_look(r)), key=lambda r: r.name)
        out.append(QueueGroup(role, busy, quiet))
    return out


@dataclass(frozen=True, slots=True)
class Alert:
    """One condition an operator must look at: the same as the overview's cards and broker banner."""

    key: str  # stable: "partner:BANK-VCB", "parked", "broker"…
    severity: str  # "critical" | "warning"
    title: str
    detail: str
    link: str  # a console path under /ops
    since: datetime | None = None

    def as_json(self) -> dict[str, Any]:
        return {
            "key": self.key,
            "severity": self.severity,
            "title": self.title,
            "detail": self.detail,
            "link": self.link,
            "since": iso(self.since),
        }


def alerts(snap: Snapshot, since: dict[str, datetime] | None = None) -> list[Alert]:
    """Active alerts of ``snap``, critical first; ``since`` gives when each (by key) began."""
    since = since or {}
    out: list[Alert] = []

    def add(key: str, severity: str, title: str, detail: str, link: str) -> None:
        out.append(Alert(key, severity, title, detail, link, since.get(key)))

    b = snap.broker
    if b.reachable is False:
        add("broker", "critical", "Broker unreachable", b.error or "the broker does not answer", "/ops/")
    for alarm in b.alarms:
        add(f"broker-alarm:{alarm}", "critical", "Broker alarm", alarm, "/ops/")
    for warning in b.warnings:
        add(f"broker-warning:{warning}", "warning", "Broker near a limit", warning, "/ops/")
    for p in snap.partners:
        if p.state == "down":
            add(f"partner:{p.code}", "critical", f"{p.code}: breaker open", p.why, f"/ops/partners/{p.code}")
        elif p.state == "failing":
            add(f"partner:{p.code}", "critical", f"{p.code} failing", p.why, f"/ops/partners/{p.code}")
        elif p.state == "degraded":
            add(f"partner:{p.code}", "warning", f"{p.code} degraded", p.why, f"/ops/partners/{p.code}")
    if snap.parked_total:
        stale = "" if snap.queues_fresh else " (last known)"
        add("parked", "critical", "Parked messages", f"{snap.parked_total} parked{stale}", "/ops/parking")
    h = snap.headline
    if h["failed"]:
        add("failed", "warning", "Failed documents", f"{h['failed']} in the last {FAILED_WINDOW_HOURS} h",
            "/ops/messages?status=failed")  # fmt: skip
    if h["overdue"]:
        add(
            "overdue",
            "critical",
            "Overdue documents",
            f"{h['overdue']} past their deadline",
            "/ops/stuck#overdue",
        )
    if h["stuck"]:
        add("stuck", "warning", "Stuck documents", f"{h['stuck']} unchanged for too long", "/ops/stuck#stuck")
    rank = {"critical": 0, "warning": 1}
    return sorted(out, key=lambda a: rank.get(a.severity, 2))


async def broker_connection(settings: Settings) -> AbstractRobustConnection:
    """A connection for operator reads, failing fast (the workers' connect waits forever instead)."""
    from gateway.amqp.broker import node_urls

    # A robust connection to one node: the first of a cluster's nodes that answers.
    error: BaseException = ValueError("no broker URL")
    for url in node_urls(settings.broker_url):
        try:
            return await asyncio.wait_for(
                aio_pika.connect_robust(url, client_properties={"connection_name": "gateway-ops"}),
                timeout=BROKER_TIMEOUT_SECONDS,
            )
        except (TimeoutError, OSError, aio_pika.exceptions.AMQPError) as exc:
            error = exc
    raise error


class BrokerSilent(TimeoutError):
    """The broker did not complete the AMQP handshake in time (it accepted the TCP connection, or not)."""


def safe_url(url: str) -> str:
    """``url`` without its password, for messages."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = f"{parts.username}:***@{parts.hostname}" + (f":{parts.port}" if parts.port else "")
    return urlunsplit(parts._replace(netloc=netloc))


async def command_connection(settings: Settings) -> AbstractConnection:
    """A one-shot connection for an operator command, given up after ``ops.broker_timeout_seconds``.

    Not a robust connection: a robust one whose first attempt is cancelled schedules its own reconnects,
    and ``asyncio.run`` then never returns, so a broker that accepts the TCP connection and never answers
    kept ``run.py status`` running for ever."""
    timeout = settings.ops.broker_timeout_seconds
    from gateway.amqp.broker import connect_once

    try:
        # A cluster's nodes in turn (broker_url lists them), each given the whole timeout.
        return await connect_once(settings.broker_url, "gateway-ops-cli", timeout)
    except TimeoutError as exc:
        nodes = ", ".join(safe_url(u) for u in settings.broker_urls)
        raise BrokerSilent(
            f"the broker at {nodes} did not answer within {timeout:g} s (ops.broker_timeout_seconds)"
        ) from exc


async def queue_overview(
    settings: Settings, connection: AbstractConnection | None
) -> tuple[queues.QueueOverview | None, str]:
    try:
        if connection is None:
            connection = await broker_connection(settings)
            async with connection:
                return await asyncio.wait_for(queues.overview(settings, connection), READ_TIMEOUT_SECONDS), ""
        return await asyncio.wait_for(queues.overview(settings, connection), READ_TIMEOUT_SECONDS), ""
    except (TimeoutError, OSError, ConnectionError, aio_pika.exceptions.AMQPError) as exc:
        log.warning("queue overview: broker unreachable: %s", exc)
        return None, f"broker unreachable: {type(exc).__name__}"


class BrokerReads:
    """The console's reads of the broker, each awaited at most a budget (about a second).

    A read not done within the budget goes on in the background; the page is answered with the last
    figures it brought and their time, so a broker that does not answer never holds a page (the AMQP
    connect alone may wait :data:`BROKER_TIMEOUT_SECONDS`). One read at a time per process, however many
    consoles are open. Holds the last value of each read for as long as the process lives."""

    def __init__(
        self,
        settings: Settings,
        connect: Callable[[], Awaitable[AbstractConnection | None]] | None = None,
    ) -> None:
        self.settings = settings
        self._connect = connect or self._own_connection
        self._connection: AbstractConnection | None = None
        self.queues: queues.QueueOverview | None = None
        self.queues_at: datetime | None = None
        self.error = ""
        self._ok: bool | None = None  # how the last finished queue read ended
        self._queue_task: asyncio.Task[None] | None = None
        self._queue_started = 0.0
        self._queue_done = 0.0
        self.health: broker_health.BrokerHealth | None = None
        self._health_task: asyncio.Task[None] | None = None

    async def _own_connection(self) -> AbstractConnection:
        """A plain connection kept between reads and opened again after a failure. Not a robust one: a
        robust connection whose attempt is cancelled (a timeout, a shutdown) schedules reconnects of its
        own that never end."""
        from gateway.amqp.broker import connect_once

        if self._connection is None or self._connection.is_closed:
            self._connection = await connect_once(
                self.settings.broker_url, "gateway-ops-console", BROKER_TIMEOUT_SECONDS
            )
        return self._connection

    async def _read_queues(self) -> None:
        try:
            connection = await self._connect()
            if connection is None:
                raise ConnectionError("no broker connection")
            overview = await asyncio.wait_for(
                queues.overview(self.settings, connection), READ_TIMEOUT_SECONDS
            )
        except (TimeoutError, OSError, ConnectionError, aio_pika.exceptions.AMQPError) as exc:
            log.warning("console: broker read failed: %s", exc)
            self._ok, self.error = False, f"broker unreachable: {type(exc).__name__}"
            await self._drop()
        except Exception as exc:  # a page must never fail on a broker read
            log.warning("console: broker read failed", exc_info=True)
            self._ok, self.error = False, f"broker read failed: {type(exc).__name__}"
        else:
            self.queues, self.queues_at, self._ok, self.error = overview, now(), True, ""
        finally:
            self._queue_done = time.monotonic()

    async def _read_health(self) -> None:
        self.health = await broker_health.cached(self.settings)

    def _start(self) -> None:
        mono = time.monotonic()
        running = self._queue_task is not None and not self._queue_task.done()
        if not running and (self._queue_done == 0.0 or mono - self._queue_done >= QUEUES_FRESH_SECONDS):
            self._queue_started = mono
            self._queue_task = asyncio.create_task(self._read_queues())
        if self._health_task is None or self._health_task.done():
            self._health_task = asyncio.create_task(self._read_health())

    async def view(self, budget: float = BROKER_BUDGET_SECONDS) -> BrokerView:
        """Start the reads that are due, wait for them at most ``budget`` seconds, say what is known."""
        self._start()
        pending = {t for t in (self._queue_task, self._health_task) if t is not None and not t.done()}
        if pending:
            await asyncio.wait(pending, timeout=budget)
        stalled = (
            self._queue_task is not None
            and not self._queue_task.done()
            and time.monotonic() - self._queue_started > STALL_SECONDS
        )
        if stalled:
            reachable: bool | None = False
            error = f"the broker has not answered for {time.monotonic() - self._queue_started:.0f} s"
        else:
            reachable, error = self._ok, self.error
        health_pending = self._health_task is not None and not self._health_task.done()
        return BrokerView(reachable, self.queues_at, error, self.health, health_pending)

    async def _drop(self) -> None:
        connection, self._connection = self._connection, None
        if connection is not None and not connection.is_closed:
            with contextlib.suppress(Exception):
                await connection.close()

    async def close(self) -> None:
        """Let a read under way finish (each is bounded) rather than cancel it: a robust AMQP connection
        whose first attempt is cancelled schedules its own reconnects and keeps the loop alive for ever."""
        running = {t for t in (self._queue_task, self._health_task) if t is not None and not t.done()}
        if running:
            _, late = await asyncio.wait(running, timeout=BROKER_TIMEOUT_SECONDS + READ_TIMEOUT_SECONDS)
            for task in late:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await task
        await self._drop()


async def failed_since(conn: AsyncConnection, since: datetime) -> int:
    """Documents that failed (their last change) since ``since``."""
    stmt = (
        select(func.count())
        .select_from(messages)
        .where(messages.c.status == "failed", messages.c.updated_at >= since)
    )
    return int((await conn.execute(stmt)).scalar_one())


async def _database_part(
    settings: Settings, db: Database, at: datetime
) -> tuple[
    backlog.OutboxState, list[partners.PartnerHealth], dict[str, int], int, tuple[int, datetime] | None
]:
    async with db.read() as conn:
        outbox = await backlog.outbox_state(conn)
        health = await partners.health(conn, load_partners(settings.config_dir), at)
        counts = await backlog.counts(conn, settings.ops.stuck_after_minutes, at)
        failed = await failed_since(conn, at - timedelta(hours=FAILED_WINDOW_HOURS))
        parked = await history.last_value(conn, history.PARKED_TOTAL)
    return outbox, health, counts, failed, parked


async def snapshot(
    settings: Settings,
    db: Database,
    connection: AbstractConnection | None = None,
    reach_broker: bool = True,
    reads: BrokerReads | None = None,
    budget: float = BROKER_BUDGET_SECONDS,
) -> Snapshot:
    """With ``reads`` (the console): the broker is asked through it, at most ``budget`` seconds, while
    the database is read. Without (``run.py status``): ``connection`` None opens one for this call,
    unless ``reach_broker`` is False (the caller knows the broker is unreachable: the queues are then
    reported unavailable at once)."""
    at = now()
    if reads is not None:
        view_task = asyncio.create_task(reads.view(budget))
        try:
            outbox, health, counts, failed, sampled = await _database_part(settings, db, at)
        finally:
            view = await view_task
        overview, queues_at, error = reads.queues, reads.queues_at, view.error
    else:
        if reach_broker:
            overview, error = await queue_overview(settings, connection)
        else:
            overview, error = None, "broker unreachable"
        outbox, health, counts, failed, sampled = await _database_part(settings, db, at)
        queues_at = at if overview is not None else None
        view = BrokerView(overview is not None, queues_at, error, None)
    parked_total: int | None
    parked_at: datetime | None
    if overview is not None and view.reachable:
        parked_total, parked_at = overview.parked_total, queues_at
    else:
        # The broker does not answer: the last figure known, ours or the worker's sample, with its time.
        known: list[tuple[int, datetime]] = [sampled] if sampled else []
        if overview is not None and queues_at is not None:
            known.append((overview.parked_total, queues_at))
        parked_total, parked_at = max(known, key=lambda vt: vt[1]) if known else (None, None)
    return Snapshot(
        at, overview, error, outbox, health, counts, view, queues_at, parked_total, parked_at, failed
    )
