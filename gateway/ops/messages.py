"""Finding messages and reading one as an operator: envelope, timeline, replies, deliveries, payload.

Every string that leaves this module has its personal IDs masked
(:func:`gateway.domain.identifiers.scrub`, which keeps message ids, digests and dates whole), payload
included; whether the payload is shown at all is the
caller's decision (the operator's role).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from typing import Any, Final

from sqlalchemy import ColumnElement, and_, or_, select
from sqlalchemy.engine import Row
from sqlalchemy.ext.asyncio import AsyncConnection

from gateway.domain.identifiers import canonical_uuid, scrub, scrub_value
from gateway.domain.revocation import not_revocable as domain_not_revocable
from gateway.domain.status import Status
from gateway.ops.timeline import sentence
from gateway.storage import messages as store
from gateway.storage import retries
from gateway.storage.tables import messages
from gateway.storage.timestamps import iso

#: Events of a timeline that are about handing the document over.
DELIVERY_EVENTS: Final = frozenset(
    {
        "queued",
        "delivered",
        "delivery_failed",
        "redelivered",
        "duplicate_suppressed",
        "failed",
        "not_delivered_revoked",
        "replayed_from_parking",
        "discarded_from_parking",
    }
)
SEARCH_LIMIT: Final = 200


@dataclass(frozen=True, slots=True)
class MessageQuery:
    message_id: str = ""
    case_ref: str = ""
    sender: str = ""
    recipient: str = ""
    message_type: str = ""
    status: str = ""
    received_from: date | None = None
    received_to: date | None = None  # inclusive: the whole day

    @property
    def empty(self) -> bool:
        return not any(
            (
                self.message_id,
                self.case_ref,
                self.sender,
                self.recipient,
                self.message_type,
                self.status,
                self.received_from,
                self.received_to,
            )
        )


def parse_day(value: str | None) -> date | None:
    """``2026-12-02`` → a date; anything else → None (the form then ignores the field)."""
    if not value:
        return None
    try:
        return date.fromisoformat(value.strip()[:10])
    except ValueError:
        return None


@dataclass(frozen=True, slots=True)
class MessageLine:
    message_id: str
    message_type: str
    sender: str
    recipient: str
    status: str
    case_ref: str
    received_at: str
    due_at: str
    updated_at: str


def line(row: Row[Any]) -> MessageLine:
    return MessageLine(
        message_id=row.message_id,
        message_type=row.message_type,
        sender=row.sender,
        recipient=row.recipient,
        status=row.status,
        case_ref=scrub(row.case_ref or ""),
        received_at=iso(row.received_at) or "",
        due_at=iso(row.due_at) or "",
        updated_at=iso(row.updated_at) or "",
    )


def conditions(query: MessageQuery) -> list[ColumnElement[bool]]:
    """The filter as SQL (the console's list and its CSV export, :func:`search`): ``message_id`` matches the
    id exactly (and then the documents answering or correlated with it too) or the start of it; dates are
    whole days, UTC, ``to`` inclusive."""
    where: list[ColumnElement[bool]] = []
    if query.message_id:
        wanted = query.message_id.strip().lower()
        exact = canonical_uuid(wanted)
        if exact:
            where.append(
                or_(
                    messages.c.message_id == exact,
                    messages.c.in_reply_to == exact,
                    messages.c.correlation_id == exact,
                )
            )
        else:
            where.append(messages.c.message_id.startswith(wanted, autoescape=True))
    for column, value in (
        (messages.c.case_ref, query.case_ref),
        (messages.c.sender, query.sender),
        (messages.c.recipient, query.recipient),
        (messages.c.message_type, query.message_type),
        (messages.c.status, query.status),
    ):
        if value:
            where.append(column == value.strip())
    if query.received_from:
        where.append(messages.c.received_at >= day_start(query.received_from))
    if query.received_to:
        where.append(messages.c.received_at < day_start(query.received_to) + timedelta(days=1))
    return where


def day_start(day: date) -> datetime:
    return datetime.combine(day, time(), UTC)


async def search(conn: AsyncConnection, query: MessageQuery, limit: int = SEARCH_LIMIT) -> list[MessageLine]:
    """Newest first, at most ``limit``: the filter without paging (the console's list pages it)."""
    stmt = select(messages).order_by(messages.c.received_at.desc()).limit(limit)
    where = conditions(query)
    if where:
        stmt = stmt.where(and_(*where))
    return [line(r) for r in (await conn.execute(stmt)).all()]


async def statuses(conn: AsyncConnection, message_ids: list[str]) -> dict[str, tuple[str, str]]:
    """message id -> (status, reason) for those of ``message_ids`` that are documents of the gateway."""
    wanted = [m for m in message_ids if canonical_uuid(m)]
    if not wanted:
        return {}
    rows = await conn.execute(
        select(messages.c.message_id, messages.c.status, messages.c.status_reason).where(
            messages.c.message_id.in_(wanted)
        )
    )
    return {r.message_id: (r.status, scrub(r.status_reason or "")) for r in rows}


@dataclass(frozen=True, slots=True)
class MessageDetail:
    summary: MessageLine
    envelope: list[tuple[str, str]]
    timeline: list[dict[str, Any]]
    deliveries: list[dict[str, Any]]
    replies: list[dict[str, Any]]
    payload: str | None  # pretty JSON, scrubbed; None once dropped (after confirmation)
    receipt: dict[str, Any] = field(default_factory=dict)
    #: Delivery attempts: failures, last error, the retry waiting in a tier (if any).
    attempts: retries.Attempts | None = None
    #: The message it replies to / replaces / is correlated with, when those are gateway documents.
    related: list[tuple[str, str]] = field(default_factory=list)
    #: Whether a copy may sit in a parking queue: delivery gave up (``failed`` with an error) and no
    #: replay or discard followed.
    maybe_parked: bool = False
    priority: str = "normal"
    #: Why an operator may not revoke it ("" when they may).
    not_revocable: str = ""


async def detail(conn: AsyncConnection, message_id: str) -> MessageDetail | None:
    canonical = canonical_uuid(message_id)
    row = await store.get(conn, canonical) if canonical else None
    if row is None:
        return None
    events = []
    for e in await store.timeline(conn, row.message_id):
        raw = e.get("detail")
        detail = scrub_value(raw) if isinstance(raw, dict) else {}
        events.append(
            {
                "event": e["event"],
                "at": e["at"],
                "actor": e["actor"],
                "text": scrub(sentence(e["event"], e["actor"], detail, row.sender, row.recipient)),
                # ``by`` repeats the actor shown beside it, when it is the same operator.
                "fields": [
                    (str(k), _shown(v))
                    for k, v in sorted(detail.items())
                    if not (k == "by" and v == e["actor"])
                ],
                "detail": json.dumps(detail, ensure_ascii=False, sort_keys=True) if detail else "",
                "delivery": e["event"] in DELIVERY_EVENTS,
            }
        )
    state = retries.summarise(await retries.evidence_of(conn, row.message_id), str(row.status))
    related = [
        (label, value)
        for label, value in (
            ("Replies to", row.in_reply_to),
            ("Replaces", row.replaces),
            ("Correlated with", row.correlation_id if row.correlation_id != row.message_id else None),
        )
        if value
    ]
    parked = str(row.status) == Status.FAILED.value and bool(events) and _gave_up(events)
    replies = [scrub_value(r) for r in await store.replies(conn, row.message_id)]
    envelope = [
        ("message_id", row.message_id),
        ("message_type", row.message_type),
        ("schema_version", row.schema_version),
        ("sender", row.sender),
        ("recipient", row.recipient),
        ("priority", row.priority),
        ("status", row.status),
        ("status_reason", row.status_reason or ""),
        ("case_ref", row.case_ref or ""),
        ("correlation_id", row.correlation_id or ""),
        ("in_reply_to", row.in_reply_to or ""),
        ("replaces", row.replaces or ""),
        ("received_at", iso(row.received_at) or ""),
        ("updated_at", iso(row.updated_at) or ""),
        ("due_at", iso(row.due_at) or ""),
        ("delivery_count", str(row.delivery_count)),
        ("sha256", row.sha256),
    ]
    payload = None
    if row.payload:
        try:
            payload = json.dumps(json.loads(row.payload), indent=2, ensure_ascii=False)
        except ValueError:
            payload = row.payload
        payload = scrub(payload)
    try:
        receipt = json.loads(row.receipt)
    except ValueError:
        receipt = {}
    return MessageDetail(
        summary=line(row),
        envelope=[(k, scrub(v)) for k, v in envelope],
        timeline=events,
        deliveries=[e for e in events if e["delivery"]],
        replies=replies,
        payload=payload,
        receipt=scrub_value(receipt) if isinstance(receipt, dict) else {},
        attempts=state,
        related=related,
        maybe_parked=parked,
        priority=str(row.priority or "normal"),
        not_revocable=not_revocable(row),
    )


def _shown(value: Any) -> str:
    """A detail value as text: strings as they are, everything else as compact JSON."""
    if isinstance(value, str):
        return value
    return json.dumps(value, ensure_ascii=False, sort_keys=True)


def _gave_up(events: list[dict[str, Any]]) -> bool:
    """The last parking-relevant event is the give-up (``failed`` by delivery), not a replay/discard."""
    for e in reversed(events):
        if e["event"] in ("replayed_from_parking", "discarded_from_parking", "delivered"):
            return False
        if e["event"] == "failed":
            return any(k == "error" for k, _ in e["fields"])
    return False


def not_revocable(row: Any) -> str:
    """Why an operator cannot revoke the document ("" when they can): the sender's own rules."""
    if str(row.status) == Status.REVOKED.value:
        return "the document is revoked already"
    return domain_not_revocable(row.message_type, str(row.status))
