"""Queries on bulk lookups: the bulk as accepted, the worker's lease on it, the fence that makes each chunk of
its expansion all or nothing, and its progress. Callers own the transaction."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any, Final

from sqlalchemy import and_, func, insert, or_, select, update
from sqlalchemy.engine import Row
from sqlalchemy.ext.asyncio import AsyncConnection

from gateway.storage.tables import bulk_inquiries, bulk_items, inquiries, inquiry_sources

#: Debtors still being turned into inquiries; then every one is an inquiry.
EXPANDING: Final = "expanding"
EXPANDED: Final = "expanded"
#: Its sources no longer resolve to configured partners: left as it is for an operator.
STOPPED: Final = "stopped"


async def create(conn: AsyncConnection, bulk: dict[str, Any]) -> None:
    await conn.execute(insert(bulk_inquiries), [bulk])


async def get(conn: AsyncConnection, bulk_id: str) -> Row[Any] | None:
    stmt = select(bulk_inquiries).where(bulk_inquiries.c.bulk_id == bulk_id)
    return (await conn.execute(stmt)).first()


async def by_idempotency_key(conn: AsyncConnection, client_id: str, key: str) -> Row[Any] | None:
    stmt = select(bulk_inquiries).where(
        bulk_inquiries.c.client_id == client_id, bulk_inquiries.c.idempotency_key == key
    )
    return (await conn.execute(stmt)).first()


def _free(owner: str, at: datetime) -> Any:
    """Nobody holds it, its holder's lease ran out, or ``owner`` holds it already."""
    c = bulk_inquiries.c
    return or_(c.claimed_until.is_(None), c.claimed_until < at, c.claimed_by == owner)


async def claimable(conn: AsyncConnection, owner: str, at: datetime) -> str | None:
    """The oldest bulk still expanding that ``owner`` may take: a read, so an idle worker costs no write
    transaction."""
    stmt = (
        select(bulk_inquiries.c.bulk_id)
        .where(bulk_inquiries.c.status == EXPANDING, _free(owner, at))
        .order_by(bulk_inquiries.c.created_at)
        .limit(1)
    )
    return (await conn.execute(stmt)).scalar()


async def claim(conn: AsyncConnection, bulk_id: str, owner: str, at: datetime, until: datetime) -> bool:
    """Take (or renew) the lease on ``bulk_id`` if it is still expanding and free for ``owner`` at ``at``;
    True if taken."""
    result = await conn.execute(
        update(bulk_inquiries)
        .where(bulk_inquiries.c.bulk_id == bulk_id, bulk_inquiries.c.status == EXPANDING, _free(owner, at))
        .values(claimed_by=owner, claimed_until=until)
    )
    return result.rowcount == 1


async def advance(
    conn: AsyncConnection,
    bulk_id: str,
    owner: str,
    done: int,
    to: int,
    total: int,
    at: datetime,
    until: datetime,
) -> bool:
    """The fence of one chunk: ``expanded`` moves from ``done`` to ``to`` only if it still is ``done`` and
    ``owner`` still holds the lease (renewed to ``until``). Run first in the chunk's transaction: False means
    another worker took the bulk over or did this chunk, and the caller writes nothing."""
    values: dict[str, Any] = {"expanded": to, "updated_at": at, "claimed_until": until}
    if to >= total:
        values |= {"status": EXPANDED, "expanded_at": at, "claimed_by": None, "claimed_until": None}
    result = await conn.execute(
        update(bulk_inquiries)
        .where(
            bulk_inquiries.c.bulk_id == bulk_id,
            bulk_inquiries.c.expanded == done,
            bulk_inquiries.c.claimed_by == owner,
        )
        .values(**values)
    )
    return result.rowcount == 1


async def stop(conn: AsyncConnection, bulk_id: str, owner: str, at: datetime) -> None:
    """Stop expanding the bulk ``owner`` holds: no worker takes it again."""
    await conn.execute(
        update(bulk_inquiries)
        .where(bulk_inquiries.c.bulk_id == bulk_id, bulk_inquiries.c.claimed_by == owner)
        .values(status=STOPPED, updated_at=at, claimed_by=None, claimed_until=None)
    )


async def link(conn: AsyncConnection, bulk_id: str, items: Sequence[tuple[int, str]]) -> None:
    """Which inquiry each debtor (by position) became."""
    rows = [{"bulk_id": bulk_id, "position": p, "inquiry_id": i} for p, i in items]
    if rows:
        await conn.execute(insert(bulk_items), rows)


async def inquiry_counts(conn: AsyncConnection, bulk_id: str) -> dict[str, int]:
    """The bulk's inquiries by status."""
    stmt = (
        select(inquiries.c.status, func.count())
        .select_from(bulk_items.join(inquiries, bulk_items.c.inquiry_id == inquiries.c.inquiry_id))
        .where(bulk_items.c.bulk_id == bulk_id)
        .group_by(inquiries.c.status)
    )
    return {status: int(n) for status, n in (await conn.execute(stmt)).all()}


async def source_counts(conn: AsyncConnection, bulk_id: str) -> dict[str, int]:
    """The sources of the bulk's inquiries by status."""
    stmt = (
        select(inquiry_sources.c.status, func.count())
        .select_from(
            bulk_items.join(inquiry_sources, bulk_items.c.inquiry_id == inquiry_sources.c.inquiry_id)
        )
        .where(bulk_items.c.bulk_id == bulk_id)
        .group_by(inquiry_sources.c.status)
    )
    return {status: int(n) for status, n in (await conn.execute(stmt)).all()}


async def page(conn: AsyncConnection, bulk_id: str, after: int, limit: int) -> list[Row[Any]]:
    """Up to ``limit`` of the bulk's inquiries with a position past ``after``, by position (``position`` and
    every column of the inquiry)."""
    stmt = (
        select(bulk_items.c.position, inquiries)
        .select_from(bulk_items.join(inquiries, bulk_items.c.inquiry_id == inquiries.c.inquiry_id))
        .where(and_(bulk_items.c.bulk_id == bulk_id, bulk_items.c.position > after))
        .order_by(bulk_items.c.position)
        .limit(limit)
    )
    return list(await conn.execute(stmt))


async def sources_of(conn: AsyncConnection, inquiry_ids: Sequence[str]) -> dict[str, list[Row[Any]]]:
    """The sources of several inquiries in one query, each inquiry's in the order they were stored."""
    out: dict[str, list[Row[Any]]] = {i: [] for i in inquiry_ids}
    if not inquiry_ids:
        return out
    stmt = (
        select(inquiry_sources)
        .where(inquiry_sources.c.inquiry_id.in_(list(inquiry_ids)))
        .order_by(inquiry_sources.c.id)
    )
    for row in await conn.execute(stmt):
        out[row.inquiry_id].append(row)
    return out
