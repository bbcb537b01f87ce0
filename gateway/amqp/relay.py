"""The outbox relay: moves what a transaction accepted from the database to the broker.

Pushed, not polled. Every process that writes outbox rows (the api: documents, lookups; the worker:
documents it issues, answers) holds its rows from the insert (:meth:`Relay.claim`) and hands them over
after the commit (:meth:`Relay.hand_over`): they are published at once from memory, with no claim
transaction and no read. Nothing else wakes a relay across processes because nothing needs to: each
process relays its own commits. The fallback pass (every ``poll_interval_seconds``, a read when idle)
takes what no live writer holds: rows whose writer died before publishing (its lease ran out), rows
released after a failed publish, rows written by a process without a broker connection.

One hop. Where a document's recipient reads its own queue, the publish with a confirm *is* the delivery
(``Route.delivers``): recorded as ``delivered`` in the transaction that deletes the row. Otherwise the
document goes to the recipient's delivery queue, where a worker calls the partner or webhook (``queued``).

Nothing is lost: a row leaves the outbox only after the broker confirmed its message. Something may be
published twice (the process dies between the confirm and the delete): the copy carries the same
``message_id`` and ``redelivered: true``; consumers de-duplicate on ``message_id``.
"""

from __future__ import annotations

import asyncio
import collections
import enum
import logging
import os
import socket
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Protocol

from aio_pika.exceptions import DeliveryError
from prometheus_client import Counter, Gauge
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncConnection

from gateway.amqp.broker import Publisher
from gateway.settings import RelaySettings
from gateway.storage import outbox
from gateway.storage.database import Database
from gateway.storage.outbox import Claim, Pending
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
#: Batches of handed-over rows published and recorded at once by one process.
MAX_BATCHES = 4
#: Headers of the gateway's own bookkeeping, not passed to a recipient's own queue.
_INTERNAL = "x-"


@dataclass(frozen=True, slots=True)
class Route:
    """Where one row is published. ``delivers``: the exchange/queue is the recipient's own (the default
    exchange and its queue's name), so the confirmed publish is the delivery."""

    exchange: str
    routing_key: str
    delivers: bool = False


@dataclass(frozen=True, slots=True)
class Published:
    item: Pending
    route: Route
    at: datetime


class _Failure(enum.Enum):
    NOT_SENT = "not sent"
    UNCERTAIN = "uncertain"


NOT_SENT, UNCERTAIN = _Failure.NOT_SENT, _Failure.UNCERTAIN


class Router(Protocol):
    async def route(self, item: Pending) -> Route: ...


class Recorder(Protocol):
    """What publishing means to the rest of the gateway (the service layer says it): written in the
    transaction that deletes the rows; ``after`` runs once it committed."""

    async def record(
        self, conn: AsyncConnection, published: Sequence[Published], withheld: Sequence[Pending]
    ) -> Any: ...

    async def after(self, recorded: Any) -> None: ...


class Relay:
    def __init__(
        self,
        db: Database,
        publisher: Callable[[], Publisher | None],
        router: Router,
        recorder: Recorder,
        settings: RelaySettings,
        withhold: Callable[[Pending], bool] = lambda item: False,
    ) -> None:
        """``publisher`` gives the current publisher, or None while there is no broker connection (rows
        are then not held by this process: another relay takes them). ``withhold``: a claimed row that
        must not be published (a document revoked while it waited), deleted with the others."""
        self._db = db
        self._publisher = publisher
        self._router = router
        self._recorder = recorder
        self._settings = settings
        self._withhold = withhold
        self.owner = f"{socket.gethostname()}:{os.getpid()}:{id(self):x}"[:64]
        self._in_flight = asyncio.Semaphore(settings.max_in_flight)
        self._tasks: set[asyncio.Task[None]] = set()
        self._reported = 0.0
        # Handed-over rows wait here while MAX_BATCHES batches are being published and recorded: under
        # load the next batch is then as large as what arrived meanwhile (one completion transaction for
        # many documents); at a light load each row leaves alone, at once.
        self._handed: collections.deque[Pending] = collections.deque()
        self._batches = asyncio.Semaphore(MAX_BATCHES)
        self._drainer: asyncio.Task[None] | None = None

    # -- the writers' side -------------------------------------------------------------------------

    def claim(self) -> Claim | None:
        """The claim a writer puts on the rows it inserts, or None when this process cannot publish them
        now (no broker connection): then the fallback pass of any relay takes them."""
        publisher = self._publisher()
        if publisher is None or not publisher.connected:
            return None
        return Claim(self.owner, now() + timedelta(seconds=self._settings.lease_seconds))

    def hand_over(self, items: Sequence[Pending]) -> None:
        """Rows this process holds and has committed: published now, in the background. A row inserted
        without this relay's claim (no broker connection at the time) is not: the fallback pass of
        whichever relay claims it publishes it, and publishing it here too would send it twice."""
        items = [item for item in items if item.owner == self.owner]
        if items:
            self._handed.extend(items)
            if self._drainer is None or self._drainer.done():
                self._drainer = asyncio.create_task(self._drain(), name="relay-hand-over")

    def pending_hand_overs(self) -> int:
        """Rows handed over and not yet published or given back."""
        return len(self._handed) + sum(not t.done() for t in self._tasks)

    async def _drain(self) -> None:
        while self._handed:
            await self._batches.acquire()
            size = min(len(self._handed), self._settings.batch_size)
            batch = [self._handed.popleft() for _ in range(size)]
            self._spawn(self._dispatch(batch), self._batches.release)

    # -- the fallback pass -------------------------------------------------------------------------

    async def run(self) -> None:
        """Forever: take what no live writer holds; when nothing is, wait ``poll_interval_seconds``."""
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
                await asyncio.sleep(backoff)

    async def run_once(self) -> int:
        """One batch: claim, publish (bounded), record. Returns rows published."""
        if self._publisher() is None:
            return 0
        async with self._db.read() as conn:
            if not await outbox.claimable(conn):
                return 0
        s = self._settings
        batch = await self._db.write(
            lambda conn: outbox.claim(conn, self.owner, s.batch_size, s.lease_seconds)
        )
        return await self._dispatch(batch) if batch else 0

    async def close(self) -> None:
        """Wait for hand-overs in progress (a row not published stays held until its lease ends)."""
        if self._drainer is not None and not self._drainer.done():
            await asyncio.wait({self._drainer}, timeout=5)
        if self._tasks:
            await asyncio.wait(list(self._tasks), timeout=5)

    # -- publishing --------------------------------------------------------------------------------

    def _spawn(self, work: Awaitable[int], done: Callable[[], None] = lambda: None) -> None:
        async def run() -> None:
            try:
                await work
            except asyncio.CancelledError:
                raise
            except ConnectionError as exc:  # each failed publish was logged; the rows were released
                log.info("hand-over incomplete (%s): the fallback pass takes the rest", exc)
            except Exception:
                log.exception("relay hand-over failed; its rows wait for the fallback pass")
            finally:
                done()

        task = asyncio.create_task(run())
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _dispatch(self, batch: list[Pending]) -> int:
        withheld = [item for item in batch if self._withhold(item)]
        sending = [item for item in batch if not self._withhold(item)]
        results = await asyncio.gather(*(self._publish(item) for item in sending))
        done = [r for r in results if isinstance(r, Published)]
        failed = [item.id for item, r in zip(sending, results, strict=True) if not isinstance(r, Published)]
        unsent = [item.id for item, r in zip(sending, results, strict=True) if r is NOT_SENT]

        async def record(conn: AsyncConnection) -> Any:
            await outbox.remove(conn, [p.item.id for p in done] + [w.id for w in withheld])
            await outbox.release(conn, failed, self.owner, unsent)
            return await self._recorder.record(conn, done, withheld)

        recorded = await self._db.write(record)
        await self._recorder.after(recorded)
        PUBLISHED.inc(len(done))
        if failed:
            FAILED.inc(len(failed))
            raise ConnectionError(f"{len(failed)} of {len(batch)} publishes failed")
        return len(done)

    async def _publish(self, item: Pending) -> Published | _Failure:
        """The publish of one row: :class:`Published`, or why not — :data:`NOT_SENT` where the broker
        certainly did not take it (no connection, returned unroutable, refused), :data:`UNCERTAIN` where
        it may have (no confirm came): the next publish of that row says it may be a repeat."""
        publisher = self._publisher()
        async with self._in_flight:
            try:
                if publisher is None:
                    raise ConnectionError("no broker connection")
                route = await self._router.route(item)
                headers = dict(item.headers)
                if route.delivers:
                    headers = {k: v for k, v in headers.items() if not k.startswith(_INTERNAL)}
                    if item.attempts > 1:
                        headers["redelivered"] = True
                else:
                    headers["x-outbox-attempt"] = item.attempts
                await publisher.publish(
                    route.exchange,
                    route.routing_key,
                    item.body.encode("utf-8"),
                    message_id=item.message_id,
                    correlation_id=str(item.headers.get("correlation_id") or item.message_id),
                    message_type=str(item.headers.get("message_type") or ""),
                    headers=headers,
                    priority=item.priority,
                )
            except asyncio.CancelledError:
                raise
            except DeliveryError as exc:  # returned unroutable, or refused by the queue
                log.warning("publish of %s refused: %s", item.message_id, exc)
                return NOT_SENT
            except ConnectionError as exc:
                log.warning("publish of %s not sent: %s", item.message_id, exc)
                return NOT_SENT if publisher is None else UNCERTAIN
            except Exception as exc:
                log.warning("publish of %s failed: %s", item.message_id, exc)
                return UNCERTAIN
        if item.attempts > 1:
            REPUBLISHED.inc()
        return Published(item, route, now())

    async def _report_backlog(self) -> None:
        self._reported = time.monotonic()
        try:
            async with self._db.read() as conn:
                BACKLOG.set(await outbox.backlog(conn))
                oldest = (await conn.execute(select(func.min(outbox_table.c.created_at)))).scalar()
            OLDEST_AGE.set(max(0.0, (now() - as_utc(oldest)).total_seconds()) if oldest else 0.0)
        except Exception:  # metrics must never stop the relay
            log.debug("backlog query failed", exc_info=True)
