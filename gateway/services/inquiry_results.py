"""Recording a source's answer, whoever brings it (partner reply, late callback, deadline watcher),
and what follows: the inquiry's overall status, the audit entry, the caller's callback."""

from __future__ import annotations

import json
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy.ext.asyncio import AsyncConnection

from gateway.domain import events as events_domain
from gateway.domain.inquiry import InquiryStatus, SourceStatus, result_categories, status_from_counts
from gateway.storage import events
from gateway.storage import inquiries as store
from gateway.storage.audit import AuditEntry, append_many
from gateway.storage.database import Database
from gateway.storage.inquiries import Answer
from gateway.storage.timestamps import as_utc, iso, now

FINAL = {InquiryStatus.COMPLETE, InquiryStatus.EXPIRED}
FINAL_STATUSES = frozenset(s.value for s in FINAL)
#: The message type of an inquiry's status events (one per source answered).
INQUIRY_TYPE = events_domain.ASSET_INQUIRY


@dataclass(frozen=True, slots=True)
class Applied:
    """An answer recorded: its inquiry, and the inquiry's status when it changed (else None)."""

    inquiry_id: str
    status: str | None


async def apply_answer(db: Database, request_ref: str, answer: Answer, actor: str) -> Applied | None:
    """Record ``answer`` for the source with ``request_ref`` unless it was already answered; None when
    it was. See :func:`record_answers`."""
    return (await db.write(lambda conn: record_answers(conn, [(request_ref, answer, actor)])))[0]


async def record_answers(
    conn: AsyncConnection, answers: Sequence[tuple[str, Answer, str]]
) -> list[Applied | None]:
    """In the caller's transaction, for each (request_ref, answer, actor): the source's answer, counted on
    its inquiry, its audit record and its status event (one per source, for subscribers: the case system
    sees each answer as it arrives); then, for each inquiry whose status changed, the new status — with
    its callback when it became final. None for an answer not recorded (its source was answered already).

    A fixed number of statements for the whole batch, whatever the number of answers and sources: the
    status follows from the counts the answers moved; sources are read only to build a final callback."""
    recorded = await store.record_many(conn, [(ref, answer) for ref, answer, _ in answers])
    at = now()
    entries: list[AuditEntry] = []
    changes: list[events.StatusChange] = []
    inquiries: dict[str, store.Recorded] = {}
    for got, (_ref, answer, actor) in zip(recorded, answers, strict=True):
        if got is None:
            continue
        inquiries[got.inquiry_id] = got
        entries.append(
            AuditEntry(
                actor=actor,
                action="assets.result",
                outcome=answer.status,
                object_ref=got.inquiry_id,
                reason=answer.reason,
                data={
                    "source": got.source_id,
                    "partner": got.partner_code,
                    "match_status": answer.match_status,
                    "categories": result_categories(got.source_id, answer.rows or []),
                    "request_sha256": got.request_sha256,
                    **({"transport": platform_summary(answer.evidence)} if answer.evidence else {}),
                },
            )
        )
        changes.append(
            events.StatusChange(
                message_id=got.inquiry_id,
                message_type=INQUIRY_TYPE,
                sender=got.partner_code,
                recipient=got.client_id,
                status=answer.status,
                previous_status=SourceStatus.PENDING.value,
                at=at,
                reason=answer.reason,
                source=got.source_id,
            )
        )
    await append_many(conn, entries)
    await events.record_many(conn, changes)
    moved: dict[str, str | None] = {}
    for inquiry_id, got in inquiries.items():
        status = status_from_counts(got.total, got.pending, got.timeouts, at, as_utc(got.due_at))
        if status.value == got.status:
            moved[inquiry_id] = None
            continue
        final = status in FINAL
        await store.set_status(conn, inquiry_id, status.value, completed=final)
        if final and got.callback_url:
            await queue_final_callback(conn, inquiry_id, status.value)
        moved[inquiry_id] = status.value
    return [None if got is None else Applied(got.inquiry_id, moved[got.inquiry_id]) for got in recorded]


async def queue_final_callback(conn: AsyncConnection, inquiry_id: str, status: str) -> None:
    """The caller's callback with the final inquiry (its id derived from the inquiry and status, so a
    repeat is recognised as one)."""
    inquiry = await store.get(conn, inquiry_id)
    assert inquiry is not None and inquiry.callback_url
    body = representation(inquiry, await store.sources_of(conn, inquiry_id))
    await store.queue_callback(
        conn,
        message_id=str(uuid.uuid5(uuid.NAMESPACE_URL, f"{inquiry_id}/{status}")),
        client_id=inquiry.client_id,
        url=inquiry.callback_url,
        body=json.dumps(body, ensure_ascii=False),
    )


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
    if getattr(s, "transport_evidence", None):
        view["transport"] = json.loads(s.transport_evidence)
    return view


def platform_summary(evidence: dict[str, Any]) -> dict[str, Any]:
    """What the audit keeps of a platform's evidence: which platform, the message id and the request hash
    (no user ids: the audit record names the officer its own way)."""
    keep = ("platform", "name", "x_road_id", "request_hash", "hash_algorithm", "verified", "transaction_id")
    return {key: evidence[key] for key in keep if key in evidence}
