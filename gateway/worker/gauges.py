"""Gauges the worker polls: queue depths from the broker, inquiries and overdue documents from the
database (the outbox's backlog and lag are the relay's). Each poll is cheap (passive declares or one
management API call; grouped COUNT queries); a failed poll leaves the last values in place and is
retried at the next tick."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable

from aio_pika.abc import AbstractRobustConnection
from prometheus_client import Gauge
from sqlalchemy import func, select

from gateway.amqp.names import Names
from gateway.domain.inquiry import InquiryStatus
from gateway.domain.status import Status
from gateway.metrics import observe_signing_key
from gateway.ops import history, partners
from gateway.ops.queues import QueueOverview, overview
from gateway.partners import load_partners
from gateway.settings import Settings
from gateway.storage.database import Database
from gateway.storage.tables import inquiries, messages
from gateway.storage.timestamps import now

log = logging.getLogger(__name__)

QUEUE_MESSAGES = Gauge(
    "gateway_queue_messages",
    "Messages in a gateway queue by state: ready, or unacked (only when the management API answers)",
    ["queue", "state"],
)
QUEUE_CONSUMERS = Gauge("gateway_queue_consumers", "Consumers of a gateway queue", ["queue"])
PARKING_MESSAGES = Gauge(
    "gateway_parking_messages", "Messages waiting in the parking queue of a gateway queue", ["queue"]
)
INQUIRIES = Gauge("gateway_inquiries", "Asset inquiries by overall status", ["status"])
DOCUMENTS_OVERDUE = Gauge("gateway_documents_overdue", "Documents past their deadline, by type", ["type"])
POLL_AGE = Gauge(
    "gateway_metrics_poll_age_seconds",
    "Seconds since a metrics poller last succeeded (grows while the broker or database does not answer)",
    ["poller"],
)


class _Labels:
    """The label sets a gauge was given at the last poll: series that vanished are removed, not frozen."""

    def __init__(self, gauge: Gauge) -> None:
        self._gauge = gauge
        self._seen: set[tuple[str, ...]] = set()

    def replace(self, values: dict[tuple[str, ...], float]) -> None:
        for labels, value in values.items():
            self._gauge.labels(*labels).set(value)
        for gone in self._seen - values.keys():
            with contextlib.suppress(KeyError):
                self._gauge.remove(*gone)
        self._seen = set(values)


class Poller:
    """Runs ``poll`` every ``interval`` seconds; remembers when it last succeeded."""

    def __init__(self, name: str, interval: float, poll: Callable[[], Awaitable[None]]) -> None:
        self.name = name
        self.interval = interval
        self._poll = poll
        self.last_success: float | None = None
        self._started = time.monotonic()

    def age(self) -> float:
        """Seconds since the last success (since the start, before the first)."""
        return time.monotonic() - (self.last_success or self._started)

    async def run(self) -> None:
        while True:
            await self.once()
            POLL_AGE.labels(self.name).set(self.age())
            await asyncio.sleep(self.interval)

    async def once(self) -> bool:
        try:
            await self._poll()
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # metrics must never stop the worker
            log.warning("%s poll failed: %s", self.name, exc)
            return False
        self.last_success = time.monotonic()
        return True


class QueueGauges:
    def __init__(self, settings: Settings, connection: AbstractRobustConnection) -> None:
        self._settings = settings
        self._connection = connection
        self._messages = _Labels(QUEUE_MESSAGES)
        self._consumers = _Labels(QUEUE_CONSUMERS)
        self._parking = _Labels(PARKING_MESSAGES)
        #: The last overview read, with its monotonic time (the history sampler reuses it).
        self.last: tuple[float, QueueOverview] | None = None
        #: Called after each successful read (the history sampler).
        self.after_poll: Callable[[QueueOverview], Awaitable[None]] | None = None

    async def poll(self) -> None:
        seen = await overview(self._settings, self._connection)
        self.apply(seen)
        if self.after_poll is not None:
            await self.after_poll(seen)

    def apply(self, seen: QueueOverview) -> None:
        self.last = (time.monotonic(), seen)
        messages_: dict[tuple[str, ...], float] = {}
        consumers: dict[tuple[str, ...], float] = {}
        parking: dict[tuple[str, ...], float] = {}
        for row in seen.rows:
            if not row.exists:
                continue
            if row.ready is not None:
                messages_[(row.name, "ready")] = row.ready
            if row.unacked is not None:
                messages_[(row.name, "unacked")] = row.unacked
            if row.consumers is not None:
                consumers[(row.name,)] = row.consumers
            if row.parked is not None:
                parking[(row.name,)] = row.parked
        self._messages.replace(messages_)
        self._consumers.replace(consumers)
        self._parking.replace(parking)


class DatabaseGauges:
    def __init__(self, settings: Settings, db: Database) -> None:
        self._settings = settings
        self._db = db
        self._overdue = _Labels(DOCUMENTS_OVERDUE)
        self._inquiries = _Labels(INQUIRIES)
        self.overdue_by_type: dict[str, int] = {}

    async def poll(self) -> None:
        async with self._db.read() as conn:
            by_status = (
                await conn.execute(select(inquiries.c.status, func.count()).group_by(inquiries.c.status))
            ).all()
            overdue = (
                await conn.execute(
                    select(messages.c.message_type, func.count())
                    .where(messages.c.status == Status.OVERDUE.value)
                    .group_by(messages.c.message_type)
                )
            ).all()
        counts: dict[tuple[str, ...], float] = {(s.value,): 0 for s in InquiryStatus}
        counts |= {(str(status),): int(n) for status, n in by_status}
        self._inquiries.replace(counts)
        self._overdue.replace({(str(kind),): int(n) for kind, n in overdue})
        self.overdue_by_type = {str(kind): int(n) for kind, n in overdue}
        observe_signing_key(self._settings)


class HistorySamples:
    """The figures the console charts over time (gateway/ops/history.py), to ``ops_samples``: queued and
    parked messages after a queue poll — at once when the parked count changed, else about once a minute
    (so the console knows the last parked count when the broker stops answering) — and overdue documents
    and the partners' health once a minute. Samples older than ``history.KEEP_DAYS`` are deleted about
    once an hour."""

    def __init__(self, settings: Settings, db: Database, database: DatabaseGauges) -> None:
        self._settings = settings
        self._db = db
        self._database = database
        self._sampler = history.Sampler()
        self._queues_sampled = 0.0
        self._parked: int | None = None

    def queue_rows(self, seen: QueueOverview) -> list[tuple[str, int | None, int | None]]:
        """(owner, depth, parked) of every queue; a recipient's urgent lane counts as its own."""
        deliver = Names(self._settings.broker_namespace).deliver("")
        rows = []
        for r in seen.rows:
            owner = r.name[len(deliver) :] if r.name.startswith(deliver) else r.name
            rows.append((owner.removesuffix(".urgent"), r.depth, r.parked))
        return rows

    async def after_queue_poll(self, seen: QueueOverview) -> None:
        mono = time.monotonic()
        changed = seen.parked_total != self._parked
        if not changed and self._queues_sampled and mono - self._queues_sampled < history.SAMPLE_SECONDS:
            return
        samples = self._sampler.queue_samples(self.queue_rows(seen))
        async with self._db.transaction() as conn:
            await history.record(conn, samples, now())
        self._queues_sampled, self._parked = mono, seen.parked_total

    async def poll(self) -> None:
        at = now()
        async with self._db.read() as conn:
            seen = await partners.health(conn, load_partners(self._settings.config_dir), at)
        partner_rows = [(p.code, p.breaker, p.calls, p.failures, p.p50_ms, p.p95_ms) for p in seen]
        samples = self._sampler.other_samples(self._database.overdue_by_type, partner_rows)
        async with self._db.transaction() as conn:
            await history.record(conn, samples, at)
            if self._sampler.prune_due():
                await history.prune(conn, history.keep_since(at))


def pollers(settings: Settings, db: Database, connection: AbstractRobustConnection) -> list[Poller]:
    w = settings.worker
    queue_gauges = QueueGauges(settings, connection)
    database_gauges = DatabaseGauges(settings, db)
    samples = HistorySamples(settings, db, database_gauges)
    queue_gauges.after_poll = samples.after_queue_poll
    return [
        Poller("queues", w.queue_poll_seconds, queue_gauges.poll),
        Poller("database", w.database_poll_seconds, database_gauges.poll),
        Poller("history", history.SAMPLE_SECONDS, samples.poll),
    ]
