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
from datetime import datetime
from urllib.parse import urlsplit

from aio_pika.abc import AbstractIncomingMessage
from tenacity import AsyncRetrying, retry_if_exception_type, stop_after_attempt, wait_random_exponential

from gateway.amqp.consume import Park, consume
from gateway.amqp.names import Names
from gateway.connectors.resilience import GuardedConnector, Outcome
from gateway.domain.identifiers import scrub
from gateway.domain.lookup import LookupRequest
from gateway.security.outbound import Outbound, OutboundRefused
from gateway.security.signing import Signer
from gateway.services.inquiries import parse_request
from gateway.services.inquiry_results import FINAL_STATUSES, Applied, callback_read, record_answers
from gateway.storage import inquiries as store
from gateway.storage.audit import AuditEntry, append
from gateway.storage.database import Database
from gateway.storage.inquiries import PENDING, Answer
from gateway.storage.timestamps import now
from gateway.worker import webhook
from gateway.worker.batching import Batcher

log = logging.getLogger(__name__)
#: How long a lookup to a bank that takes batches waits for others to join its batch (a full batch leaves
#: at once): short beside a call, long enough for the requests of one prefetch to gather.
BATCH_LINGER_SECONDS = 0.05


async def _no_hint(inquiry_id: str) -> None:
    return None


class LookupWorker:
    def __init__(
        self,
        db: Database,
        names: Names,
        connectors: dict[str, GuardedConnector],
        signer: Signer,
        outbound: Outbound,
        hint: Callable[[str], Awaitable[None]] = _no_hint,
    ) -> None:
        self._db = db
        self._names = names
        #: Says "this inquiry became final" to api processes waiting for it (gateway.amqp.hints).
        self._hint = hint
        self._connectors = connectors
        self._signer = signer
        self._outbound = outbound
        self._answers = AnswerSink(db, self._after)
        self._batchers: dict[str, Batcher] = {}

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
        if _past(request.due_at):
            return  # the deadline watcher records it as timed out; the partner's answer would not count
        if _maybe_repeat(message):
            # Handed out before (the broker's redelivery, or the outbox published it again): it may have
            # been answered meanwhile. A first delivery needs no read: its source is pending.
            async with self._db.read() as conn:
                source = await store.source_by_ref(conn, request.request_ref)
            if source is None or source.status != PENDING:
                return
        outcome = await self._call(partner_code, request)
        log.debug("lookup on %s: %s after %d attempt(s)", partner_code, outcome.status, outcome.attempts)
        if outcome.status == PENDING:
            # Taken by the partner, answered later through the api: remember its reference.
            reference = outcome.answer.reference if outcome.answer else None
            evidence = outcome.evidence
            await self._db.write(
                lambda conn: store.note_accepted_later(conn, request.request_ref, reference, evidence)
            )
            return
        await self.record(request.request_ref, answer_of(outcome), partner_code)

    async def _call(self, partner_code: str, request: LookupRequest) -> Outcome:
        """One guarded call, or a place in the next batch for a bank that takes batches (``batch_size``):
        lookups to it arriving together (a bulk lookup, many inquiries at once) leave in one call."""
        guarded = self._connectors[partner_code]
        if guarded.partner.batch_size <= 1 or guarded.partner.pulls:
            return await guarded.call(request)
        batcher = self._batchers.get(partner_code)
        if batcher is None:
            size = guarded.partner.batch_size
            batcher = self._batchers[partner_code] = Batcher(guarded.call_batch, size, BATCH_LINGER_SECONDS)
        return await batcher.call(request)

    async def close(self) -> None:
        """Send what waits for a batch (its callers are waiting for their answers)."""
        for batcher in self._batchers.values():
            await batcher.close()

    async def record(self, request_ref: str, answer: Answer, actor: str) -> None:
        """Returns once the answer is stored (or was not needed: answered already)."""
        await self._answers.record(request_ref, answer, actor)

    async def _after(self, applied: list[Applied]) -> None:
        for inquiry_id in dict.fromkeys(a.inquiry_id for a in applied if a.status in FINAL_STATUSES):
            await self._hint(inquiry_id)

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


class AnswerSink:
    """Answers recorded together. While one batch is being written, the next gathers: a batch is as large
    as what arrived meanwhile (at most ``max_batch``), so N answers arriving at once cost a handful of
    statements (``record_answers``), not a transaction's worth each. Each caller returns once its answer
    is stored — its message is acked only then — or gets the batch's error (and its message goes back)."""

    def __init__(
        self, db: Database, after: Callable[[list[Applied]], Awaitable[None]], max_batch: int = 200
    ) -> None:
        self._db = db
        self._after = after
        self._max = max_batch
        self._waiting: list[tuple[str, Answer, str, asyncio.Future[Applied | None]]] = []
        self._writer: asyncio.Task[None] | None = None

    async def record(self, request_ref: str, answer: Answer, actor: str) -> Applied | None:
        done: asyncio.Future[Applied | None] = asyncio.get_running_loop().create_future()
        self._waiting.append((request_ref, answer, actor, done))
        if self._writer is None or self._writer.done():
            self._writer = asyncio.create_task(self._write(), name="answers")
        # Shielded: a caller cancelled (a worker stopping) leaves the batch to finish for the others.
        return await asyncio.shield(done)

    async def _write(self) -> None:
        while self._waiting:
            batch, self._waiting = self._waiting[: self._max], self._waiting[self._max :]
            items = [(ref, answer, actor) for ref, answer, actor, _ in batch]
            try:
                results = await self._db.write(functools.partial(record_answers, answers=items))
            except Exception as exc:
                for *_, done in batch:
                    if not done.done():
                        done.set_exception(exc)
                continue
            for (*_, done), result in zip(batch, results, strict=True):
                if not done.done():
                    done.set_result(result)
            try:
                await self._after([r for r in results if r is not None])
            except Exception:  # a hint is only a wake-up
                log.debug("after recording answers", exc_info=True)


def _maybe_repeat(message: AbstractIncomingMessage) -> bool:
    attempt = (message.headers or {}).get("x-outbox-attempt")
    return bool(message.redelivered) or (isinstance(attempt, int) and attempt > 1)


def _past(due_at: str | None) -> bool:
    if not due_at:
        return False
    try:
        return datetime.fromisoformat(due_at) < now()
    except (ValueError, TypeError):
        return False


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
        evidence=dict(outcome.evidence) if outcome.evidence else None,
    )
