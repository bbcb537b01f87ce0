"""The outbox: rows written in the transaction that accepts what they carry, published by a relay, then
deleted. Several relays may run: each row is held by one claim (a lease) at a time. Callers own the
transaction.

A row is claimed in one of two ways: by the process that writes it, in the same insert (``claim=``;
that process publishes it as soon as it commits, with no read), or, once unclaimed or its lease has run
out (the writer died or the broker refused), by any relay's fallback pass (:func:`claim`).

A document's row holds no body: the body is the message row's payload, stored once, which the fallback
pass joins in (with the message's status, so a document revoked while it waited is not sent).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Protocol

from sqlalchemy import delete, func, or_, select, update
from sqlalchemy import insert as sql_insert
from sqlalchemy.ext.asyncio import AsyncConnection

from gateway.storage.tables import messages, outbox
from gateway.storage.timestamps import now

#: The logical exchange of documents (the others: ``requests``, ``callbacks``).
DOCUMENTS = "documents"
#: The logical exchange of lookup requests to partners: published to the partner's work queue (its
#: delivery queue, through ``documents``), their body kept in the row (they have no message row).
REQUESTS = "requests"


@dataclass(frozen=True, slots=True)
class Claim:
    """Who holds a row, and until when."""

    owner: str
    until: datetime


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
    #: The message's status when claimed (documents only): a revoked one is not published.
    status: str | None = None
    #: Who holds the row (its writer, when inserted with a claim): only its holder may publish it.
    owner: str | None = None


class Handover(Protocol):
    """The relay of the writing process, as writers see it (``gateway/amqp/relay.py``)."""

    def claim(self) -> Claim | None: ...

    def hand_over(self, items: Sequence[Pending]) -> None: ...


class NoHandover:
    """No relay in this process: rows are left to the fallback pass of a relay elsewhere."""

    def claim(self) -> Claim | None:
        return None

    def hand_over(self, items: Sequence[Pending]) -> None:
        return None


async def insert(
    conn: AsyncConnection,
    *,
    message_id: str,
    exchange: str,
    routing_key: str,
    headers: dict[str, Any],
    body: str,
    at: datetime,
    priority: int = 0,
    claim: Claim | None = None,
) -> Pending:
    """One row; a document's body is not stored (its message row has it). With ``claim`` the row is held
    by its writer from the start, which publishes it after the commit from the returned :class:`Pending`
    (no claim transaction, no read)."""
    row = dict(
        message_id=message_id,
        exchange=exchange,
        routing_key=routing_key,
        headers=headers,
        body=body,
        at=at,
        priority=priority,
    )
    return (await insert_many(conn, [row], claim))[0]


async def insert_many(
    conn: AsyncConnection, rows: Sequence[dict[str, Any]], claim: Claim | None = None
) -> list[Pending]:
    """:func:`insert` for several rows (keyword arguments of :func:`insert` each), in one statement: an
    inquiry to 100 banks writes its 100 requests at once."""
    if not rows:
        return []
    values = [
        dict(
            message_id=r["message_id"],
            exchange=r["exchange"],
            routing_key=r["routing_key"],
            priority=r.get("priority", 0),
            headers=json.dumps(r["headers"], sort_keys=True),
            body=None if r["exchange"] == DOCUMENTS else r["body"],
            created_at=r["at"],
            attempts=1 if claim else 0,
            claimed_by=claim.owner if claim else None,
            claimed_until=claim.until if claim else None,
        )
        for r in rows
    ]
    numbered = sql_insert(outbox).returning(outbox.c.id, sort_by_parameter_order=True)
    ids = list((await conn.execute(numbered, values)).scalars())
    return [
        Pending(
            row_id,
            r["message_id"],
            r["exchange"],
            r["routing_key"],
            r.get("priority", 0),
            r["headers"],
            r["body"],
            v["attempts"],
            owner=claim.owner if claim is not None else None,
        )
        for row_id, r, v in zip(ids, rows, values, strict=True)
    ]


async def claimable(conn: AsyncConnection) -> bool:
    """Whether any row is free to claim: a read, so an idle fallback pass costs no write transaction."""
    at = now()
    query = select(outbox.c.id).where(or_(outbox.c.claimed_until.is_(None), outbox.c.claimed_until < at))
    return (await conn.execute(query.limit(1))).first() is not None


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
    rows = await conn.execute(
        select(outbox, messages.c.payload, messages.c.status)
        .select_from(outbox.outerjoin(messages, messages.c.message_id == outbox.c.message_id))
        .where(outbox.c.id.in_(ids))
        .order_by(outbox.c.id)
    )
    return [
        Pending(
            id=r.id,
            message_id=r.message_id,
            exchange=r.exchange,
            routing_key=r.routing_key,
            priority=r.priority,
            headers=json.loads(r.headers),
            body=r.body if r.body is not None else (r.payload or ""),
            attempts=r.attempts,
            status=str(r.status) if r.exchange == DOCUMENTS and r.status is not None else None,
        )
        for r in rows
    ]


async def release(conn: AsyncConnection, ids: list[int], owner: str, unsent: Sequence[int] = ()) -> None:
    """Give rows back at once (publish failed): the next relay pass takes them again. ``unsent``: those
    the broker certainly did not take (returned unroutable, refused, never sent), whose attempt does not
    count, so that the next publish is not flagged as a possible repeat."""
    if ids:
        await conn.execute(
            update(outbox)
            .where(outbox.c.id.in_(ids), outbox.c.claimed_by == owner)
            .values(claimed_until=None, claimed_by=None)
        )
    if unsent:
        await conn.execute(
            update(outbox)
            .where(outbox.c.id.in_(list(unsent)), outbox.c.attempts > 0)
            .values(attempts=outbox.c.attempts - 1)
        )


async def remove(conn: AsyncConnection, ids: list[int]) -> None:
    """Rows the broker confirmed."""
    if ids:
        await conn.execute(delete(outbox).where(outbox.c.id.in_(ids)))


async def backlog(conn: AsyncConnection) -> int:
    return int((await conn.execute(select(func.count()).select_from(outbox))).scalar_one())
