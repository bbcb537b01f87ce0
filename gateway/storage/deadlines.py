"""Queries of the deadline watcher: documents nearing or past the deadline of the step they wait for."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import and_, or_, select, update
from sqlalchemy.engine import Row
from sqlalchemy.ext.asyncio import AsyncConnection

from gateway.domain.status import Status
from gateway.storage.tables import messages

#: A document still waits for its delivery or its answer in these statuses (an answered one does not).
WAITING = (Status.RECEIVED, Status.QUEUED, Status.DELIVERED)


async def due_for_reminder(
    conn: AsyncConnection, at: datetime, horizon: datetime, limit: int = 200
) -> list[Row[Any]]:
    """Waiting documents whose reminder time has come and whose sender was not reminded yet. A document
    accepted before reminder times were kept (no ``remind_at``) is reminded once due before ``horizon``."""
    query = (
        select(messages)
        .where(
            messages.c.status.in_(list(WAITING)),
            messages.c.due_at.is_not(None),
            or_(
                messages.c.remind_at <= at,
                and_(messages.c.remind_at.is_(None), messages.c.due_at <= horizon),
            ),
            messages.c.reminded_at.is_(None),
        )
        .order_by(messages.c.due_at)
        .limit(limit)
    )
    return list((await conn.execute(query)).all())


async def mark_reminded(conn: AsyncConnection, message_id: str, at: datetime) -> bool:
    """Claim the reminder: True for exactly one of several watchers."""
    result = await conn.execute(
        update(messages)
        .where(and_(messages.c.message_id == message_id, messages.c.reminded_at.is_(None)))
        .values(reminded_at=at)
    )
    return result.rowcount == 1


async def past_due(conn: AsyncConnection, at: datetime, limit: int = 200) -> list[Row[Any]]:
    """Waiting documents whose deadline has passed."""
    query = (
        select(messages)
        .where(messages.c.status.in_(list(WAITING)), messages.c.due_at.is_not(None), messages.c.due_at <= at)
        .order_by(messages.c.due_at)
        .limit(limit)
    )
    return list((await conn.execute(query)).all())
