"""Queries on asset inquiries and their per-source answers. Callers own the transaction."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Text, bindparam, func, insert, select, update
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
    #: What the platform proved about the call that answered (None: direct, or an answer by callback,
    #: which keeps the evidence of the call that was accepted).
    evidence: dict[str, Any] | None = None


async def create(
    conn: AsyncConnection,
    inquiry: dict[str, Any],
    sources: list[dict[str, Any]],
    requests: list[dict[str, Any]],
    claim: outbox_rows.Claim | None = None,
) -> list[outbox_rows.Pending]:
    """The inquiry, its sources (pending) and one outbox request per source (arguments of
    :func:`gateway.storage.outbox.insert`, held by ``claim``): one transaction."""
    return await create_many(conn, [(inquiry, sources, requests)], claim)


async def create_many(
    conn: AsyncConnection,
    items: list[tuple[dict[str, Any], list[dict[str, Any]], list[dict[str, Any]]]],
    claim: outbox_rows.Claim | None = None,
) -> list[outbox_rows.Pending]:
    """:func:`create` for several inquiries (a chunk of a bulk lookup) in three INSERTs, whatever their
    number and their sources'."""
    counted = [
        {**inquiry, "sources_total": len(sources), "sources_pending": len(sources), "sources_timeout": 0}
        for inquiry, sources, _ in items
    ]
    await conn.execute(insert(inquiries), counted)
    await conn.execute(insert(inquiry_sources), [s for _, sources, _ in items for s in sources])
    return await outbox_rows.insert_many(conn, [r for *_, requests in items for r in requests], claim)


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
    """:func:`record_many` for one answer."""
    return (await record_many(conn, [(request_ref, answer)]))[0]


async def record_many(conn: AsyncConnection, answers: list[tuple[str, Answer]]) -> list[Recorded | None]:
    """Record each source's answer if it is still pending, and count it on its inquiry; None for those
    that were not (a second answer — redelivered request, late callback after a timeout, a repeated call,
    the same ref twice in ``answers`` — changes nothing: the first recorded answer stands).

    Four statements whatever the number of answers and of sources: the pending sources read (and locked,
    on PostgreSQL, so that two writers never both count one answer), their answers written, the inquiries'
    counts moved, and the inquiries read back."""
    s, i = inquiry_sources.c, inquiries.c
    refs = list(dict.fromkeys(ref for ref, _ in answers))
    pending = (
        select(s.request_ref, s.inquiry_id, s.source_id, s.partner_code, s.request_sha256)
        .where(s.request_ref.in_(refs), s.status == PENDING)
        .order_by(s.id)
    )
    if conn.dialect.name == "postgresql":
        pending = pending.with_for_update()
    sources = {row.request_ref: row for row in await conn.execute(pending)}
    taken: list[tuple[Any, Answer]] = []
    for ref, answer in answers:
        source = sources.pop(ref, None)  # popped: the same ref twice counts once
        if source is not None:
            taken.append((source, answer))
    if not taken:
        return [None] * len(answers)
    at = now()
    await conn.execute(
        update(inquiry_sources)
        .where(s.request_ref == bindparam("ref"), s.status == PENDING)
        .values(
            status=bindparam("new_status"),
            match_status=bindparam("new_match_status"),
            rows=bindparam("new_rows"),
            as_of=bindparam("new_as_of"),
            reference=bindparam("new_reference"),
            reason=bindparam("new_reason"),
            attempts=bindparam("new_attempts"),
            answered_at=bindparam("new_answered_at"),
            # A late answer (callback, deadline) keeps the evidence of the call the partner accepted.
            transport_evidence=func.coalesce(bindparam("new_evidence", type_=Text), s.transport_evidence),
        ),
        [
            {
                "ref": source.request_ref,
                "new_status": answer.status,
                "new_match_status": answer.match_status,
                "new_rows": json.dumps(answer.rows, ensure_ascii=False) if answer.rows is not None else None,
                "new_as_of": answer.as_of,
                "new_reference": answer.reference,
                "new_reason": answer.reason,
                "new_attempts": answer.attempts,
                "new_answered_at": at,
                "new_evidence": _evidence(answer.evidence),
            }
            for source, answer in taken
        ],
    )
    counts: dict[str, list[int]] = {}
    for source, answer in taken:
        count = counts.setdefault(source.inquiry_id, [0, 0])
        count[0] += 1
        count[1] += answer.status == "timeout"
    await conn.execute(
        update(inquiries)
        .where(i.inquiry_id == bindparam("id"))
        .values(
            sources_pending=i.sources_pending - bindparam("answered"),
            sources_timeout=i.sources_timeout + bindparam("timeouts"),
        ),
        [{"id": k, "answered": a, "timeouts": t} for k, (a, t) in sorted(counts.items())],
    )
    read = select(
        i.inquiry_id,
        i.client_id,
        i.status,
        i.due_at,
        i.callback_url,
        i.sources_total,
        i.sources_pending,
        i.sources_timeout,
    ).where(i.inquiry_id.in_(list(counts)))
    after = {row.inquiry_id: row for row in await conn.execute(read)}
    recorded: dict[str, Recorded] = {}
    for source, _answer in taken:
        row = after[source.inquiry_id]
        recorded[source.request_ref] = Recorded(
            inquiry_id=source.inquiry_id,
            source_id=source.source_id,
            partner_code=source.partner_code,
            request_sha256=source.request_sha256,
            client_id=row.client_id,
            status=row.status,
            due_at=row.due_at,
            callback_url=row.callback_url,
            total=row.sources_total,
            pending=row.sources_pending,
            timeouts=row.sources_timeout,
        )
    results: list[Recorded | None] = []
    for ref, _ in answers:
        results.append(recorded.pop(ref, None))  # the first of a repeated ref only
    return results


async def note_accepted_later(
    conn: AsyncConnection,
    request_ref: str,
    reference: str | None,
    evidence: Mapping[str, Any] | None = None,
) -> None:
    """The partner took the request and will call back: remember its reference (and what the platform
    proved about the call that it accepted), stay pending."""
    await conn.execute(
        update(inquiry_sources)
        .where(inquiry_sources.c.request_ref == request_ref, inquiry_sources.c.status == PENDING)
        .values(reference=reference, transport_evidence=_evidence(evidence))
    )


def _evidence(evidence: Mapping[str, Any] | None) -> str | None:
    return json.dumps(dict(evidence), ensure_ascii=False, sort_keys=True) if evidence else None


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
