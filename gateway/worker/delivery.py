"""Delivery to recipients: consume the recipient's internal queue, pass each document on exactly once
in effect (to the recipient's own AMQP queue, or its webhook), record it, then ack.

Order of effects per message: check "already delivered?" -> forward -> record -> ack. A crash between
forward and record can repeat the forward on redelivery (same message_id, counted); everything else
that repeats is suppressed by the status check.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import aiohttp
from aio_pika.abc import AbstractIncomingMessage
from prometheus_client import Counter

from gateway.amqp.broker import Publisher
from gateway.amqp.names import Names
from gateway.amqp.settle import settle
from gateway.domain.status import Status, is_delivered
from gateway.security.clients import Client
from gateway.security.signing import Signer
from gateway.settings import DeliverySettings
from gateway.storage import messages as store
from gateway.storage.database import Database
from gateway.worker import webhook

log = logging.getLogger(__name__)

DELIVERED = Counter(
    "gateway_deliveries_total", "Documents handed to their recipient", ["recipient", "channel"]
)
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
    ) -> None:
        self._db = db
        self._publisher = publisher
        self._names = names
        self._signer = signer
        self._http = http
        self._settings = settings
        self.actor = "gateway.delivery"

    async def handle(self, client: Client, message: AbstractIncomingMessage) -> None:
        """Consumer callback for ``names.deliver(client.id)``."""
        try:
            await self._handle(client, message)
        except asyncio.CancelledError:
            raise
        except Exception:
            # Storage or broker trouble: leave the message to the broker (redelivered; the delivery limit
            # parks it if this never clears).
            log.exception("delivery of %s to %s failed; requeueing", message.message_id, client.id)
            await asyncio.sleep(1)
            await settle(message.nack(requeue=True))

    async def _handle(self, client: Client, message: AbstractIncomingMessage) -> None:
        message_id = message.message_id or ""
        async with self._db.read() as conn:
            row = await store.get(conn, message_id) if message_id else None
        if row is None:
            log.error("unknown message %r on %s: parking it", message_id, client.id)
            await settle(message.reject(requeue=False))
            return
        if is_delivered(Status(row.status)):
            SUPPRESSED.labels(client.id).inc()
            async with self._db.transaction() as conn:
                await store.add_evidence(conn, message_id, "duplicate_suppressed", self.actor)
            await settle(message.ack())
            return

        attempt = _attempt(message)
        repeat = bool(message.redelivered) or attempt > 1
        if repeat:
            # A previous holder of this delivery died before acking, or a previous attempt failed in a
            # way that does not prove the recipient got nothing: the forward may have happened already.
            # Count it; the copy carries the same message_id and says it may be a repeat.
            REDELIVERED.labels(client.id).inc()
            async with self._db.transaction() as conn:
                detail = {"attempt": attempt, "broker_redelivery": bool(message.redelivered)}
                await store.add_evidence(conn, message_id, "redelivered", self.actor, detail)
        try:
            channel = await self._forward(client, message, attempt, repeat)
        except (webhook.WebhookFailed, ConnectionError, TimeoutError, OSError) as exc:
            await self._retry_or_park(client, message, attempt, str(exc))
            return

        async with self._db.transaction() as conn:
            await store.transition(
                conn, message_id, Status.DELIVERED, self.actor, {"channel": channel, "attempt": attempt}
            )
            await store.count_delivery(conn, message_id)
        DELIVERED.labels(client.id, channel).inc()
        await settle(message.ack())

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

    async def _retry_or_park(
        self, client: Client, message: AbstractIncomingMessage, attempt: int, reason: str
    ) -> None:
        message_id = message.message_id or ""
        if attempt >= self._settings.max_attempts:
            async with self._db.transaction() as conn:
                await store.transition(
                    conn,
                    message_id,
                    Status.FAILED,
                    self.actor,
                    {"attempts": attempt, "error": reason},
                    reason=f"not acknowledged after {attempt} attempts: {reason}",
                )
            PARKED.labels(client.id).inc()
            await settle(message.reject(requeue=False))  # dead-letter -> parking queue
            return
        delay = retry_delay_ms(self._settings.retry_delays_seconds, attempt)
        async with self._db.transaction() as conn:
            await store.add_evidence(
                conn,
                message_id,
                "delivery_failed",
                self.actor,
                {"attempt": attempt, "error": reason, "retry_in_ms": delay},
            )
        await self._publisher.publish(
            "",
            self._names.retry(client.id, delay),
            message.body,
            message_id=message_id,
            correlation_id=message.correlation_id,
            message_type=message.type,
            headers={**(message.headers or {}), ATTEMPT_HEADER: attempt + 1},
        )
        RETRIED.labels(client.id).inc()
        await settle(message.ack())


def _attempt(message: AbstractIncomingMessage) -> int:
    value = (message.headers or {}).get(ATTEMPT_HEADER, 1)
    return value if isinstance(value, int) and value > 0 else 1
