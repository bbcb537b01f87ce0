"""Every queue the gateway consumes, with its depth and its parking queue.

Rates and unacked counts come from the RabbitMQ management API when it answers; otherwise depths are
read over AMQP (a passive declare gives ready messages and consumers only) and ``source`` says so.
"""

from __future__ import annotations

import base64
import logging
from dataclasses import dataclass, field
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
    source: str  # "management API" | "AMQP"
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
    """Depths of every gateway queue and its parking queue: management API first, AMQP otherwise."""
    queues = gateway_queues(settings)
    managed = await _from_management(settings, queues)
    if managed is not None:
        return managed
    if connection is None:
        from gateway.amqp.broker import connect

        connection = await connect(settings.broker_url, "gateway-ops")
        async with connection:
            return await _from_amqp(settings, queues, connection)
    return await _from_amqp(settings, queues, connection)


async def passive_counts(connection: AbstractConnection, queue: str) -> tuple[int, int] | None:
    """(ready messages, consumers) of ``queue``, or None if it does not exist."""
    channel = await connection.channel()
    try:
        declared = await channel.declare_queue(queue, passive=True)
    except aio_pika.exceptions.ChannelClosed:
        return None
    result = declared.declaration_result
    await channel.close()
    return int(result.message_count or 0), int(result.consumer_count or 0)


async def _from_amqp(
    settings: Settings, queues: list[tuple[str, str]], connection: AbstractConnection
) -> QueueOverview:
    names = Names(settings.broker_namespace)
    rows = []
    for name, role in queues:
        counts = await passive_counts(connection, name)
        parked = await passive_counts(connection, names.parking(name))
        rows.append(
            QueueRow(
                name=name,
                role=role,
                exists=counts is not None,
                ready=counts[0] if counts else None,
                consumers=counts[1] if counts else None,
                parking=names.parking(name),
                parked=parked[0] if parked else None,
            )
        )
    return QueueOverview("AMQP", rows)


def _vhost(broker_url: str) -> str:
    path = urlsplit(broker_url).path
    return path[1:] if len(path) > 1 else "/"


async def _from_management(settings: Settings, queues: list[tuple[str, str]]) -> QueueOverview | None:
    ops = settings.ops
    if not ops.management_url:
        return None
    vhost = quote(_vhost(settings.broker_urls[0]), safe="")
    prefix = quote(f"{settings.broker_namespace}.", safe="")
    url = f"{ops.management_url.rstrip('/')}/api/queues/{vhost}"
    params = {
        "columns": "name,messages_ready,messages_unacknowledged,consumers,message_stats",
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
    by_name = {q["name"]: q for q in listed if isinstance(q, dict) and "name" in q}
    names = Names(settings.broker_namespace)
    rows = []
    for name, role in queues:
        q = by_name.get(name)
        p = by_name.get(names.parking(name))
        stats = (q or {}).get("message_stats") or {}
        rows.append(
            QueueRow(
                name=name,
                role=role,
                exists=q is not None,
                ready=q.get("messages_ready") if q else None,
                unacked=q.get("messages_unacknowledged") if q else None,
                consumers=q.get("consumers") if q else None,
                publish_rate=(stats.get("publish_details") or {}).get("rate"),
                deliver_rate=(stats.get("deliver_get_details") or {}).get("rate"),
                parking=names.parking(name),
                parked=p.get("messages_ready") if p else None,
            )
        )
    return QueueOverview("management API", rows)
