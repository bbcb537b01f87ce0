"""Lookups in the worker: call partners (each request waits in its partner's work queue), record their
answers, time out the silent ones, and call the caller back when an inquiry is final.

Each step acks only after its effect is stored or published (settled by :mod:`gateway.amqp.consume`: a
step that raises is handed back to the broker after a back-off, one that raises ``Park`` is parked);
each is idempotent on ``request_ref``, so a redelivered request may call a partner twice, but the
inquiry records one answer.
"""

from __future__ import annotations

import asyncio
import functools
import logging
from collections.abc import Awaitable, Callable
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
from gateway.services.inquiry_results import FINAL_STATUSES, apply_answer, callback_read
from gateway.storage import inquiries as store
from gateway.storage.audit import AuditEntry, append
from gateway.storage.database import Database
from gateway.storage.inquiries import PENDING, Answer
from gateway.storage.timestamps import now
from gateway.worker import webhook

log = logging.getLogger(__name__)


async def _no_hint(inquiry_id: str) -> None:
    return None


class LookupWorker:
    def __init__(
        self,
        db: Database,
        publisher: Publisher,
        names: Names,
        connectors: dict[str, GuardedConnector],
        signer: Signer,
        outbound: Outbound,
        hint: Callable[[str], Awaitable[None]] = _no_hint,
    ) -> None:
        self._db = db
        self._publisher = publisher
        self._names = names
        #: Says "this inquiry became final" to api processes waiting for it (gateway.amqp.hints).
        self._hint = hint
        self._connectors = connectors
        self._signer = signer
        self._outbound = outbound

    # -- partner work queues ---------------------------------------------------------------------

    async def on_request(self, partner_code: str, queue: str, message: AbstractIncomingMessage) -> None:
        """A lookup request from the partner's work queue ``queue``: call the partner, record its answer
        (or that it will answer later), then ack. No reply hop: the worker that called records."""
        await consume(
            message, functools.partial(self._on_request, partner_code), queue=queue, partner=partner_code
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
        if outcome.status == PENDING:
            # Taken by the partner, answered later through the api: remember its reference.
            reference = outcome.answer.reference if outcome.answer else None
            await self._db.write(lambda conn: store.note_accepted_later(conn, request.request_ref, reference))
            return
        # Answers arriving together share one transaction (the database's group commit).
        await self.record(request.request_ref, answer_of(outcome), partner_code)

    async def record(self, request_ref: str, answer: Answer, actor: str) -> None:
        applied = await apply_answer(self._db, request_ref, answer, actor)
        if applied is not None and applied.status in FINAL_STATUSES:
            await self._hint(applied.inquiry_id)

    # -- deadlines -----------------------------------------------------------------------------

    async def watch_deadlines(self, interval: float = 1.0) -> None:
        """No inquiry stays pending past its deadline: silent sources become ``timeout``."""
        while True:
            try:
                async with self._db.read() as conn:
                    overdue = await store.overdue_sources(conn, now())
                for row in overdue:
                    await self.record(
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


def answer_of(outcome: Outcome) -> Answer:
    """What is recorded for a source from the outcome of calling its partner."""
    answer = outcome.answer
    return Answer(
        status=outcome.status,
        match_status=answer.match_status if answer else None,
        rows=answer.rows if answer and outcome.status in ("found", "not_found") else None,
        as_of=answer.as_of if answer else None,
        reference=answer.reference if answer else None,
        reason=outcome.reason,
        attempts=outcome.attempts,
    )
