"""Every queue the gateway consumes, with its depth and its parking queue.

Ready messages and consumers are always read over AMQP (a passive declare): they are exact at the
moment of the look, which is what an operator acts on and what a test can rely on. The management API,
when it answers, adds what AMQP cannot tell (unacked counts and rates); its own counts lag by its
statistics interval (5 s by default) and a queue declared since its last sample is missing from it, so
they are never used for depth. ``source`` says whether the management API contributed.
"""

from __future__ import annotations

import base64
import logging
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote, urlsplit

import aio_pika
import aiohttp
from aio_pika.abc import AbstractConnection

from gateway.amqp.names import Names
from gateway.domain.registry import partner_kinds_receiving_documents
from gateway.partners import load_partners
from gateway.security.clients import ClientStore
from gateway.settings import Settings

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class QueueRow:
    name: str
    role: str  # delivery | client | partner (its work queue) | urgent-delivery | callbacks
    exists: bool
    ready: int | None = None
    unacked: int | None = None
    consumers: int | None = None
    publish_rate: float | None = None  # messages/s in, management API only
    deliver_rate: float | None = None  # messages/s out, management API only
    parking: str = ""
    parked: int | None = None

    @property
    def depth(self) -> int | None:
        if self.ready is None:
            return None
        return self.ready + (self.unacked or 0)


@dataclass(frozen=True, slots=True)
class QueueOverview:
    source: str  # "AMQP" or "AMQP + management API" (who contributed the readings)
    rows: list[QueueRow] = field(default_factory=list)

    @property
    def parked_total(self) -> int:
        return sum(r.parked or 0 for r in self.rows)


def gateway_queues(settings: Settings) -> list[tuple[str, str]]:
    """(queue, role) for every queue the gateway's workers consume, each of which has a parking queue."""
    names = Names(settings.broker_namespace)
    clients = ClientStore(settings.clients_dir, recheck_seconds=0).all()
    queues: list[tuple[str, str]] = [(names.deliver(c.id), "delivery") for c in clients if c.deliver_to]
    queues += [
        (str(c.deliver_to.target), "client") for c in clients if c.deliver_to and c.deliver_to.kind == "amqp"
    ]
    partners = load_partners(settings.config_dir)
    kinds = partner_kinds_receiving_documents()
    # A partner's work queue holds its lookup requests and, where it takes documents, its documents.
    working = [p for p in partners if p.is_lookup_source or p.kind in kinds]
    queues += [(names.deliver(p.code), "partner") for p in working]
    queues += [(names.deliver_urgent(c.id), "urgent-delivery") for c in clients if c.deliver_to]
    queues += [(names.deliver_urgent(p.code), "urgent-delivery") for p in working]
    queues += [(names.callbacks_queue, "callbacks")]
    seen: set[str] = set()
    unique = []
    for name, role in queues:
        if name not in seen:
            seen.add(name)
            unique.append((name, role))
    return unique


async def overview(settings: Settings, connection: AbstractConnection | None = None) -> QueueOverview:
    """Depths of every gateway queue and its parking queue over AMQP, with the management API's rates."""
    queues = gateway_queues(settings)
    managed = await _from_management(settings, queues)
    if connection is None:
        from gateway.amqp.broker import connect

        connection = await connect(settings.broker_url, "gateway-ops")
        async with connection:
            return await _from_amqp(settings, queues, connection, managed)
    return await _from_amqp(settings, queues, connection, managed)


class _Passive:
    """Passive declares on one channel, opened again only after a missing queue closed it."""

    def __init__(self, connection: AbstractConnection) -> None:
        self._connection = connection
        self._channel: aio_pika.abc.AbstractChannel | None = None

    async def counts(self, queue: str) -> tuple[int, int] | None:
        if self._channel is None or self._channel.is_closed:
            self._channel = await self._connection.channel()
        try:
            declared = await self._channel.declare_queue(queue, passive=True)
        except aio_pika.exceptions.ChannelClosed:
            self._channel = None
            return None
        result = declared.declaration_result
        return int(result.message_count or 0), int(result.consumer_count or 0)

    async def close(self) -> None:
        if self._channel is not None and not self._channel.is_closed:
            await self._channel.close()


async def passive_counts(connection: AbstractConnection, queue: str) -> tuple[int, int] | None:
    """(ready messages, consumers) of ``queue``, or None if it does not exist."""
    passive = _Passive(connection)
    try:
        return await passive.counts(queue)
    finally:
        await passive.close()


async def _from_amqp(
    settings: Settings,
    queues: list[tuple[str, str]],
    connection: AbstractConnection,
    managed: dict[str, dict[str, Any]] | None = None,
) -> QueueOverview:
    names = Names(settings.broker_namespace)
    rows = []
    passive = _Passive(connection)
    try:
        for name, role in queues:
            counts = await passive.counts(name)
            parked = await passive.counts(names.parking(name))
            m = (managed or {}).get(name) or {}
            stats = m.get("message_stats") or {}
            rows.append(
                QueueRow(
                    name=name,
                    role=role,
                    exists=counts is not None,
                    ready=counts[0] if counts else None,
                    unacked=m.get("messages_unacknowledged") if counts else None,
                    consumers=counts[1] if counts else None,
                    publish_rate=(stats.get("publish_details") or {}).get("rate"),
                    deliver_rate=(stats.get("deliver_get_details") or {}).get("rate"),
                    parking=names.parking(name),
                    parked=parked[0] if parked else None,
                )
            )
    finally:
        await passive.close()
    return QueueOverview("AMQP + management API" if managed is not None else "AMQP", rows)


def _vhost(broker_url: str) -> str:
    path = urlsplit(broker_url).path
    return path[1:] if len(path) > 1 else "/"


async def _from_management(
    settings: Settings, queues: list[tuple[str, str]]
) -> dict[str, dict[str, Any]] | None:
    """The management API's view of the gateway's queues by name (unacked counts, rates), or None."""
    ops = settings.ops
    if not ops.management_url:
        return None
    vhost = quote(_vhost(settings.broker_urls[0]), safe="")
    prefix = quote(f"{settings.broker_namespace}.", safe="")
    url = f"{ops.management_url.rstrip('/')}/api/queues/{vhost}"
    params = {
        "columns": "name,messages_unacknowledged,message_stats",
        "name": f"^{prefix}",
        "use_regex": "true",
    }
    # aiohttp.BasicAuth is deprecated; the header is simple enough to build here.
    credentials = base64.b64encode(f"{ops.management_user}:{ops.management_password}".encode()).decode()
    headers = {"Authorization": f"Basic {credentials}"}
    try:
        async with (
            aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=3)) as session,
            session.get(url, params=params, headers=headers) as resp,
        ):
            if resp.status != 200:
                return None
            listed = await resp.json()
    except (TimeoutError, aiohttp.ClientError, ValueError):
        return None
    if not isinstance(listed, list):
        return None
    return {q["name"]: q for q in listed if isinstance(q, dict) and "name" in q}
