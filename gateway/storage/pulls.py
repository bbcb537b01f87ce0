"""The inbox of pull partners (``partner_pulls``): items stored by the worker, leased to the partner by
the api when it fetches, acknowledged by the partner. Callers own the transaction.

An item is available when its ``available_at`` has passed: when it is stored, and again when the lease
of a fetch ran out without an acknowledgement. Taking items sets a new lease (a token and its end), so
an acknowledgement naming an older lease is refused: that holder lost the item to a later fetch.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Final

from sqlalchemy import and_, func, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Row
from sqlalchemy.ext.asyncio import AsyncConnection

from gateway.storage.tables import inquiry_sources, messages, partner_pulls
from gateway.storage.timestamps import as_utc, now

LOOKUP: Final = "lookup"
DOCUMENT: Final = "document"
PENDING: Final = "pending"
ACKNOWLEDGED: Final = "acknowledged"
WITHDRAWN: Final = "withdrawn"


@dataclass(frozen=True, slots=True)
class Item:
    """One item of a partner's inbox. ``status``: what it stands for now, read with it when it is
    handed out — the document's status, or the lookup source's (``None`` if that row is gone)."""

    item_id: str
    partner: str
    kind: str
    priority: int
    state: str
    payload: str | None
    fetches: int
    lease: str | None
    leased_until: datetime | None
    created_at: datetime
    status: str | None = None


def _item(row: Row[Any], status: str | None = None) -> Item:
    return Item(
        item_id=row.item_id,
        partner=row.partner,
        kind=row.kind,
        priority=int(row.priority),
        state=row.state,
        payload=row.payload,
        fetches=int(row.fetches),
        lease=row.lease,
        leased_until=as_utc(row.leased_until) if row.leased_until is not None else None,
        created_at=as_utc(row.created_at),
        status=status,
    )


async def store(
    conn: AsyncConnection,
    *,
    item_id: str,
    partner: str,
    kind: str,
    payload: str,
    priority: int = 0,
    at: datetime | None = None,
) -> bool:
    """Put an item in ``partner``'s inbox, available at once; False when ``item_id`` is there already
    (a redelivered queue message, or a retry after a lost commit): never a second item."""
    at = at or now()
    insert = postgresql.insert if conn.dialect.name == "postgresql" else sqlite.insert
    statement = (
        insert(partner_pulls)
        .values(
            item_id=item_id,
            partner=partner,
            kind=kind,
            priority=priority,
            state=PENDING,
            payload=payload,
            created_at=at,
            available_at=at,
            fetches=0,
        )
        .on_conflict_do_nothing(index_elements=["item_id"])
    )
    return (await conn.execute(statement)).rowcount == 1


async def available(conn: AsyncConnection, partner: str, at: datetime | None = None) -> bool:
    """Whether ``partner`` has an item to take now: a read on the index, what a waiting fetch polls."""
    query = (
        select(partner_pulls.c.item_id)
        .where(partner_pulls.c.partner == partner, partner_pulls.c.available_at <= (at or now()))
        .limit(1)
    )
    return (await conn.execute(query)).first() is not None


async def candidates(conn: AsyncConnection, partner: str, limit: int, at: datetime) -> list[Item]:
    """Up to ``limit`` items ``partner`` may take now, urgent first then oldest first, each with the
    current status of what it stands for (the caller withdraws those no longer wanted). On PostgreSQL the
    rows are locked, and rows another fetch holds are skipped."""
    status = func.coalesce(messages.c.status, inquiry_sources.c.status).label("current_status")
    query = (
        select(partner_pulls, status)
        .select_from(
            partner_pulls.outerjoin(
                messages,
                and_(partner_pulls.c.kind == DOCUMENT, messages.c.message_id == partner_pulls.c.item_id),
            ).outerjoin(
                inquiry_sources,
                and_(
                    partner_pulls.c.kind == LOOKUP, inquiry_sources.c.request_ref == partner_pulls.c.item_id
                ),
            )
        )
        .where(partner_pulls.c.partner == partner, partner_pulls.c.available_at <= at)
        .order_by(partner_pulls.c.priority.desc(), partner_pulls.c.available_at, partner_pulls.c.item_id)
        .limit(limit)
    )
    if conn.dialect.name == "postgresql":
        query = query.with_for_update(skip_locked=True, of=partner_pulls)
    return [_item(row, row.current_status) for row in await conn.execute(query)]


async def take(
    conn: AsyncConnection, ids: Sequence[str], lease: str, seconds: float, at: datetime
) -> list[str]:
    """Lease the items ``ids`` (from :func:`candidates`, same transaction) under ``lease`` until ``at`` +
    ``seconds``; the ids actually taken (an item another fetch took meanwhile is not)."""
    if not ids:
        return []
    until = at + timedelta(seconds=seconds)
    await conn.execute(
        update(partner_pulls)
        .where(
            partner_pulls.c.item_id.in_(list(ids)),
            partner_pulls.c.state == PENDING,
            partner_pulls.c.available_at <= at,
        )
        .values(
            lease=lease,
            leased_until=until,
            available_at=until,
            fetches=partner_pulls.c.fetches + 1,
            first_fetched_at=func.coalesce(partner_pulls.c.first_fetched_at, at),
        )
    )
    rows = await conn.execute(
        select(partner_pulls.c.item_id).where(
            partner_pulls.c.item_id.in_(list(ids)), partner_pulls.c.lease == lease
        )
    )
    return list(rows.scalars())


async def withdraw(conn: AsyncConnection, ids: Sequence[str], at: datetime) -> None:
    """Items no longer to hand out (a revoked document, a lookup answered or timed out): kept as a
    record, without their payload."""
    if ids:
        await conn.execute(
            update(partner_pulls)
            .where(partner_pulls.c.item_id.in_(list(ids)), partner_pulls.c.state == PENDING)
            .values(state=WITHDRAWN, available_at=None, payload=None, acknowledged_at=at)
        )


async def acknowledge(
    conn: AsyncConnection, partner: str, lease: str, ids: Sequence[str], at: datetime
) -> tuple[list[Item], list[Item]]:
    """The partner has the items ``ids`` it took under ``lease``: (acknowledged now, acknowledged before
    under the same lease — a repeated acknowledgement). Items of another partner, under another lease
    (taken again by a later fetch) or withdrawn are neither. Each returned with its payload as it was."""
    query = select(partner_pulls).where(
        partner_pulls.c.partner == partner,
        partner_pulls.c.item_id.in_(list(ids)),
        partner_pulls.c.lease == lease,
        partner_pulls.c.state.in_((PENDING, ACKNOWLEDGED)),
    )
    if conn.dialect.name == "postgresql":
        query = query.with_for_update()
    found = [_item(row) for row in await conn.execute(query)]
    now_acked = [item for item in found if item.state == PENDING]
    if now_acked:
        await conn.execute(
            update(partner_pulls)
            .where(
                partner_pulls.c.item_id.in_([item.item_id for item in now_acked]),
                partner_pulls.c.state == PENDING,
            )
            .values(state=ACKNOWLEDGED, available_at=None, payload=None, acknowledged_at=at)
        )
    return now_acked, [item for item in found if item.state == ACKNOWLEDGED]


async def get(conn: AsyncConnection, item_id: str) -> Item | None:
    row = (await conn.execute(select(partner_pulls).where(partner_pulls.c.item_id == item_id))).first()
    return _item(row) if row is not None else None


async def counts(conn: AsyncConnection, partner: str) -> dict[str, int]:
    """How many items ``partner`` has per state (``pending`` counts leased ones too)."""
    rows = await conn.execute(
        select(partner_pulls.c.state, func.count())
        .where(partner_pulls.c.partner == partner)
        .group_by(partner_pulls.c.state)
    )
    return {str(state): int(n) for state, n in rows}
