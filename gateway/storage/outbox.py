"""Outbox claims: several relays may run; each claims a batch under a lease, publishes it, deletes it."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import delete, func, or_, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from gateway.domain.status import Status
from gateway.storage import messages as store
from gateway.storage.tables import outbox
from gateway.storage.timestamps import now

DOCUMENTS = "documents"


@dataclass(frozen=True, slots=True)
class Pending:
    id: int
    message_id: str
    exchange: str
    routing_key: str
    priority: int
    headers: dict[str, Any]
    body: str
    attempts: int


async def claim(conn: AsyncConnection, owner: str, limit: int, lease_seconds: float) -> list[Pending]:
    """Claim up to ``limit`` unclaimed (or lease-expired) rows, most urgent first."""
    at = now()
    candidates = (
        select(outbox.c.id)
        .where(or_(outbox.c.claimed_until.is_(None), outbox.c.claimed_until < at))
        .order_by(outbox.c.priority.desc(), outbox.c.id)
        .limit(limit)
    )
    if conn.dialect.name == "postgresql":
        candidates = candidates.with_for_update(skip_locked=True)
    ids = list((await conn.execute(candidates)).scalars())
    if not ids:
        return []
    await conn.execute(
        update(outbox)
        .where(outbox.c.id.in_(ids))
        .values(
            claimed_until=at + timedelta(seconds=lease_seconds),
            claimed_by=owner,
            attempts=outbox.c.attempts + 1,
        )
    )
    rows = await conn.execute(select(outbox).where(outbox.c.id.in_(ids)).order_by(outbox.c.id))
    return [
        Pending(
            id=r.id,
            message_id=r.message_id,
            exchange=r.exchange,
            routing_key=r.routing_key,
            priority=r.priority,
            headers=json.loads(r.headers),
            body=r.body,
            attempts=r.attempts,
        )
        for r in rows
    ]


async def release(conn: AsyncConnection, ids: list[int], owner: str) -> None:
    """Give rows back at once (publish failed): the next relay pass takes them again."""
    if ids:
        await conn.execute(
            update(outbox)
            .where(outbox.c.id.in_(ids), outbox.c.claimed_by == owner)
            .values(claimed_until=None, claimed_by=None)
        )


async def complete(conn: AsyncConnection, published: list[tuple[Pending, datetime]], actor: str) -> None:
    """Rows the broker confirmed: delete them, record ``queued`` on the documents among them (lookup
    requests and callbacks have their own records)."""
    if not published:
        return
    await conn.execute(delete(outbox).where(outbox.c.id.in_([p.id for p, _ in published])))
    for item, at in published:
        if item.exchange != DOCUMENTS:
            continue
        detail = {"attempts": item.attempts}
        moved = await store.transition(conn, item.message_id, Status.QUEUED, actor, detail, at=at)
        if not moved:
            # Delivery already happened (or a previous publish of this row was confirmed but not
            # recorded): keep the evidence, not the status change.
            await store.add_evidence(conn, item.message_id, "queued", actor, detail, at)


async def backlog(conn: AsyncConnection) -> int:
    return int((await conn.execute(select(func.count()).select_from(outbox))).scalar_one())
