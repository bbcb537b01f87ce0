"""Lookups in the worker: call partners (one queue per partner), record their replies, time out the
silent ones, and call the caller back when an inquiry is final.

Each step acks only after its effect is stored or published (settled by :mod:`gateway.amqp.consume`: a
step that raises is handed back to the broker after a back-off, one that raises ``Park`` is parked);
each is idempotent on ``request_ref``, so a redelivered request may call a partner twice, but the
inquiry records one answer.
"""

from __future__ import annotations

import asyncio
import functools
import json
import logging
from typing import Any
from urllib.parse import urlsplit

from aio_pika.abc import AbstractIncomingMessage
from tenacity import AsyncRetrying, retry_if_exception_type, stop_after_attempt, wait_random_exponential

from gateway.amqp.broker import Publisher
from gateway.amqp.consume import Park, consume
from gateway.amqp.names import Names
from gateway.connectors.resilience import GuardedConnector, Outcome
from gateway.domain.identifiers import scrub
from gateway.security.outbound import Outbound, OutboundRefused
from gateway.security.signing import Signer
from gateway.services.inquiries import parse_request
from gateway.services.inquiry_results import apply_answer, callback_read
from gateway.storage import inquiries as store
from gateway.storage.audit import AuditEntry, append
from gateway.storage.database import Database
from gateway.storage.inquiries import PENDING, Answer
from gateway.storage.timestamps import now
from gateway.worker import webhook

log = logging.getLogger(__name__)


class LookupWorker:
    def __init__(
        self,
        db: Database,
        publisher: Publisher,
        names: Names,
        connectors: dict[str, GuardedConnector],
        signer: Signer,
        outbound: Outbound,
    ) -> None:
        self._db = db
        self._publisher = publisher
        self._names = names
        self._connectors = connectors
        self._signer = signer
        self._outbound = outbound

    # -- partner queues ------------------------------------------------------------------------

    async def on_request(self, partner_code: str, message: AbstractIncomingMessage) -> None:
        await consume(
            message,
            functools.partial(self._on_request, partner_code),
            queue=self._names.partner(partner_code),
            partner=partner_code,
        )

    async def _on_request(self, partner_code: str, message: AbstractIncomingMessage) -> None:
        try:
            request = parse_request(message.body)
        except (ValueError, TypeError, KeyError) as exc:
            raise Park(f"unreadable lookup request ({type(exc).__name__})", level=logging.ERROR) from exc
        async with self._db.read() as conn:
            source = await store.source_by_ref(conn, request.request_ref)
        if source is None or source.status != PENDING:
            return  # answered already (or timed out): nothing to do
        outcome = await self._connectors[partner_code].call(request)
        log.debug("lookup on %s: %s after %d attempt(s)", partner_code, outcome.status, outcome.attempts)
        await self._publisher.publish(
            self._names.replies,
            partner_code,
            json.dumps(reply_body(request.request_ref, outcome), ensure_ascii=False).encode(),
            message_id=request.request_ref,
            correlation_id=request.inquiry_id,
            message_type="asset.lookup.reply",
        )

    # -- replies -------------------------------------------------------------------------------

    async def on_reply(self, message: AbstractIncomingMessage) -> None:
        await consume(message, self._on_reply, queue=self._names.replies_queue)

    async def _on_reply(self, message: AbstractIncomingMessage) -> None:
        try:
            data = json.loads(message.body)
            if data["status"] == PENDING:
                await self._db.write(
                    lambda conn: store.note_accepted_later(conn, data["request_ref"], data.get("reference"))
                )
            else:
                await apply_answer(
                    self._db, data["request_ref"], answer_from(data), data.get("partner", "partner")
                )
        except (ValueError, KeyError) as exc:
            raise Park(f"unreadable reply ({type(exc).__name__})", level=logging.ERROR) from exc

    # -- deadlines -----------------------------------------------------------------------------

    async def watch_deadlines(self, interval: float = 1.0) -> None:
        """No inquiry stays pending past its deadline: silent sources become ``timeout``."""
        while True:
            try:
                async with self._db.read() as conn:
                    overdue = await store.overdue_sources(conn, now())
                for row in overdue:
                    await apply_answer(
                        self._db,
                        row.request_ref,
                        Answer(status="timeout", reason="no answer by the deadline"),
                        "gateway.deadline",
                    )
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("deadline pass failed")
            await asyncio.sleep(interval)

    # -- callbacks -----------------------------------------------------------------------------

    async def on_callback(self, message: AbstractIncomingMessage) -> None:
        """POST the final inquiry to the caller's callback_url, signed like document webhooks, only where
        the outbound policy allows (checked again now, and by the session's resolver at connect time),
        never following a redirect; audited as a read of the results it carries before they leave."""
        await consume(message, self._on_callback, queue=self._names.callbacks_queue)

    async def _on_callback(self, message: AbstractIncomingMessage) -> None:
        url = str((message.headers or {}).get("url", ""))
        client_id = message.routing_key or ""
        host = urlsplit(url).hostname or ""
        try:
            read = callback_read(client_id, host, message.message_id or "", message.body)
        except (ValueError, KeyError, TypeError) as exc:
            raise Park(f"unreadable callback ({type(exc).__name__})", level=logging.ERROR) from exc
        try:
            await self._outbound.check(url, client_id)
        except OutboundRefused as refused:
            # Audited before it is parked; an audit that fails hands the callback back for later.
            await self._audit(
                AuditEntry(
                    actor="gateway.callback",
                    action="assets.callback",
                    outcome="refused",
                    message_id=message.message_id,
                    object_ref=read.object_ref,
                    reason=str(refused),
                    data={"client": client_id, "host": host},
                )
            )
            raise Park(f"callback to {scrub(url)} refused by the outbound policy ({refused})") from refused
        # Before the results leave: a callback that cannot be audited is not sent yet.
        await self._audit(read)
        try:
            async for attempt in AsyncRetrying(
                stop=stop_after_attempt(5),
                wait=wait_random_exponential(multiplier=0.5, max=15),
                retry=retry_if_exception_type(webhook.WebhookFailed),
                reraise=True,
            ):
                with attempt:
                    await webhook.post(
                        self._outbound.session,
                        self._signer,
                        url,
                        message.body,
                        message.message_id or "",
                        "asset.inquiry.result",
                        attempt.retry_state.attempt_number,
                        bool(message.redelivered),
                        10.0,
                    )
        except webhook.WebhookFailed as exc:
            raise Park(f"callback to {scrub(url)} failed for good ({scrub(str(exc))})") from exc

    async def _audit(self, entry: AuditEntry) -> None:
        async with self._db.transaction() as conn:
            await append(conn, entry)


def reply_body(request_ref: str, outcome: Outcome) -> dict[str, Any]:
    answer = outcome.answer
    return {
        "request_ref": request_ref,
        "status": outcome.status,
        "match_status": answer.match_status if answer else None,
        "rows": answer.rows if answer and outcome.status in ("found", "not_found") else None,
        "as_of": answer.as_of if answer else None,
        "reference": answer.reference if answer else None,
        "reason": outcome.reason,
        "attempts": outcome.attempts,
    }


def answer_from(data: dict[str, Any]) -> Answer:
    return Answer(
        status=data["status"],
        match_status=data.get("match_status"),
        rows=data.get("rows"),
        as_of=data.get("as_of"),
        reference=data.get("reference"),
        reason=data.get("reason"),
        attempts=int(data.get("attempts") or 0),
    )
