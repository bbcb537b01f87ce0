"""Connections to RabbitMQ: one for publishing, one for consuming (a broker alarm blocks publishers;
consumers must keep draining). aio-pika's robust connections restore channels and consumers after a
reconnect; publishes that failed are retried by their callers, never re-sent by the library."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from datetime import UTC, datetime
from typing import Any

import aio_pika
from aio_pika.abc import AbstractChannel, AbstractExchange, AbstractRobustConnection, DeliveryMode
from tenacity import AsyncRetrying, retry_if_exception_type, wait_exponential_jitter

log = logging.getLogger(__name__)

CONNECT_ERRORS = (OSError, ConnectionError, asyncio.TimeoutError, aio_pika.exceptions.AMQPConnectionError)


async def connect(url: str, name: str) -> AbstractRobustConnection:
    """Connect, waiting (jittered back-off, no upper bound) while the broker is unreachable: a worker
    that starts before the broker must come up when the broker does, not crash-loop."""
    async for attempt in AsyncRetrying(
        retry=retry_if_exception_type(CONNECT_ERRORS),
        wait=wait_exponential_jitter(multiplier=0.2, max=5),
        before_sleep=lambda state: log.warning("broker unreachable (%s); retrying", name),
        reraise=True,
    ):
        with attempt:
            return await asyncio.wait_for(
                aio_pika.connect_robust(url, client_properties={"connection_name": name}), timeout=10
            )
    raise AssertionError("unreachable")


class Publisher:
    """Publishes persistent messages with publisher confirms; unroutable messages raise."""

    def __init__(self, connection: AbstractRobustConnection, confirm_timeout: float = 15.0) -> None:
        self._connection = connection
        self._timeout = confirm_timeout
        self._channel: AbstractChannel | None = None
        self._exchanges: dict[str, AbstractExchange] = {}
        self._lock = asyncio.Lock()

    @property
    def connected(self) -> bool:
        """Whether the connection is up now (a robust connection between reconnects is not)."""
        if self._connection.is_closed:
            return False
        event = getattr(self._connection, "connected", None)
        return event.is_set() if isinstance(event, asyncio.Event) else True

    async def channel(self) -> AbstractChannel:
        async with self._lock:
            if self._channel is None or self._channel.is_closed:
                # Strong reference kept here: the connection only tracks channels weakly.
                self._channel = await self._connection.channel(publisher_confirms=True, on_return_raises=True)
                self._exchanges.clear()
            return self._channel

    async def _exchange(self, name: str) -> AbstractExchange:
        channel = await self.channel()
        if name == "":
            return channel.default_exchange
        if name not in self._exchanges:
            self._exchanges[name] = await channel.get_exchange(name, ensure=False)
        return self._exchanges[name]

    async def publish(
        self,
        exchange: str,
        routing_key: str,
        body: bytes,
        *,
        message_id: str,
        correlation_id: str | None = None,
        message_type: str | None = None,
        headers: dict[str, Any] | None = None,
        priority: int = 0,
    ) -> None:
        """Return only once the broker has confirmed the message is stored (and routed)."""
        message = aio_pika.Message(
            body,
            delivery_mode=DeliveryMode.PERSISTENT,
            message_id=message_id,
            correlation_id=correlation_id,
            content_type="application/json",
            content_encoding="utf-8",
            type=message_type,
            app_id="thads-gateway",
            headers=headers or {},
            priority=priority,
            timestamp=datetime.now(UTC),
        )
        target = await self._exchange(exchange)
        await target.publish(message, routing_key=routing_key, mandatory=True, timeout=self._timeout)


class BrokerLink:
    """A publishing connection a process can live without: connected in the background (waiting while
    the broker is down), so a process that mostly serves HTTP starts and serves whatever the broker does.
    ``publisher`` is None until the first connection."""

    def __init__(self, url: str, name: str) -> None:
        self._url = url
        self._name = name
        self._connection: AbstractRobustConnection | None = None
        self.publisher: Publisher | None = None
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._connect(), name=f"connect-{self._name}")

    async def _connect(self) -> None:
        self._connection = await connect(self._url, self._name)
        self.publisher = Publisher(self._connection)

    async def connection(self) -> AbstractRobustConnection:
        """The connection, once made (waits for the background attempt)."""
        assert self._task is not None, "start() first"
        await asyncio.shield(self._task)
        assert self._connection is not None
        return self._connection

    async def close(self, patience: float = 5.0) -> None:
        """Close the connection. A connection attempt under way is let finish first (``patience``):
        cancelled inside aio-pika's handshake it can leave the robust connection's own tasks running,
        which then hold the event loop open; cancelled while waiting between attempts it cannot."""
        if self._task is not None and not self._task.done():
            await asyncio.wait({self._task}, timeout=patience)
            if not self._task.done():
                self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._task
        if self._connection is not None:
            await self._connection.close()
