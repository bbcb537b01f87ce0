"""Who is waiting for which inquiry in this process (``Prefer: wait``), and waking them when it changed.

An inquiry's answers are recorded by workers (other processes) and by this process (late answers). Each
recording process says so: here by :meth:`InquiryWatch.changed`, from elsewhere by a hint over the broker
(``gateway.amqp.hints``) that calls it. A waiter then reads the inquiry once. A hint is only a wake-up —
the database stays the truth — so a lost one costs a waiter its slow safety re-read, never an answer.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from contextlib import contextmanager


class InquiryWatch:
    def __init__(self) -> None:
        self._waiting: dict[str, set[asyncio.Event]] = {}

    @contextmanager
    def watching(self, inquiry_id: str) -> Iterator[asyncio.Event]:
        """An event set when ``inquiry_id`` changes, for as long as the block runs. Clear it before
        each read, so a change during the read is not missed."""
        event = asyncio.Event()
        self._waiting.setdefault(inquiry_id, set()).add(event)
        try:
            yield event
        finally:
            waiters = self._waiting.get(inquiry_id)
            if waiters is not None:
                waiters.discard(event)
                if not waiters:
                    del self._waiting[inquiry_id]

    def changed(self, inquiry_id: str) -> None:
        for event in self._waiting.get(inquiry_id, ()):
            event.set()

    def watched(self) -> int:
        """Inquiries someone in this process waits for."""
        return len(self._waiting)
