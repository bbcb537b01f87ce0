"""Recording a source's answer, whoever brings it (partner reply, late callback, deadline watcher),
and what follows: the inquiry's overall status, the audit entry, the caller's callback."""

from __future__ import annotations

import json
import uuid
from datetime import datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncConnection

from gateway.domain.inquiry import InquiryStatus, SourceStatus, overall_status, result_categories
from gateway.storage import inquiries as store
from gateway.storage.audit import AuditEntry, append
from gateway.storage.database import Database
from gateway.storage.inquiries import Answer
from gateway.storage.timestamps import as_utc, iso, now

FINAL = {InquiryStatus.COMPLETE, InquiryStatus.EXPIRED}


async def apply_answer(db: Database, request_ref: str, answer: Answer, actor: str) -> bool:
    """Record ``answer`` for the source with ``request_ref`` unless it was already answered.
    Returns True if this call recorded it."""

    async def record(conn: AsyncConnection) -> bool:
        source = await store.source_by_ref(conn, request_ref)
        if source is None or not await store.record(conn, request_ref, answer):
            return False
        await append(
            conn,
            AuditEntry(
                actor=actor,
                action="assets.result",
                outcome=answer.status,
                object_ref=source.inquiry_id,
                reason=answer.reason,
                data={
                    "source": source.source_id,
                    "partner": source.partner_code,
                    "match_status": answer.match_status,
                    "categories": result_categories(source.source_id, answer.rows or []),
                    "request_sha256": source.request_sha256,
                },
            ),
        )
        await refresh(conn, source.inquiry_id)
        return True

    return await db.write(record)


async def refresh(conn: AsyncConnection, inquiry_id: str, at: datetime | None = None) -> str:
    """Recompute the inquiry's status from its sources; queue its callback when it becomes final."""
    inquiry = await store.get(conn, inquiry_id)
    assert inquiry is not None
    sources = await store.sources_of(conn, inquiry_id)
    status = overall_status([SourceStatus(s.status) for s in sources], at or now(), as_utc(inquiry.due_at))
    final = status in FINAL
    changed = await store.set_status(conn, inquiry_id, status.value, completed=final)
    if changed and final and inquiry.callback_url:
        body = representation(await store.get(conn, inquiry_id), await store.sources_of(conn, inquiry_id))
        await store.queue_callback(
            conn,
            message_id=str(uuid.uuid5(uuid.NAMESPACE_URL, f"{inquiry_id}/{status.value}")),
            client_id=inquiry.client_id,
            url=inquiry.callback_url,
            body=json.dumps(body, ensure_ascii=False),
        )
    return status.value


def callback_read(client_id: str, host: str, message_id: str, body: bytes) -> AuditEntry:
    """The ``assets.read`` record of a callback about to carry an inquiry's results to ``client_id`` at
    ``host``: which inquiry, which sources' rows and the categories of data they hold, never the data.
    ``ValueError`` (or ``KeyError``) for a body that is not an inquiry's representation."""
    view = json.loads(body)
    shown = [s for s in view["sources"] if "rows" in s]
    return AuditEntry(
        actor=client_id,
        action="assets.read",
        outcome="read",
        message_id=message_id,
        object_ref=view["inquiry_id"],
        data={
            "channel": "callback",
            "host": host,
            "case_ref": view["case_ref"],
            "status": view["status"],
            "sources_shown": [s["source"] for s in shown],
            "categories": {s["source"]: result_categories(s["source"], s["rows"] or []) for s in shown},
        },
    )


def representation(inquiry: Any, sources: list[Any]) -> dict[str, Any]:
    """The inquiry as the case system sees it (GET, Prefer: wait, callbacks)."""
    return {
        "inquiry_id": inquiry.inquiry_id,
        "status": inquiry.status,
        "case_ref": inquiry.case_ref,
        "officer_id": inquiry.officer_id,
        "legal_basis": inquiry.legal_basis,
        "purpose": inquiry.purpose,
        "priority": inquiry.priority,
        "debtor": inquiry.debtor_ref,
        "created_at": iso(inquiry.created_at),
        "due_at": iso(inquiry.due_at),
        **({"completed_at": iso(inquiry.completed_at)} if inquiry.completed_at else {}),
        "sources": [_source_view(s) for s in sources],
    }


def _source_view(s: Any) -> dict[str, Any]:
    view: dict[str, Any] = {
        "source": s.source_id,
        "partner": s.partner_code,
        "status": s.status,
        "due_at": iso(s.due_at),
        "request_sha256": s.request_sha256,
    }
    if s.match_status:
        view["match_status"] = s.match_status
    if s.rows is not None:
        view["rows"] = json.loads(s.rows)
    if s.answered_at:
        view["answered_at"] = iso(s.answered_at)
    if s.as_of:
        view["as_of"] = s.as_of
    if s.reference:
        view["partner_reference"] = s.reference
    if s.reason:
        view["reason"] = s.reason
    return view
