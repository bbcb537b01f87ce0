"""What waits too long: documents past their deadline, inquiries still pending, deliveries being
retried, anything in a non-final status for longer than ``ops.stuck_after_minutes``; and the outbox
backlog (accepted, not yet on the broker)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Final

from sqlalchemy import and_, exists, func, select
from sqlalchemy.ext.asyncio import AsyncConnection
from sqlalchemy.sql.elements import ColumnElement

from gateway.domain.status import OPEN, Status
from gateway.ops.messages import MessageLine, line
from gateway.storage.tables import evidences, inquiries, inquiry_sources, messages, outbox
from gateway.storage.timestamps import as_utc, iso, now

#: Non-final statuses: the document still waits for a delivery, an answer or a confirmation.
NON_FINAL: Final = sorted(OPEN)
#: An inquiry that is not complete yet.
INQUIRY_OPEN: Final = ("pending", "partial")
LIST_LIMIT: Final = 200


@dataclass(frozen=True, slots=True)
class OutboxState:
    backlog: int
    oldest_at: datetime | None

    def oldest_age_seconds(self, at: datetime | None = None) -> float | None:
        if self.oldest_at is None:
            return None
        return max(0.0, ((at or now()) - self.oldest_at).total_seconds())


@dataclass(frozen=True, slots=True)
class InquiryLine:
    inquiry_id: str
    case_ref: str
    client_id: str
    status: str
    created_at: str
    due_at: str
    pending_sources: str


@dataclass(frozen=True, slots=True)
class Backlog:
    overdue: list[MessageLine]
    pending_inquiries: list[InquiryLine]
    retrying: list[MessageLine]
    stuck: list[MessageLine]
    threshold_minutes: float


async def outbox_state(conn: AsyncConnection) -> OutboxState:
    count, oldest = (await conn.execute(select(func.count(), func.min(outbox.c.created_at)))).one()
    return OutboxState(int(count or 0), as_utc(oldest) if oldest is not None else None)


def _overdue(at: datetime) -> ColumnElement[bool]:
    return and_(messages.c.status.in_(NON_FINAL), messages.c.due_at.is_not(None), messages.c.due_at < at)


def _stuck(at: datetime, threshold_minutes: float) -> ColumnElement[bool]:
    return and_(
        messages.c.status.in_(NON_FINAL), messages.c.updated_at < at - timedelta(minutes=threshold_minutes)
    )


def _retrying() -> ColumnElement[bool]:
    failed_once = exists().where(
        evidences.c.message_id == messages.c.message_id, evidences.c.event == "delivery_failed"
    )
    return and_(messages.c.status.in_([Status.RECEIVED, Status.QUEUED, Status.OVERDUE]), failed_once)


async def counts(
    conn: AsyncConnection, threshold_minutes: float, at: datetime | None = None
) -> dict[str, int]:
    at = at or now()
    out = {}
    for name, cond in (
        ("overdue", _overdue(at)),
        ("stuck", _stuck(at, threshold_minutes)),
        ("retrying", _retrying()),
    ):
        out[name] = int(
            (await conn.execute(select(func.count()).select_from(messages).where(cond))).scalar_one()
        )
    stmt = select(func.count()).select_from(inquiries).where(inquiries.c.status.in_(INQUIRY_OPEN))
    out["pending_inquiries"] = int((await conn.execute(stmt)).scalar_one())
    return out


async def backlog(
    conn: AsyncConnection, threshold_minutes: float, at: datetime | None = None, limit: int = LIST_LIMIT
) -> Backlog:
    at = at or now()

    async def listed(cond: ColumnElement[bool], order: Any) -> list[MessageLine]:
        stmt = select(messages).where(cond).order_by(order).limit(limit)
        return [line(r) for r in (await conn.execute(stmt)).all()]

    pending = (
        await conn.execute(
            select(inquiries)
            .where(inquiries.c.status.in_(INQUIRY_OPEN))
            .order_by(inquiries.c.due_at)
            .limit(limit)
        )
    ).all()
    sources: dict[str, list[str]] = {}
    if pending:
        rows = await conn.execute(
            select(inquiry_sources.c.inquiry_id, inquiry_sources.c.source_id).where(
                inquiry_sources.c.inquiry_id.in_([p.inquiry_id for p in pending]),
                inquiry_sources.c.status == "pending",
            )
        )
        for inquiry_id, source_id in rows:
            sources.setdefault(inquiry_id, []).append(source_id)
    return Backlog(
        overdue=await listed(_overdue(at), messages.c.due_at),
        pending_inquiries=[
            InquiryLine(
                inquiry_id=p.inquiry_id,
                case_ref=p.case_ref,
                client_id=p.client_id,
                status=p.status,
                created_at=iso(p.created_at) or "",
                due_at=iso(p.due_at) or "",
                pending_sources=", ".join(sorted(sources.get(p.inquiry_id, []))),
            )
            for p in pending
        ],
        retrying=await listed(_retrying(), messages.c.updated_at),
        stuck=await listed(_stuck(at, threshold_minutes), messages.c.updated_at),
        threshold_minutes=threshold_minutes,
    )
