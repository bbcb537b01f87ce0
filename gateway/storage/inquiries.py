"""Queries on asset inquiries and their per-source answers. Callers own the transaction."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import insert, select, update
from sqlalchemy.engine import Row
from sqlalchemy.ext.asyncio import AsyncConnection

from gateway.storage import outbox as outbox_rows
from gateway.storage.tables import inquiries, inquiry_sources
from gateway.storage.timestamps import now

PENDING = "pending"


@dataclass(frozen=True, slots=True)
class Answer:
    """What to record for one source (from a partner reply, a late callback, or the deadline)."""

    status: str
    match_status: str | None = None
    rows: list[dict[str, Any]] | None = None
    as_of: str | None = None
    reference: str | None = None
    reason: str | None = None
    attempts: int = 0


async def create(
    conn: AsyncConnection,
    inquiry: dict[str, Any],
    sources: list[dict[str, Any]],
    requests: list[dict[str, Any]],
    claim: outbox_rows.Claim | None = None,
) -> list[outbox_rows.Pending]:
    """The inquiry, its sources (pending) and one outbox request per source (arguments of
    :func:`gateway.storage.outbox.insert`, held by ``claim``): one transaction."""
    counts = {"sources_total": len(sources), "sources_pending": len(sources), "sources_timeout": 0}
    await conn.execute(insert(inquiries), [{**inquiry, **counts}])
    await conn.execute(insert(inquiry_sources), sources)
    return [await outbox_rows.insert(conn, **request, claim=claim) for request in requests]


async def get(conn: AsyncConnection, inquiry_id: str) -> Row[Any] | None:
    return (await conn.execute(select(inquiries).where(inquiries.c.inquiry_id == inquiry_id))).first()


async def sources_of(conn: AsyncConnection, inquiry_id: str) -> list[Row[Any]]:
    rows = await conn.execute(
        select(inquiry_sources)
        .where(inquiry_sources.c.inquiry_id == inquiry_id)
        .order_by(inquiry_sources.c.id)
    )
    return list(rows)


async def by_idempotency_key(conn: AsyncConnection, client_id: str, key: str) -> Row[Any] | None:
    stmt = select(inquiries).where(inquiries.c.client_id == client_id, inquiries.c.idempotency_key == key)
    return (await conn.execute(stmt)).first()


async def by_case(conn: AsyncConnection, client_id: str, case_ref: str, limit: int = 100) -> list[Row[Any]]:
    stmt = (
        select(inquiries)
        .where(inquiries.c.client_id == client_id, inquiries.c.case_ref == case_ref)
        .order_by(inquiries.c.created_at.desc())
        .limit(limit)
    )
    return list(await conn.execute(stmt))


async def source_by_ref(conn: AsyncConnection, request_ref: str) -> Row[Any] | None:
    stmt = select(inquiry_sources).where(inquiry_sources.c.request_ref == request_ref)
    return (await conn.execute(stmt)).first()


@dataclass(frozen=True, slots=True)
class Recorded:
    """The source an answer was recorded for, and its inquiry's counts after it."""

    inquiry_id: str
    source_id: str
    partner_code: str
    request_sha256: str
    client_id: str
    status: str
    due_at: datetime
    callback_url: str | None
    total: int
    pending: int
    timeouts: int


async def record(conn: AsyncConnection, request_ref: str, answer: Answer) -> Recorded | None:
    """Record a source's answer if it is still pending, and count it on its inquiry; None when it was not
    (a second answer — redelivered reply, late callback after a timeout, a repeated call — changes
    nothing: the first recorded answer stands). Two statements, whatever the number of sources."""
    values: dict[str, Any] = {
        "status": answer.status,
        "match_status": answer.match_status,
        "rows": json.dumps(answer.rows, ensure_ascii=False) if answer.rows is not None else None,
        "as_of": answer.as_of,
        "reference": answer.reference,
        "reason": answer.reason,
        "attempts": answer.attempts,
        "answered_at": now(),
    }
    s = inquiry_sources.c
    source = (
        await conn.execute(
            update(inquiry_sources)
            .where(s.request_ref == request_ref, s.status == PENDING)
            .values(**values)
            .returning(s.inquiry_id, s.source_id, s.partner_code, s.request_sha256)
        )
    ).first()
    if source is None:
        return None
    i = inquiries.c
    counted = (
        await conn.execute(
            update(inquiries)
            .where(i.inquiry_id == source.inquiry_id)
            .values(
                sources_pending=i.sources_pending - 1,
                sources_timeout=i.sources_timeout + (1 if answer.status == "timeout" else 0),
            )
            .returning(
                i.client_id,
                i.status,
                i.due_at,
                i.callback_url,
                i.sources_total,
                i.sources_pending,
                i.sources_timeout,
            )
        )
    ).one()
    return Recorded(
        inquiry_id=source.inquiry_id,
        source_id=source.source_id,
        partner_code=source.partner_code,
        request_sha256=source.request_sha256,
        client_id=counted.client_id,
        status=counted.status,
        due_at=counted.due_at,
        callback_url=counted.callback_url,
        total=counted.sources_total,
        pending=counted.sources_pending,
        timeouts=counted.sources_timeout,
    )


async def note_accepted_later(conn: AsyncConnection, request_ref: str, reference: str | None) -> None:
    """The partner took the request and will call back: remember its reference, stay pending."""
    await conn.execute(
        update(inquiry_sources)
        .where(inquiry_sources.c.request_ref == request_ref, inquiry_sources.c.status == PENDING)
        .values(reference=reference)
    )


async def overdue_sources(conn: AsyncConnection, at: datetime, limit: int = 500) -> list[Row[Any]]:
    stmt = (
        select(inquiry_sources.c.request_ref, inquiry_sources.c.inquiry_id)
        .where(inquiry_sources.c.status == PENDING, inquiry_sources.c.due_at < at)
        .limit(limit)
    )
    return list(await conn.execute(stmt))


async def set_status(conn: AsyncConnection, inquiry_id: str, status: str, completed: bool) -> bool:
    """Move the inquiry to ``status``; returns True if it changed (so callbacks fire once)."""
    at = now()
    values: dict[str, Any] = {"status": status, "updated_at": at}
    if completed:
        values["completed_at"] = at
    result = await conn.execute(
        update(inquiries)
        .where(inquiries.c.inquiry_id == inquiry_id, inquiries.c.status != status)
        .values(**values)
    )
    return result.rowcount == 1


async def queue_callback(conn: AsyncConnection, message_id: str, client_id: str, url: str, body: str) -> None:
    """Outbox entry for the caller's callback_url (published by the relay, POSTed by a worker)."""
    headers = {"url": url, "message_type": "asset.inquiry.result"}
    await outbox_rows.insert(
        conn,
        message_id=message_id,
        exchange="callbacks",
        routing_key=client_id,
        headers=headers,
        body=body,
        at=now(),
    )
