"""Gathering lookups that arrive together into one partner call, for partners that take batches.

A consumer hands each request to :meth:`Batcher.call` and awaits its own outcome, exactly as it would
await ``GuardedConnector.call``; the batcher collects the requests arriving while it waits — up to
``max_size``, or until ``linger_seconds`` have passed since the first — and sends them as one
``call_batch``. Every caller's future is resolved: with its outcome, with an ``error`` outcome when the
batch answered fewer outcomes than it was given (never a silent drop), or with the exception
``call_batch`` raised (a fault of ours: the consume policy hands each message back for later).

Written here rather than taken from a library: what is needed is a dozen lines over asyncio futures, and
the batching libraries around (aiobatcher and the like) add threads or their own event loops.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Sequence

from gateway.connectors.base import LookupRequest
from gateway.connectors.resilience import Outcome

log = logging.getLogger(__name__)

CallBatch = Callable[[Sequence[LookupRequest]], Awaitable[list[Outcome]]]


class Batcher:
    """Collects concurrent lookups to one partner into batches of at most ``max_size``."""

    def __init__(self, call_batch: CallBatch, max_size: int, linger_seconds: float) -> None:
        if max_size < 1:
            raise ValueError("max_size must be at least 1")
        self._call_batch = call_batch
        self._max_size = max_size
        self._linger = linger_seconds
        self._waiting: list[tuple[LookupRequest, asyncio.Future[Outcome]]] = []
        self._timer: asyncio.TimerHandle | None = None
        # Strong references: the loop keeps tasks only weakly.
        self._sending: set[asyncio.Task[None]] = set()

    async def call(self, request: LookupRequest) -> Outcome:
        """The outcome of ``request``, sent with whatever else arrives before the batch is full or the
        linger passes."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Outcome] = loop.create_future()
        self._waiting.append((request, future))
        if len(self._waiting) >= self._max_size:
            self._flush()
        elif self._timer is None:
            self._timer = loop.call_later(self._linger, self._flush)
        return await future

    def pending(self) -> int:
        """Requests waiting for their batch to leave."""
        return len(self._waiting)

    async def close(self) -> None:
        """Send what is waiting and wait for every batch under way."""
        self._flush()
        if self._sending:
            await asyncio.gather(*self._sending, return_exceptions=True)

    def _flush(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        while self._waiting:
            batch, self._waiting = self._waiting[: self._max_size], self._waiting[self._max_size :]
            # A caller cancelled while waiting (its consumer stopped) is not sent.
            batch = [(request, future) for request, future in batch if not future.done()]
            if batch:
                task = asyncio.get_running_loop().create_task(self._send(batch), name="lookup-batch")
                self._sending.add(task)
                task.add_done_callback(self._sending.discard)

    async def _send(self, batch: list[tuple[LookupRequest, asyncio.Future[Outcome]]]) -> None:
        try:
            outcomes = await self._call_batch([request for request, _ in batch])
        except asyncio.CancelledError:
            for _, future in batch:
                future.cancel()
            raise
        except Exception as exc:
            log.exception("a batch of %d lookup(s) failed unexpectedly", len(batch))
            for _, future in batch:
                if not future.done():
                    future.set_exception(exc)
            return
        missing = Outcome("error", reason="gateway fault (no outcome for this request in its batch)")
        if len(outcomes) != len(batch):
            log.error("a batch of %d lookup(s) came back with %d outcome(s)", len(batch), len(outcomes))
        for index, (_, future) in enumerate(batch):
            if not future.done():
                future.set_result(outcomes[index] if index < len(outcomes) else missing)
