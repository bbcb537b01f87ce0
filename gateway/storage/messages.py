"""Queries on messages, their timelines and the outbox. Callers own the transaction."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import insert, select, update
from sqlalchemy.engine import Row
from sqlalchemy.ext.asyncio import AsyncConnection

from gateway.domain.status import Status, sources_for
from gateway.storage import events
from gateway.storage import outbox as outbox_rows
from gateway.storage.tables import evidences, messages
from gateway.storage.timestamps import iso, now

#: Times a transition re-reads a status another writer changed under it before it gives up.
_MAX_RACES = 10


@dataclass(frozen=True, slots=True)
class OutboxItem:
    exchange: str
    routing_key: str
    headers: dict[str, Any]
    body: str
    priority: int = 0


async def get(conn: AsyncConnection, message_id: str) -> Row[Any] | None:
    return (await conn.execute(select(messages).where(messages.c.message_id == message_id))).first()


async def get_by_natural_key(conn: AsyncConnection, message_type: str, key: str) -> Row[Any] | None:
    """Natural keys are unique per type: the same decision number may name an order and its report."""
    query = select(messages).where(messages.c.message_type == message_type, messages.c.natural_key == key)
    return (await conn.execute(query)).first()


async def replies(conn: AsyncConnection, message_id: str) -> list[dict[str, Any]]:
    """Documents that answer ``message_id``, oldest first."""
    rows = await conn.execute(
        select(messages).where(messages.c.in_reply_to == message_id).order_by(messages.c.received_at)
    )
    return [
        {
            "message_id": r.message_id,
            "message_type": r.message_type,
            "sender": r.sender,
            "status": r.status,
            "received_at": iso(r.received_at),
        }
        for r in rows
    ]


async def insert_accepted(
    conn: AsyncConnection,
    row: dict[str, Any],
    item: OutboxItem,
    actor: str,
    detail: dict[str, Any],
    claim: outbox_rows.Claim | None = None,
) -> outbox_rows.Pending:
    """Store the message, its first evidence, its outbox entry (held by ``claim``, when its writer relays
    it itself) and its ``received`` status event (one transaction, the caller's)."""
    at = row["received_at"]
    await conn.execute(insert(messages), dict(**row, status=Status.RECEIVED, updated_at=at, delivery_count=0))
    await add_evidence(conn, row["message_id"], "accepted", actor, detail, at)
    pending = await outbox_rows.insert(
        conn,
        message_id=row["message_id"],
        exchange=item.exchange,
        routing_key=item.routing_key,
        priority=item.priority,
        headers=item.headers,
        body=item.body,
        at=at,
        claim=claim,
    )
    await events.record(
        conn,
        message_id=row["message_id"],
        message_type=row["message_type"],
        sender=row["sender"],
        recipient=row["recipient"],
        status=Status.RECEIVED.value,
        previous_status=None,
        at=at,
    )
    return pending


async def add_evidence(
    conn: AsyncConnection,
    message_id: str,
    event: str,
    actor: str,
    detail: dict[str, Any] | None = None,
    at: datetime | None = None,
) -> None:
    await conn.execute(
        insert(evidences),
        dict(
            message_id=message_id,
            event=event,
            at=at or now(),
            actor=actor,
            detail=json.dumps(detail, sort_keys=True, ensure_ascii=False) if detail else None,
        ),
    )


async def transition(
    conn: AsyncConnection,
    message_id: str,
    target: Status,
    actor: str,
    detail: dict[str, Any] | None = None,
    reason: str | None = None,
    extra: dict[str, Any] | None = None,
    at: datetime | None = None,
) -> bool:
    """Move a message to ``target`` if the lifecycle allows it from where it is; record the evidence and
    the status event (in the caller's transaction: both or neither).

    Returns False (and records nothing) when the message is not in a state that may move there: the
    conditional update makes concurrent and repeated transitions harmless. The update is conditional on
    the status just read, so the event names the status the message really left.
    """
    at = at or now()
    values: dict[str, Any] = {"status": target, "updated_at": at, "status_reason": reason}
    values.update(extra or {})
    sources = sources_for(target)
    for _ in range(_MAX_RACES):
        current = (
            await conn.execute(
                select(
                    messages.c.status, messages.c.message_type, messages.c.sender, messages.c.recipient
                ).where(messages.c.message_id == message_id)
            )
        ).first()
        if current is None or current.status not in sources:
            return False
        result = await conn.execute(
            update(messages)
            .where(messages.c.message_id == message_id, messages.c.status == current.status)
            .values(**values)
        )
        if result.rowcount == 1:
            break
    else:
        return False
    await add_evidence(conn, message_id, target.value, actor, detail, at)
    await events.record(
        conn,
        message_id=message_id,
        message_type=current.message_type,
        sender=current.sender,
        recipient=current.recipient,
        status=target.value,
        previous_status=str(current.status),
        at=at,
        reason=reason,
    )
    return True


async def count_delivery(conn: AsyncConnection, message_id: str) -> None:
    await conn.execute(
        update(messages)
        .where(messages.c.message_id == message_id)
        .values(delivery_count=messages.c.delivery_count + 1)
    )


async def timeline(conn: AsyncConnection, message_id: str) -> list[dict[str, Any]]:
    rows = await conn.execute(
        select(evidences).where(evidences.c.message_id == message_id).order_by(evidences.c.at, evidences.c.id)
    )
    return [
        {
            "event": r.event,
            "at": iso(r.at),
            "actor": r.actor,
            **({"detail": json.loads(r.detail)} if r.detail else {}),
        }
        for r in rows
    ]
