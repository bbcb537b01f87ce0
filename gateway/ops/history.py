"""The console's charts over the last hours and days, from what the gateway records anyway.

- Message events (table ``evidences``): documents accepted, delivered, failed deliveries and failures, per
  flow (message type) — counted per time bucket.
- Figures nothing else keeps over time (table ``ops_samples``): parked and queued messages, overdue
  documents, each partner's calls, failures and latency. The worker's gauge loop writes them about once a
  minute (:class:`Sampler`) and deletes them after :data:`KEEP_DAYS` days.

Every query is bounded: by time range, by series, and by :data:`MAX_ROWS`; bucketing is done here (the
same on SQLite and PostgreSQL). No monitoring server is needed.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Final

from sqlalchemy import delete, func, insert, select
from sqlalchemy.ext.asyncio import AsyncConnection

from gateway.storage.tables import evidences, messages, ops_samples
from gateway.storage.timestamps import as_utc, now

#: Ranges offered by the pages: name -> (seconds, buckets).
RANGES: Final = {"1h": (3600, 60), "6h": (6 * 3600, 72), "24h": (86400, 96), "7d": (7 * 86400, 84)}
DEFAULT_RANGE: Final = "6h"
#: Samples are kept this long (a little more than the longest range).
KEEP_DAYS: Final = 8
#: Most rows one chart reads.
MAX_ROWS: Final = 50_000
#: How often the worker samples (seconds), and prunes.
SAMPLE_SECONDS: Final = 60.0
PRUNE_SECONDS: Final = 3600.0

# Series of ops_samples (key: "" for a total, else the queue owner, message type or partner).
PARKED_TOTAL: Final = "parked_total"
QUEUED_TOTAL: Final = "queued_total"
QUEUED: Final = "queued"  # key: the queue's owner (client or partner code), its queues summed
OVERDUE: Final = "overdue"  # key: "" (all) or the message type
PARTNER_CALLS: Final = "partner_calls"  # calls in the workers' rolling window (5 min)
PARTNER_FAILURES: Final = "partner_failures"
PARTNER_P50: Final = "partner_p50_ms"
PARTNER_P95: Final = "partner_p95_ms"
PARTNER_OPEN: Final = "partner_open"  # 1 while a worker sees its breaker open

#: Message events charted per flow.
EVENTS: Final = ("accepted", "delivered", "delivery_failed", "failed")


def range_of(name: str | None) -> tuple[str, int, int]:
    """(name, seconds, buckets) of a range given in a URL; the default for anything unknown."""
    key = name if name in RANGES else DEFAULT_RANGE
    seconds, buckets = RANGES[key]
    return key, seconds, buckets


@dataclass(frozen=True, slots=True)
class Series:
    """One chart line: a value per bucket (None: nothing recorded then)."""

    name: str
    start: datetime
    step_seconds: float
    values: list[float | None]
    truncated: bool = False  # MAX_ROWS reached: the oldest part may be missing

    @property
    def last(self) -> float | None:
        return next((v for v in reversed(self.values) if v is not None), None)

    @property
    def peak(self) -> float | None:
        known = [v for v in self.values if v is not None]
        return max(known) if known else None


def _bucket(at: datetime, start: datetime, step: float, buckets: int) -> int | None:
    i = int((as_utc(at) - start).total_seconds() // step)
    return i if 0 <= i < buckets else None


def bucketed(
    name: str,
    points: Iterable[tuple[datetime, float]],
    start: datetime,
    seconds: int,
    buckets: int,
    how: str = "max",
    truncated: bool = False,
) -> Series:
    """``points`` into ``buckets`` equal buckets from ``start``: each bucket's max, sum or mean."""
    step = seconds / buckets
    found: list[list[float]] = [[] for _ in range(buckets)]
    for at, value in points:
        i = _bucket(at, start, step, buckets)
        if i is not None:
            found[i].append(float(value))
    values: list[float | None] = []
    for vs in found:
        if not vs:
            values.append(0.0 if how == "count" else None)
        elif how == "max":
            values.append(max(vs))
        elif how in ("sum", "count"):
            values.append(sum(vs))
        else:
            values.append(sum(vs) / len(vs))
    return Series(name, start, step, values, truncated)


async def sampled(
    conn: AsyncConnection,
    series: str,
    key: str,
    range_name: str | None,
    at: datetime | None = None,
    how: str = "max",
    label: str | None = None,
) -> Series:
    """A sampled series over a range. Several workers may sample the same figure: ``max`` per bucket
    keeps that harmless."""
    _, seconds, buckets = range_of(range_name)
    end = at or now()
    start = end - timedelta(seconds=seconds)
    rows = (
        await conn.execute(
            select(ops_samples.c.at, ops_samples.c.value)
            .where(ops_samples.c.series == series, ops_samples.c.key == key, ops_samples.c.at >= start)
            .order_by(ops_samples.c.at.desc())
            .limit(MAX_ROWS)
        )
    ).all()
    return bucketed(
        label or series, ((r.at, r.value) for r in rows), start, seconds, buckets, how, len(rows) >= MAX_ROWS
    )


async def event_counts(
    conn: AsyncConnection,
    range_name: str | None,
    message_type: str | None = None,
    recipient: str | None = None,
    events: Sequence[str] = EVENTS,
    at: datetime | None = None,
) -> dict[str, Series]:
    """Per event, how many a bucket saw: of one flow (``message_type``), one recipient, or all."""
    _, seconds, buckets = range_of(range_name)
    end = at or now()
    start = end - timedelta(seconds=seconds)
    stmt = select(evidences.c.event, evidences.c.at).where(
        evidences.c.event.in_(list(events)), evidences.c.at >= start
    )
    if message_type or recipient:
        stmt = stmt.join(messages, messages.c.message_id == evidences.c.message_id)
        if message_type:
            stmt = stmt.where(messages.c.message_type == message_type)
        if recipient:
            stmt = stmt.where(messages.c.recipient == recipient)
    rows = (await conn.execute(stmt.order_by(evidences.c.at.desc()).limit(MAX_ROWS))).all()
    truncated = len(rows) >= MAX_ROWS
    return {
        event: bucketed(
            event,
            ((r.at, 1.0) for r in rows if r.event == event),
            start,
            seconds,
            buckets,
            "count",
            truncated,
        )
        for event in events
    }


async def flows(conn: AsyncConnection, range_name: str | None, at: datetime | None = None) -> list[str]:
    """The message types that had an event in the range (at most 20, the busiest first)."""
    _, seconds, _ = range_of(range_name)
    start = (at or now()) - timedelta(seconds=seconds)
    stmt = (
        select(messages.c.message_type, func.count())
        .where(messages.c.updated_at >= start)
        .group_by(messages.c.message_type)
        .order_by(func.count().desc())
        .limit(20)
    )
    return [str(t) for t, _ in (await conn.execute(stmt)).all()]


async def last_value(conn: AsyncConnection, series: str, key: str = "") -> tuple[int, datetime] | None:
    """The latest sample of a series, with its time."""
    row = (
        await conn.execute(
            select(ops_samples.c.value, ops_samples.c.at)
            .where(ops_samples.c.series == series, ops_samples.c.key == key)
            .order_by(ops_samples.c.at.desc())
            .limit(1)
        )
    ).first()
    return None if row is None else (int(row.value), as_utc(row.at))


async def record(conn: AsyncConnection, samples: Sequence[tuple[str, str, int]], at: datetime) -> None:
    if samples:
        await conn.execute(
            insert(ops_samples),
            [{"at": at, "series": s, "key": k[:128], "value": int(v)} for s, k, v in samples],
        )


async def prune(conn: AsyncConnection, before: datetime) -> int:
    result = await conn.execute(delete(ops_samples).where(ops_samples.c.at < before))
    return int(result.rowcount or 0)


@dataclass
class Sampler:
    """What the worker's gauge loop writes each minute. Idle partners and empty queues are not written
    (a missing sample charts as nothing recorded), so a hundred quiet banks cost nothing."""

    last_prune: float = 0.0

    @staticmethod
    def queue_samples(queue_rows: Sequence[tuple[str, int | None, int | None]]) -> list[tuple[str, str, int]]:
        """``queue_rows``: (owner, depth, parked) per queue. Owners with nothing queued are not written."""
        owners: dict[str, int] = {}
        for owner, depth, _parked in queue_rows:
            if depth:
                owners[owner] = owners.get(owner, 0) + depth
        out = [
            (PARKED_TOTAL, "", sum(p or 0 for _, _, p in queue_rows)),
            (QUEUED_TOTAL, "", sum(owners.values())),
        ]
        return out + [(QUEUED, owner, n) for owner, n in sorted(owners.items())]

    @staticmethod
    def other_samples(
        overdue_by_type: dict[str, int],
        partner_rows: Sequence[tuple[str, str, int, int, int | None, int | None]],
    ) -> list[tuple[str, str, int]]:
        """``partner_rows``: (code, breaker, calls, failures, p50, p95) per partner; idle ones are not
        written."""
        out = [(OVERDUE, "", sum(overdue_by_type.values()))]
        out += [(OVERDUE, t, n) for t, n in sorted(overdue_by_type.items()) if n]
        for code, breaker, calls, failures, p50, p95 in partner_rows:
            if not calls and breaker != "open":
                continue
            out += [(PARTNER_CALLS, code, calls), (PARTNER_FAILURES, code, failures)]
            out.append((PARTNER_OPEN, code, 1 if breaker == "open" else 0))
            if p50 is not None:
                out.append((PARTNER_P50, code, p50))
            if p95 is not None:
                out.append((PARTNER_P95, code, p95))
        return out

    @classmethod
    def samples(
        cls,
        queue_rows: Sequence[tuple[str, int | None, int | None]] | None,
        overdue_by_type: dict[str, int],
        partner_rows: Sequence[tuple[str, str, int, int, int | None, int | None]],
    ) -> list[tuple[str, str, int]]:
        """Everything one sample writes; ``queue_rows`` None: the broker was not read (no zeros)."""
        queued = cls.queue_samples(queue_rows) if queue_rows is not None else []
        return queued + cls.other_samples(overdue_by_type, partner_rows)

    def prune_due(self) -> bool:
        due = time.monotonic() - self.last_prune >= PRUNE_SECONDS
        if due:
            self.last_prune = time.monotonic()
        return due


def keep_since(at: datetime | None = None) -> datetime:
    return (at or now()) - timedelta(days=KEEP_DAYS)
