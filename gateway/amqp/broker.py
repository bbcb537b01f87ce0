"""Connections to RabbitMQ: one for publishing, one for consuming (a broker alarm blocks publishers;
consumers must keep draining). aio-pika's robust connections restore channels and consumers after a
reconnect; publishes that failed are retried by their callers, never re-sent by the library."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Sequence
from datetime import UTC, datetime
from typing import Any

import aio_pika
from aio_pika.abc import AbstractChannel, AbstractExchange, AbstractRobustConnection, DeliveryMode
from aio_pika.exceptions import CONNECTION_EXCEPTIONS
from tenacity import AsyncRetrying, retry_if_exception_type, wait_exponential_jitter
from yarl import URL

log = logging.getLogger(__name__)

CONNECT_ERRORS = (OSError, ConnectionError, asyncio.TimeoutError, aio_pika.exceptions.AMQPConnectionError)


def node_urls(urls: str | Sequence[str]) -> list[str]:
    """The broker's nodes: one URL, several separated by commas (``broker_url``), or a list."""
    listed = urls.split(",") if isinstance(urls, str) else list(urls)
    nodes = [u.strip() for u in listed if u.strip()]
    if not nodes:
        raise ValueError("no broker URL given")
    return nodes


class ClusterConnection(aio_pika.RobustConnection):
    """A robust connection that knows every node of a cluster.

    aio-pika's robust connection reconnects to the one URL it was given, so a worker whose node stopped
    would wait for that node however healthy the others are. Each connection attempt here tries the
    nodes in turn — after a drop, starting with the node after the one that was lost — and the
    robust machinery (channels, consumers, back-off between rounds) is left as it is. The hook is the
    robust connection's private per-attempt method; ``test_cluster_connection_hooks_aio_pika`` fails
    if an aio-pika upgrade renames it."""

    def __init__(self, url: URL, loop: asyncio.AbstractEventLoop | None = None, **kwargs: Any) -> None:
        nodes: list[str] = kwargs.pop("nodes", None) or [str(url)]
        super().__init__(url, loop=loop, **kwargs)
        self.nodes = [URL(n) for n in nodes]
        self._node = -1  # index of the node of the current (or last) connection; -1: never connected

    async def _RobustConnection__connect_transport(self) -> None:
        assert _connect_transport is not None  # connect() checks before building one
        start = self._node + 1 if self._node >= 0 else 0
        error: BaseException | None = None
        for step in range(len(self.nodes)):
            index = (start + step) % len(self.nodes)
            self.url = self.nodes[index]
            try:
                await _connect_transport(self)
            except CONNECTION_EXCEPTIONS as exc:
                error = exc
                log.info("broker node %s does not answer (%s)", self.nodes[index].host_port_subcomponent, exc)
                continue
            if self._node >= 0 and index != self._node:
                log.warning("broker connection moved to node %s", self.nodes[index].host_port_subcomponent)
            self._node = index
            return
        assert error is not None
        raise error


#: aio-pika's own per-attempt step (connect to ``self.url``, restore channels), called once per node.
_connect_transport: Callable[[aio_pika.RobustConnection], Awaitable[None]] | None = getattr(
    aio_pika.RobustConnection, "_RobustConnection__connect_transport", None
)


async def connect(urls: str | Sequence[str], name: str) -> AbstractRobustConnection:
    """Connect, waiting (jittered back-off, no upper bound) while the broker is unreachable: a worker
    that starts before the broker must come up when the broker does, not crash-loop.

    ``urls``: one URL, or a cluster's nodes (a list, or separated by commas). The connection goes to
    the first node that answers; when it drops, reconnecting tries the next nodes in turn. One URL
    behaves exactly as aio-pika's own robust connection."""
    nodes = node_urls(urls)
    if len(nodes) > 1 and _connect_transport is None:  # pragma: no cover - a test guards the pinned version
        raise RuntimeError("this aio-pika cannot fail over between nodes: give broker_url one node")
    async for attempt in AsyncRetrying(
        retry=retry_if_exception_type(CONNECT_ERRORS),
        wait=wait_exponential_jitter(multiplier=0.2, max=5),
        before_sleep=lambda state: log.warning("broker unreachable (%s); retrying", name),
        reraise=True,
    ):
        with attempt:
            if len(nodes) == 1:
                return await asyncio.wait_for(
                    aio_pika.connect_robust(nodes[0], client_properties={"connection_name": name}), timeout=10
                )
            # What connect_robust does, with the node list: each node gets 10 s to answer per attempt.
            cluster = ClusterConnection(
                URL(nodes[0]), nodes=nodes, client_properties={"connection_name": name}
            )
            await asyncio.wait_for(cluster.connect(timeout=10), timeout=10 * len(nodes))
            return cluster
    raise AssertionError("unreachable")


async def connect_once(
    urls: str | Sequence[str], name: str, seconds: float
) -> aio_pika.abc.AbstractConnection:
    """A plain (not robust) connection for a short task, to the first node that answers within
    ``seconds`` each; the last node's error is raised when none does."""
    error: BaseException = ValueError("no broker URL given")
    for url in node_urls(urls):
        try:
            return await asyncio.wait_for(
                aio_pika.connect(url, timeout=seconds, client_properties={"connection_name": name}),
                timeout=seconds,
            )
        except (*CONNECT_ERRORS, aio_pika.exceptions.AMQPError) as exc:
            error = exc
    raise error


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
        channel = self._channel
        if channel is not None and not channel.is_closed:
            return channel  # the common case, without the lock: a lookup to 100 banks is 100 publishes
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

    def __init__(self, url: str | Sequence[str], name: str) -> None:
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
