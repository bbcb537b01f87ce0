"""Status events in the worker: the event relay and the webhook dispatcher.

The relay publishes the event outbox to ``<ns>.events`` in the order the events were written, one
relay at a time (the claim's lease), each with a broker confirm; an event nobody is bound for is
dropped by the broker (published without ``mandatory``), which is what a topic with no subscriber means.
An event may be published twice (a relay dies between the confirm and the delete): subscribers
de-duplicate on ``event_id`` (the AMQP ``message_id``).

The dispatcher consumes the queue of every webhook subscription (one event at a time per subscription,
so each receiver gets its events in order), POSTs each event signed like document webhooks, retries with
back-off, and lets the queue's delivery limit park what never got through. It calls only where the
outbound policy allows (``gateway/security/outbound.py``), checked again before every attempt.

The dispatcher never declares a subscription's queue: the api declares it on subscribing and deletes it
on unsubscribing. It attaches to the queue passively and consumes it without aio-pika's robust recovery
(which re-declares a queue, re-binds it and consumes again when the broker cancels the consumer, as it
does when the queue is deleted: an ended subscription came back and kept receiving). After a broker
cancel or a reconnection its rescan notices the consumer is gone and attaches again, to a queue that
still exists only.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import socket
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import aio_pika
import aiormq
from aio_pika.abc import AbstractChannel, AbstractExchange, AbstractIncomingMessage, AbstractRobustConnection
from prometheus_client import Counter
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncConnection

from gateway.amqp.consume import Abandon, Park, callback
from gateway.amqp.names import Names
from gateway.domain import events as domain
from gateway.security.outbound import Outbound, OutboundRefused
from gateway.security.signing import Signer
from gateway.settings import Settings
from gateway.storage import events as store
from gateway.storage.database import Database
from gateway.storage.tables import event_subscriptions
from gateway.worker import webhook

log = logging.getLogger(__name__)

PUBLISHED = Counter("gateway_events_published_total", "Status events published with a broker confirm")
WEBHOOKS = Counter("gateway_event_webhooks_total", "Status-event webhook calls", ["outcome"])
BATCH = 200
LEASE_SECONDS = 30.0
#: Longest wait between two attempts of one event's webhook. The consumer holds the event meanwhile, so
#: ``delivery_limit`` attempts must stay within the broker's consumer timeout (30 minutes by default).
MAX_RETRY_DELAY_SECONDS = 60.0
RESCAN_SECONDS = 2.0
#: How often the event relay looks for events: a read when there are none.
POLL_SECONDS = 0.2


class EventRelay:
    def __init__(
        self, db: Database, connection: AbstractRobustConnection, names: Names, poll_seconds: float
    ) -> None:
        self._db = db
        self._connection = connection
        self._names = names
        self._poll = poll_seconds
        self._owner = f"{socket.gethostname()}:{os.getpid()}:events"
        self._channel: AbstractChannel | None = None
        self._exchange: AbstractExchange | None = None

    async def run(self) -> None:
        backoff = self._poll
        while True:
            try:
                moved = await self.run_once()
                backoff = self._poll
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("event relay pass failed; retrying")
                self._channel = self._exchange = None
                moved = 0
                backoff = min(backoff * 2, 5.0)
            if moved == 0:
                await asyncio.sleep(backoff)

    async def _target(self) -> AbstractExchange:
        if self._channel is None or self._channel.is_closed or self._exchange is None:
            self._channel = await self._connection.channel(publisher_confirms=True)
            self._exchange = await self._channel.get_exchange(self._names.events, ensure=False)
        return self._exchange

    async def run_once(self) -> int:
        """One batch, published in order; returns the events published."""
        async with self._db.read() as conn:
            if not await store.waiting(conn):
                return 0
        batch = await self._db.write(lambda conn: store.claim(conn, self._owner, BATCH, LEASE_SECONDS))
        if not batch:
            return 0
        done: list[int] = []
        try:
            exchange = await self._target()
            for event in batch:
                await exchange.publish(_amqp_message(event), routing_key=event.routing_key, timeout=15)
                done.append(event.id)
        finally:

            async def record(conn: AsyncConnection) -> None:
                await store.complete(conn, done)
                await store.release(conn, [e.id for e in batch if e.id not in set(done)], self._owner)

            await self._db.write(record)
            PUBLISHED.inc(len(done))
        return len(done)


def _amqp_message(event: store.PendingEvent) -> aio_pika.Message:
    body = json.loads(event.body)
    return aio_pika.Message(
        event.body.encode("utf-8"),
        delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
        message_id=event.event_id,
        correlation_id=event.message_id,
        content_type="application/json",
        content_encoding="utf-8",
        type=domain.WEBHOOK_TYPE,
        app_id="thads-gateway",
        timestamp=datetime.now(UTC),
        headers={
            "message_id": event.message_id,
            "message_type": body["message_type"],
            "sender": body["sender"],
            "recipient": body["recipient"],
            "status": body["status"],
            "previous_status": body["previous_status"] or "",
        },
    )


@dataclass(frozen=True, slots=True)
class _Hook:
    subscription_id: str
    client_id: str
    url: str
    message_types: tuple[str, ...]


class WebhookDispatcher:
    """Consumes every active webhook subscription's queue; notices new and ended ones by rescanning."""

    def __init__(
        self,
        db: Database,
        connection: AbstractRobustConnection,
        names: Names,
        signer: Signer,
        outbound: Outbound,
        settings: Settings,
    ) -> None:
        self._db = db
        self._connection = connection
        self._names = names
        self._signer = signer
        self._outbound = outbound
        self._settings = settings
        self._consuming: dict[str, _Consumer] = {}

    async def run(self) -> None:
        try:
            while True:
                try:
                    await self.scan()
                except asyncio.CancelledError:
                    raise
                except Exception:
                    log.exception("webhook subscription scan failed; retrying")
                await asyncio.sleep(RESCAN_SECONDS)
        finally:
            for consumer in self._consuming.values():
                await consumer.close()

    async def _active(self) -> dict[str, _Hook]:
        async with self._db.read() as conn:
            rows = await conn.execute(
                select(event_subscriptions).where(
                    event_subscriptions.c.kind == "webhook", event_subscriptions.c.revoked_at.is_(None)
                )
            )
            return {
                r.subscription_id: _Hook(
                    r.subscription_id,
                    r.client_id,
                    r.target,
                    tuple(json.loads(r.message_types)) if r.message_types else (),
                )
                for r in rows
            }

    async def scan(self) -> None:
        """Stop consuming ended subscriptions and ones whose consumer the broker cancelled (or a
        reconnection dropped); consume every active one whose queue exists."""
        active = await self._active()
        for subscription_id, consumer in list(self._consuming.items()):
            if subscription_id not in active or not await consumer.alive():
                del self._consuming[subscription_id]
                await consumer.close()
        for subscription_id, hook in active.items():
            if subscription_id not in self._consuming:
                await self._consume(hook)

    async def _consume(self, hook: _Hook) -> None:
        name = self._names.event_subscription(hook.client_id, hook.subscription_id)
        channel = await self._connection.channel()
        try:
            await channel.set_qos(prefetch_count=1)  # one event at a time: the receiver sees them in order
            consumer = _Consumer(channel, await channel.get_underlay_channel())
            consumer.underlay.on_consumer_cancel_callbacks.add(consumer.on_cancel)
            # Passive and not robust: never (re)creates the queue, and aio-pika does not restore it.
            queue = await channel.declare_queue(name, passive=True, robust=False)

            async def on_event(message: AbstractIncomingMessage) -> None:
                await self._deliver(hook, message, consumer)

            on_message = callback(on_event, queue=name, client=hook.client_id)
            consumer.tag = await queue.consume(on_message, robust=False)
        except aio_pika.exceptions.ChannelNotFoundEntity:
            # Deleted (the subscription is ending) or lost: not re-created here; an operator's to see.
            log.warning("queue %s of subscription %s does not exist", name, hook.subscription_id)
            with contextlib.suppress(Exception):
                await channel.close()
            return
        except BaseException:
            with contextlib.suppress(Exception):
                await channel.close()
            raise
        self._consuming[hook.subscription_id] = consumer
        log.info("status events of %s to %s", hook.client_id, hook.url)

    async def _deliver(self, hook: _Hook, message: AbstractIncomingMessage, consumer: _Consumer) -> None:
        """Returns once the event is delivered (acked), raises ``Park`` to park it; see
        :mod:`gateway.amqp.consume`."""
        try:
            event: dict[str, Any] = json.loads(message.body)
        except ValueError as exc:
            raise Park("not a status event: unreadable JSON") from exc
        if not domain.matches(event, hook.client_id, hook.message_types):
            return  # bindings say it cannot happen; never pass it on if it does
        count = (message.headers or {}).get("x-delivery-count")
        attempt = (count if isinstance(count, int) else 0) + 1
        limit = self._settings.delivery.delivery_limit
        delays = self._settings.delivery.retry_delays_seconds
        # Retried here, holding the event, so nothing overtakes it; a worker that dies meanwhile hands
        # it back to the broker, which counts the delivery.
        while True:
            if not await consumer.alive():
                # Unsubscribed (queue deleted) or the channel went: the broker keeps the event.
                raise Abandon("the subscription's consumer is gone")
            try:
                await self._outbound.check(hook.url, hook.client_id)
            except OutboundRefused as exc:
                WEBHOOKS.labels("refused").inc()
                raise Park(
                    f"status event webhook of {hook.client_id} refused by the outbound policy ({exc})"
                ) from exc
            try:
                await webhook.post(
                    self._outbound.session,
                    self._signer,
                    hook.url,
                    message.body,
                    str(event["event_id"]),
                    domain.WEBHOOK_TYPE,
                    attempt,
                    attempt > 1,
                    self._settings.delivery.webhook_timeout_seconds,
                )
            except webhook.WebhookFailed as exc:
                WEBHOOKS.labels("failed").inc()
                if attempt >= limit:
                    raise Park(
                        f"status event webhook of {hook.client_id} failed {attempt} times ({exc})"
                    ) from exc
                delay = min(delays[min(attempt, len(delays)) - 1], MAX_RETRY_DELAY_SECONDS)
                log.warning(
                    "status event webhook of %s failed (%s); again in %ss", hook.client_id, exc, delay
                )
                await asyncio.sleep(delay)
                attempt += 1
                continue
            WEBHOOKS.labels("delivered").inc()
            return


def start(
    db: Database,
    publish_connection: AbstractRobustConnection,
    consume_connection: AbstractRobustConnection,
    names: Names,
    signer: Signer,
    outbound: Outbound,
    settings: Settings,
) -> list[asyncio.Task[None]]:
    """The relay and the dispatcher, as tasks of the worker (once ``<ns>.events`` is declared)."""
    relay = EventRelay(db, publish_connection, names, POLL_SECONDS)
    dispatcher = WebhookDispatcher(db, consume_connection, names, signer, outbound, settings)
    return [
        asyncio.create_task(relay.run(), name="event-relay"),
        asyncio.create_task(dispatcher.run(), name="event-webhooks"),
    ]


@dataclass(slots=True)
class _Consumer:
    """One subscription's consumer: alive until the broker cancels it (its queue was deleted), its
    channel closes, or the channel is reopened after a reconnection (which brings no consumer back)."""

    channel: AbstractChannel
    underlay: aiormq.abc.AbstractChannel
    tag: str = ""
    cancelled: bool = False

    def on_cancel(self, frame: aiormq.spec.Basic.Cancel) -> None:
        if frame.consumer_tag == self.tag:
            self.cancelled = True

    async def alive(self) -> bool:
        if self.cancelled or self.channel.is_closed:
            return False
        try:
            return await self.channel.get_underlay_channel() is self.underlay
        except (RuntimeError, aio_pika.exceptions.AMQPError):
            return False

    async def close(self) -> None:
        with contextlib.suppress(Exception):
            await self.channel.close()
