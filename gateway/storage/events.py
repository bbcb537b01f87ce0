"""The event outbox: status events written with the status change they report, published in order by
one relay at a time (``gateway/worker/events.py``). Callers own the transaction."""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import delete, func, insert, or_, select, text, update
from sqlalchemy.ext.asyncio import AsyncConnection

from gateway.domain import events
from gateway.storage.tables import event_outbox
from gateway.storage.timestamps import iso, now

#: Key of the PostgreSQL advisory lock a claim takes, so two relays never claim at the same instant.
_CLAIM_LOCK = 0x6576_656E_7473  # "events"


@dataclass(frozen=True, slots=True)
class PendingEvent:
    id: int
    event_id: str
    message_id: str
    routing_key: str
    body: str
    attempts: int


@dataclass(frozen=True, slots=True)
class StatusChange:
    """One status event to queue (see :func:`record`)."""

    message_id: str
    message_type: str
    sender: str
    recipient: str
    status: str
    previous_status: str | None
    at: datetime
    reason: str | None = None
    source: str | None = None


async def record(
    conn: AsyncConnection,
    *,
    message_id: str,
    message_type: str,
    sender: str,
    recipient: str,
    status: str,
    previous_status: str | None,
    at: datetime,
    reason: str | None = None,
    source: str | None = None,
) -> str:
    """Queue the event of one status change; returns its ``event_id``."""
    row = _row(
        StatusChange(message_id, message_type, sender, recipient, status, previous_status, at, reason, source)
    )
    await conn.execute(insert(event_outbox), row)
    return str(row["event_id"])


async def record_many(conn: AsyncConnection, changes: list[StatusChange]) -> None:
    """Queue several events in one INSERT, in the order given (the relay publishes by id)."""
    if changes:
        await conn.execute(insert(event_outbox), [_row(c) for c in changes])


def _row(c: StatusChange) -> dict[str, object]:
    event_id = str(uuid.uuid4())
    body = events.body(
        event_id,
        c.message_id,
        c.message_type,
        c.sender,
        c.recipient,
        c.status,
        c.previous_status,
        iso(c.at) or "",
        c.reason,
        c.source,
    )
    return dict(
        event_id=event_id,
        message_id=c.message_id,
        routing_key=events.routing_key(c.sender, c.recipient, c.status, c.message_type),
        body=json.dumps(body, sort_keys=True, ensure_ascii=False),
        created_at=c.at,
        attempts=0,
    )


async def claim(conn: AsyncConnection, owner: str, limit: int, lease_seconds: float) -> list[PendingEvent]:
    """The oldest ``limit`` events, unless another relay holds a live lease on some: events leave in the
    order they were written, so only one relay publishes at a time (the others wait for its lease)."""
    at = now()
    if conn.dialect.name == "postgresql":
        await conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _CLAIM_LOCK})
    busy = select(func.count()).where(event_outbox.c.claimed_until >= at, event_outbox.c.claimed_by != owner)
    if (await conn.execute(busy)).scalar_one():
        return []
    ids = list(
        (
            await conn.execute(
                select(event_outbox.c.id)
                .where(or_(event_outbox.c.claimed_until.is_(None), event_outbox.c.claimed_until < at))
                .order_by(event_outbox.c.id)
                .limit(limit)
            )
        ).scalars()
    )
    if not ids:
        return []
    await conn.execute(
        update(event_outbox)
        .where(event_outbox.c.id.in_(ids))
        .values(
            claimed_until=at + timedelta(seconds=lease_seconds),
            claimed_by=owner,
            attempts=event_outbox.c.attempts + 1,
        )
    )
    rows = await conn.execute(
        select(event_outbox).where(event_outbox.c.id.in_(ids)).order_by(event_outbox.c.id)
    )
    return [PendingEvent(r.id, r.event_id, r.message_id, r.routing_key, r.body, r.attempts) for r in rows]


async def waiting(conn: AsyncConnection) -> bool:
    """Whether any event waits to be published: a read, so an idle relay pass writes nothing."""
    return (await conn.execute(select(event_outbox.c.id).limit(1))).first() is not None


async def complete(conn: AsyncConnection, ids: list[int]) -> None:
    """Events the broker confirmed."""
    if ids:
        await conn.execute(delete(event_outbox).where(event_outbox.c.id.in_(ids)))


async def release(conn: AsyncConnection, ids: list[int], owner: str) -> None:
    """Give events back at once (a publish failed): the next pass takes them again, in order."""
    if ids:
        await conn.execute(
            update(event_outbox)
            .where(event_outbox.c.id.in_(ids), event_outbox.c.claimed_by == owner)
            .values(claimed_until=None, claimed_by=None)
        )


async def backlog(conn: AsyncConnection) -> int:
    return int((await conn.execute(select(func.count()).select_from(event_outbox))).scalar_one())
