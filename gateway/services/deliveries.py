"""What handing a document over writes: one place for the relay (a recipient's own queue: the confirmed
publish is the delivery) and the delivery worker (a partner's API, a webhook).

Every write here runs in its caller's transaction (the one that deletes the outbox row, or the one
that records a partner's answer), so the status change, its evidence and its status event are one.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

from prometheus_client import Counter
from sqlalchemy.ext.asyncio import AsyncConnection

from gateway.domain.delivery import PartnerReceipt
from gateway.domain.doctypes import DocumentType
from gateway.domain.revocation import revocation_document
from gateway.domain.status import Status, must_not_deliver
from gateway.storage import messages as store
from gateway.storage.outbox import DOCUMENTS, Pending
from gateway.storage.timestamps import iso, now

DELIVERED = Counter(
    "gateway_deliveries_total", "Documents handed to their recipient", ["recipient", "channel"]
)

#: Issues a gateway document (a revocation the recipient must hear of).
Issue = Callable[[dict[str, Any]], Awaitable[Any]]


@dataclass(frozen=True, slots=True)
class Delivered:
    """The outcome of recording one delivery: whether the message moved to ``delivered``; if not, why
    (its status then), so a document revoked during its hand-over can be followed by its revocation."""

    message_id: str
    moved: bool
    status: str | None = None
    recipient: str = ""


async def record_delivered(
    conn: AsyncConnection,
    doc_type: DocumentType | None,
    message_id: str,
    body: Mapping[str, Any] | None,
    detail: dict[str, Any],
    at: datetime,
    actor: str,
) -> Delivered:
    """``message_id`` reached its recipient: status, evidence, delivery count, and the note in the
    timelines of the documents it references. ``body`` is the document's body (for the references)."""
    moved = await store.transition(
        conn, message_id, Status.DELIVERED, actor, detail, at=at, extra=store.ONE_MORE_DELIVERY
    )
    status = None
    if not moved:
        # The sender revoked it while it was being handed over (or an answer pushed meanwhile moved it
        # on): keep the delivery evidence either way.
        await store.add_evidence(conn, message_id, "delivered", actor, detail, at)
        row = await store.get(conn, message_id)
        status = str(row.status) if row is not None else None
        await store.count_delivery(conn, message_id)
    if doc_type is not None and doc_type.delivered_event:
        for ref in doc_type.references:
            target = (body or {}).get(ref.field)
            if isinstance(target, str):
                note = {"by": message_id}
                await store.add_evidence(conn, target, doc_type.delivered_event, actor, note, at)
    return Delivered(message_id, moved, status)


def delivery_detail(channel: str, attempt: int, receipt: PartnerReceipt | None = None) -> dict[str, Any]:
    detail: dict[str, Any] = {"channel": channel, "attempt": attempt}
    if receipt is not None:
        detail |= {"answer": "later" if receipt.accepted_later else "at_once"}
        if receipt.reference:
            detail["partner_reference"] = receipt.reference
        if receipt.platform:
            detail["platform"] = dict(receipt.platform)
        if receipt.signature:
            detail["signature"] = dict(receipt.signature)
    return detail


async def follow_revoked(db_read: Any, issue: Issue, delivered: Sequence[Delivered]) -> None:
    """Revoked during the hand-over: the recipient has it, so it must hear of the revocation."""
    for outcome in delivered:
        if outcome.moved or outcome.status != Status.REVOKED:
            continue
        async with db_read() as conn:
            current = await store.get(conn, outcome.message_id)
        if current is not None:
            reason = current.status_reason or "revoked by its sender"
            await issue(revocation_document(current, reason, iso(now()) or ""))


class RelayRecorder:
    """What the relay's publishes mean, written with the outbox rows' deletion: a document published to
    its recipient's own queue is ``delivered``; one published to a delivery queue is ``queued``; one
    withheld (revoked while it waited) is noted as not delivered."""

    actor = "gateway.relay"

    def __init__(self, types: Mapping[str, DocumentType], db_read: Any, issue: Issue) -> None:
        self._types = types
        self._db_read = db_read
        self._issue = issue

    async def record(
        self, conn: AsyncConnection, published: Sequence[Any], withheld: Sequence[Pending]
    ) -> list[Delivered]:
        delivered: list[Delivered] = []
        for p in published:
            item: Pending = p.item
            if item.exchange != DOCUMENTS:
                continue  # lookup requests and callbacks have their own records
            detail = {"attempts": item.attempts}
            if p.route.delivers:
                doc_type = self._types.get(str(item.headers.get("message_type")))
                body = json.loads(item.body).get("body") if doc_type and doc_type.delivered_event else None
                detail = delivery_detail("amqp", item.attempts)
                if item.attempts > 1:
                    # An earlier publish of this row may have reached the queue (no confirm came, or
                    # its writer died before recording it): the copy said ``redelivered``; count it.
                    again = {"attempt": item.attempts, "channel": "amqp"}
                    await store.add_evidence(conn, item.message_id, "redelivered", self.actor, again, p.at)
                outcome = await record_delivered(
                    conn, doc_type, item.message_id, body, detail, p.at, self.actor
                )
                delivered.append(replace(outcome, recipient=item.routing_key))
                continue
            moved = await store.transition(conn, item.message_id, Status.QUEUED, self.actor, detail, at=p.at)
            if not moved:
                # Delivery already happened (or a previous publish of this row was confirmed but not
                # recorded): keep the evidence, not the status change.
                await store.add_evidence(conn, item.message_id, "queued", self.actor, detail, p.at)
        for item in withheld:
            await store.add_evidence(conn, item.message_id, "not_delivered_revoked", self.actor)
        return delivered

    async def after(self, recorded: list[Delivered]) -> None:
        for outcome in recorded:
            DELIVERED.labels(outcome.recipient, "amqp").inc()
        await follow_revoked(self._db_read, self._issue, recorded)


def withhold(item: Pending) -> bool:
    """A document whose status forbids sending it (revoked while it waited, or delivered already)."""
    return item.status is not None and must_not_deliver(Status(item.status))
