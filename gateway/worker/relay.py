"""The outbox relay: moves accepted messages from the database to the broker.

Nothing is lost: a row leaves the outbox only after the broker confirmed its message. Something may be
published twice (the relay dies between the confirm and the delete): consumers de-duplicate on
``message_id``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import time
from datetime import datetime

from prometheus_client import Counter, Gauge
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncConnection

from gateway.amqp.broker import Publisher
from gateway.amqp.names import Names
from gateway.settings import RelaySettings
from gateway.storage import outbox
from gateway.storage.database import Database
from gateway.storage.outbox import Pending
from gateway.storage.tables import outbox as outbox_table
from gateway.storage.timestamps import as_utc, now

log = logging.getLogger(__name__)

PUBLISHED = Counter("gateway_outbox_published_total", "Outbox rows published with a broker confirm")
REPUBLISHED = Counter(
    "gateway_outbox_republished_total",
    "Outbox rows published again after an earlier attempt (possible duplicate)",
)
FAILED = Counter("gateway_outbox_publish_failures_total", "Publish attempts that failed (will be retried)")
BACKLOG = Gauge("gateway_outbox_backlog", "Rows waiting in the outbox")
OLDEST_AGE = Gauge(
    "gateway_outbox_oldest_age_seconds", "Age of the oldest row waiting in the outbox (0 when it is empty)"
)
#: While the relay is busy, backlog and lag are still measured this often.
REPORT_SECONDS = 2.0


class Relay:
    def __init__(self, db: Database, publisher: Publisher, names: Names, settings: RelaySettings) -> None:
        self._db = db
        self._publisher = publisher
        self._names = names
        self._settings = settings
        self._owner = f"{socket.gethostname()}:{os.getpid()}"
        self._in_flight = asyncio.Semaphore(settings.max_in_flight)
        self._wake = asyncio.Event()
        self._reported = 0.0

    def wake(self) -> None:
        self._wake.set()

    async def run(self) -> None:
        """Forever: drain the outbox; when empty, or the broker fails, wait a little."""
        backoff = self._settings.poll_interval_seconds
        while True:
            try:
                moved = await self.run_once()
                backoff = self._settings.poll_interval_seconds
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("relay pass failed; retrying")
                moved = 0
                backoff = min(backoff * 2, 5.0)
            if moved == 0 or time.monotonic() - self._reported >= REPORT_SECONDS:
                await self._report_backlog()
            if moved == 0:
                self._wake.clear()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), timeout=backoff)

    async def run_once(self) -> int:
        """One batch: claim, publish concurrently (bounded), record. Returns rows published."""
        batch = await self._db.write(
            lambda conn: outbox.claim(
                conn, self._owner, self._settings.batch_size, self._settings.lease_seconds
            )
        )
        if not batch:
            return 0
        results = await asyncio.gather(*(self._publish(item) for item in batch))
        done = [(item, at) for item, at in zip(batch, results, strict=True) if at is not None]
        failed = [item.id for item, at in zip(batch, results, strict=True) if at is None]

        async def record(conn: AsyncConnection) -> None:
            await outbox.complete(conn, done, "gateway.relay")
            await outbox.release(conn, failed, self._owner)

        await self._db.write(record)
        PUBLISHED.inc(len(done))
        if failed:
            FAILED.inc(len(failed))
            raise ConnectionError(f"{len(failed)} of {len(batch)} publishes failed")
        return len(done)

    async def _report_backlog(self) -> None:
        self._reported = time.monotonic()
        try:
            async with self._db.read() as conn:
                BACKLOG.set(await outbox.backlog(conn))
                oldest = (await conn.execute(select(func.min(outbox_table.c.created_at)))).scalar()
            OLDEST_AGE.set(max(0.0, (now() - as_utc(oldest)).total_seconds()) if oldest else 0.0)
        except Exception:  # metrics must never stop the relay
            log.debug("backlog query failed", exc_info=True)

    async def _publish(self, item: Pending) -> datetime | None:
        exchange = self._names.exchange(item.exchange)
        async with self._in_flight:
            try:
                await self._publisher.publish(
                    exchange,
                    item.routing_key,
                    item.body.encode("utf-8"),
                    message_id=item.message_id,
                    correlation_id=str(item.headers.get("correlation_id") or item.message_id),
                    message_type=str(item.headers.get("message_type") or ""),
                    headers={**item.headers, "x-outbox-attempt": item.attempts},
                    priority=item.priority,
                )
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.warning("publish of %s failed: %s", item.message_id, exc)
                return None
        if item.attempts > 1:
            REPUBLISHED.inc()
        return now()
