"""Delivery to recipients: consume the recipient's internal queue, pass each document on exactly once
in effect (to the recipient's own AMQP queue, its webhook, or a partner's own API through its
connector), record it, then ack.

Order of effects per message: check "already delivered or revoked?" -> forward -> record [with the
partner's synchronous answer, in the same transaction] -> ack. A crash between forward and record can
repeat the forward on redelivery (same message_id, counted; partners de-duplicate on it); everything else
that repeats is suppressed by the status check.
"""

from __future__ import annotations

import json
import logging
import uuid
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, replace
from typing import Any

import aiohttp
from aio_pika.abc import AbstractIncomingMessage
from prometheus_client import Counter
from sqlalchemy.ext.asyncio import AsyncConnection

from gateway.amqp.broker import Publisher
from gateway.amqp.consume import Park
from gateway.amqp.names import Names
from gateway.connectors.pull import HeldForPull
from gateway.connectors.resilience import GuardedConnector
from gateway.domain.answers import answer_document
from gateway.domain.delivery import PartnerReceipt
from gateway.domain.doctypes import DocumentType
from gateway.domain.errors import DomainError
from gateway.domain.identifiers import scrub
from gateway.domain.status import Status, must_not_deliver
from gateway.security.clients import Client
from gateway.security.signing import Signer
from gateway.services.deliveries import (
    DELIVERED,
    Delivered,
    delivery_detail,
    follow_revoked,
    record_delivered,
)
from gateway.services.documents import DocumentService
from gateway.settings import DeliverySettings
from gateway.storage import messages as store
from gateway.storage import retries
from gateway.storage.database import Database
from gateway.storage.timestamps import iso, now
from gateway.worker import webhook

log = logging.getLogger(__name__)

SUPPRESSED = Counter(
    "gateway_delivery_duplicates_suppressed_total", "Redelivered copies not passed on again", ["recipient"]
)
REDELIVERED = Counter(
    "gateway_delivery_redeliveries_total",
    "Deliveries the broker handed out again after a failure",
    ["recipient"],
)
RETRIED = Counter("gateway_delivery_retries_total", "Deliveries scheduled for a later attempt", ["recipient"])
PARKED = Counter("gateway_delivery_parked_total", "Deliveries given up and parked", ["recipient"])
ATTEMPT_HEADER = "x-delivery-attempt"


class PartnerRefused(Exception):
    """The partner answered that it will not take this document: sending it again would not help."""


@dataclass(frozen=True, slots=True)
class Recipient:
    """Where one recipient's documents go: a client (AMQP queue or webhook) or a partner's connector."""

    id: str
    client: Client | None = None
    partner: GuardedConnector | None = None


def retry_delay_ms(delays_seconds: list[float], attempt: int) -> int:
    """Back-off for the ``attempt``-th failure: tiers in order, the last one repeating."""
    return int(delays_seconds[min(attempt, len(delays_seconds)) - 1] * 1000)


class Deliverer:
    def __init__(
        self,
        db: Database,
        publisher: Publisher,
        names: Names,
        signer: Signer,
        http: aiohttp.ClientSession,
        settings: DeliverySettings,
        documents: DocumentService,
    ) -> None:
        self._db = db
        self._documents = documents
        self._types: Mapping[str, DocumentType] = documents.registry
        self._publisher = publisher
        self._names = names
        self._signer = signer
        self._http = http
        self._settings = settings
        self.actor = "gateway.delivery"

    async def deliver(self, recipient: Recipient, message: AbstractIncomingMessage) -> None:
        """Handler of ``names.deliver(recipient.id)`` and its urgent lane, under the consumer policy
        (``gateway/amqp/consume.py``): returning acks; :class:`Park` parks; storage or broker trouble
        (any other exception) leaves the message to the broker, whose delivery limit parks what never
        clears."""
        message_id = message.message_id or ""
        async with self._db.read() as conn:
            row = await store.get(conn, message_id) if message_id else None
        if row is None:
            raise Park(f"unknown message {message_id!r} on {recipient.id}", level=logging.ERROR)
        if must_not_deliver(Status(row.status)):
            # Delivered already (a redelivered copy), or revoked by its sender before it got here.
            revoked = row.status == Status.REVOKED
            SUPPRESSED.labels(recipient.id).inc()
            event = "not_delivered_revoked" if revoked else "duplicate_suppressed"
            await self._db.write(lambda conn: store.add_evidence(conn, message_id, event, self.actor))
            return

        attempt = _attempt(message)
        if retries.RETRY_ID_HEADER in (message.headers or {}):
            async with self._db.read() as conn:
                replaced = await retries.superseded(conn, message_id, dict(message.headers or {}))
            if replaced:
                # An operator pulled this attempt forward: the pulled copy carries it; this one, out of
                # its retry tier late, is dropped (gateway/storage/retries.py says why it cannot race).
                detail = {"attempt": attempt}
                await self._db.write(
                    lambda conn: store.add_evidence(
                        conn, message_id, retries.SUPERSEDED_EVENT, self.actor, detail
                    )
                )
                return
        repeat = bool(message.redelivered) or attempt > 1
        if repeat:
            # A previous holder of this delivery died before acking, or a previous attempt failed in a
            # way that does not prove the recipient got nothing: the forward may have happened already.
            # Count it; the copy carries the same message_id and says it may be a repeat.
            REDELIVERED.labels(recipient.id).inc()
            detail = {"attempt": attempt, "broker_redelivery": bool(message.redelivered)}
            await self._db.write(
                lambda conn: store.add_evidence(conn, message_id, "redelivered", self.actor, detail)
            )
        receipt: PartnerReceipt | None = None
        # Parsed once: the partner's call, its answer and the delivery record all read it.
        document: dict[str, Any] = json.loads(message.body)
        try:
            if recipient.partner is not None:
                channel, receipt = "connector", await self._to_partner(recipient.partner, message, document)
            else:
                assert recipient.client is not None
                channel = await self._forward(recipient.client, message, attempt, repeat)
        except PartnerRefused as exc:
            await self._park(recipient, message, attempt, str(exc))
            return
        except (webhook.WebhookFailed, ConnectionError, TimeoutError, OSError) as exc:
            await self._retry_or_park(recipient, message, attempt, str(exc))
            return
        if isinstance(receipt, HeldForPull):
            # In a pull partner's inbox: delivered when the partner acknowledges it (services/pulls.py).
            return

        recorded: list[Delivered] = []
        record = self._delivery_record(row, document, channel, attempt, receipt, now(), recorded)
        report = receipt.report if receipt is not None else None
        if report is None or not await self._store_answer(recipient.id, row, document, report, record):
            recorded.clear()  # what a rolled-back run of ``record`` saw
            await self._db.write(record)
        await follow_revoked(self._db.read, self._documents.issue, recorded[-1:])
        DELIVERED.labels(recipient.id, channel).inc()
        log.debug("delivered to %s via %s (attempt %d)", recipient.id, channel, attempt)

    async def _forward(
        self, client: Client, message: AbstractIncomingMessage, attempt: int, repeat: bool
    ) -> str:
        assert client.deliver_to is not None
        headers: dict[str, Any] = {k: v for k, v in (message.headers or {}).items() if not k.startswith("x-")}
        if repeat:
            headers["redelivered"] = True
        if client.deliver_to.kind == "amqp":
            await self._publisher.publish(
                "",
                client.deliver_to.target,
                message.body,
                message_id=message.message_id or "",
                correlation_id=message.correlation_id,
                message_type=message.type,
                headers=headers,
            )
            return "amqp"
        await webhook.post(
            self._http,
            self._signer,
            client.deliver_to.target,
            message.body,
            message.message_id or "",
            message.type or "",
            attempt,
            repeat,
            self._settings.webhook_timeout_seconds,
        )
        return "webhook"

    async def _to_partner(
        self, partner: GuardedConnector, message: AbstractIncomingMessage, original: dict[str, Any]
    ) -> PartnerReceipt | None:
        document = dict(original)
        # The law wants the partner told the deadline: the gateway's own, when the sender gave none.
        due_at = (message.headers or {}).get("due_at")
        if isinstance(due_at, str) and "due_at" not in document:
            document["due_at"] = due_at
        urgent = (message.headers or {}).get("priority") == "urgent"
        outcome = await partner.deliver(document, urgent=urgent)
        if outcome.status == "delivered":
            if outcome.receipt is not None and outcome.evidence:
                return replace(outcome.receipt, platform=outcome.evidence)
            return outcome.receipt
        reason = outcome.reason or outcome.status
        if outcome.status == "error":
            raise PartnerRefused(reason)
        raise ConnectionError(reason)

    async def _store_answer(
        self,
        partner: str,
        row: Any,
        original: dict[str, Any],
        report: dict[str, Any],
        record: Callable[[AsyncConnection], Awaitable[None]],
    ) -> bool:
        """The partner answered at once: its answer enters the pipeline like a pushed one would, in one
        transaction with ``record`` (the delivery it answers: never an answer without its delivery).
        Whether ``record`` was written with it; if not (no answer type, a refused or repeated answer), the
        caller writes it alone."""
        doc_type = self._types.get(row.message_type)
        if doc_type is None or doc_type.answer_type is None:
            return False
        answer = answer_document(original, doc_type.answer_type, report, iso(now()) or "")
        try:
            result = await self._documents.accept_from_partner(partner, answer, first=record)
        except DomainError as problem:
            # The partner executed the order but its answer is unusable: keep the evidence, let the
            # deadline escalate, never drop what the partner said.
            detail = {
                "answer_type": doc_type.answer_type,
                "errors": [scrub(f"{v.path}: {v.message}") for v in problem.violations][:20],
            }
            async with self._db.transaction() as conn:
                await store.add_evidence(conn, original["message_id"], "answer_rejected", partner, detail)
            return False
        return not result.duplicate

    def _delivery_record(
        self,
        row: Any,
        document: dict[str, Any],
        channel: str,
        attempt: int,
        receipt: PartnerReceipt | None,
        at: Any,
        recorded: list[Delivered],
    ) -> Callable[[AsyncConnection], Awaitable[None]]:
        """The write that records the delivery of ``row``; appends its outcome to ``recorded``."""
        detail = delivery_detail(channel, attempt, receipt)
        doc_type = self._types.get(row.message_type)
        body = document.get("body")

        async def record(conn: AsyncConnection) -> None:
            recorded.append(
                await record_delivered(conn, doc_type, row.message_id, body, detail, at, self.actor)
            )

        return record

    async def _park(
        self, recipient: Recipient, message: AbstractIncomingMessage, attempt: int, reason: str
    ) -> None:
        async with self._db.transaction() as conn:
            await store.transition(
                conn,
                message.message_id or "",
                Status.FAILED,
                self.actor,
                {"attempts": attempt, "error": reason},
                reason=f"not delivered after {attempt} attempt(s): {reason}",
            )
        PARKED.labels(recipient.id).inc()
        raise Park(reason)  # dead-letter -> parking queue

    async def _retry_or_park(
        self, recipient: Recipient, message: AbstractIncomingMessage, attempt: int, reason: str
    ) -> None:
        message_id = message.message_id or ""
        if attempt >= self._settings.max_attempts:
            await self._park(recipient, message, attempt, reason)
            return
        delay = retry_delay_ms(self._settings.retry_delays_seconds, attempt)
        # Names this scheduled copy: an operator pulling it forward names it too, and the worker then
        # drops this copy when it comes out of its tier (gateway/storage/retries.py).
        retry_id = uuid.uuid4().hex
        async with self._db.transaction() as conn:
            await store.add_evidence(
                conn,
                message_id,
                "delivery_failed",
                self.actor,
                {"attempt": attempt, "error": reason, "retry_in_ms": delay, "retry_id": retry_id},
            )
        # Back through the lane it came from: an urgent document stays urgent through its retries.
        priority = str((message.headers or {}).get("priority", "normal"))
        await self._publisher.publish(
            self._names.retry(delay),
            Names.routing_key(recipient.id, priority),
            message.body,
            message_id=message_id,
            correlation_id=message.correlation_id,
            message_type=message.type,
            headers={
                **(message.headers or {}),
                ATTEMPT_HEADER: attempt + 1,
                retries.RETRY_ID_HEADER: retry_id,
            },
        )
        RETRIED.labels(recipient.id).inc()  # returning acks this copy: the retry tier holds the next


def _attempt(message: AbstractIncomingMessage) -> int:
    value = (message.headers or {}).get(ATTEMPT_HEADER, 1)
    return value if isinstance(value, int) and value > 0 else 1
