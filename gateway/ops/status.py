"""One picture of the gateway for operators: queues, outbox, partners, overdue and stuck counts.

Shared by the console's overview (``/ops/``, ``/ops/api/overview``) and ``run.py status``.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import aio_pika
from aio_pika.abc import AbstractConnection, AbstractRobustConnection

from gateway.ops import backlog, partners, queues
from gateway.partners import load_partners
from gateway.settings import Settings
from gateway.storage.database import Database
from gateway.storage.timestamps import iso, now

log = logging.getLogger(__name__)

BROKER_TIMEOUT_SECONDS = 5.0
#: A broker that stops answering must not hang the overview.
READ_TIMEOUT_SECONDS = 15.0


@dataclass(frozen=True, slots=True)
class Snapshot:
    at: datetime
    queues: queues.QueueOverview | None  # None: the broker could not be reached
    broker_error: str
    outbox: backlog.OutboxState
    partners: list[partners.PartnerHealth]
    counts: dict[str, int]

    def as_json(self) -> dict[str, Any]:
        """What ``GET /ops/api/overview`` returns (the page refreshes itself from it)."""
        q = self.queues
        return {
            "at": iso(self.at),
            "source": q.source if q else "unavailable",
            "broker_error": self.broker_error,
            "queues": [
                {
                    "name": r.name,
                    "role": r.role,
                    "exists": r.exists,
                    "depth": r.depth,
                    "ready": r.ready,
                    "unacked": r.unacked,
                    "consumers": r.consumers,
                    "publish_rate": r.publish_rate,
                    "deliver_rate": r.deliver_rate,
                    "parking": r.parking,
                    "parked": r.parked,
                }
                for r in (q.rows if q else [])
            ],
            "parked_total": q.parked_total if q else None,
            "outbox": {
                "backlog": self.outbox.backlog,
                "oldest_at": iso(self.outbox.oldest_at),
                "oldest_age_seconds": self.outbox.oldest_age_seconds(self.at),
            },
            "partners": [
                {
                    "code": p.code,
                    "breaker": p.breaker,
                    "state_class": p.state_class,
                    "success_rate": p.success_rate,
                    "p50_ms": p.p50_ms,
                    "p95_ms": p.p95_ms,
                    "in_flight": p.in_flight,
                }
                for p in self.partners
            ],
            "counts": self.counts,
        }


async def broker_connection(settings: Settings) -> AbstractRobustConnection:
    """A connection for operator reads, failing fast (the workers' connect waits forever instead)."""
    from gateway.amqp.broker import node_urls

    # A robust connection to one node: the first of a cluster's nodes that answers.
    error: BaseException = ValueError("no broker URL")
    for url in node_urls(settings.broker_url):
        try:
            return await asyncio.wait_for(
                aio_pika.connect_robust(url, client_properties={"connection_name": "gateway-ops"}),
                timeout=BROKER_TIMEOUT_SECONDS,
            )
        except (TimeoutError, OSError, aio_pika.exceptions.AMQPError) as exc:
            error = exc
    raise error


class BrokerSilent(TimeoutError):
    """The broker did not complete the AMQP handshake in time (it accepted the TCP connection, or not)."""


def safe_url(url: str) -> str:
    """``url`` without its password, for messages."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = f"{parts.username}:***@{parts.hostname}" + (f":{parts.port}" if parts.port else "")
    return urlunsplit(parts._replace(netloc=netloc))


async def command_connection(settings: Settings) -> AbstractConnection:
    """A one-shot connection for an operator command, given up after ``ops.broker_timeout_seconds``.

    Not a robust connection: a robust one whose first attempt is cancelled schedules its own reconnects,
    and ``asyncio.run`` then never returns, so a broker that accepts the TCP connection and never answers
    kept ``run.py status`` running for ever."""
    timeout = settings.ops.broker_timeout_seconds
    from gateway.amqp.broker import connect_once

    try:
        # A cluster's nodes in turn (broker_url lists them), each given the whole timeout.
        return await connect_once(settings.broker_url, "gateway-ops-cli", timeout)
    except TimeoutError as exc:
        nodes = ", ".join(safe_url(u) for u in settings.broker_urls)
        raise BrokerSilent(
            f"the broker at {nodes} did not answer within {timeout:g} s (ops.broker_timeout_seconds)"
        ) from exc


async def queue_overview(
    settings: Settings, connection: AbstractConnection | None
) -> tuple[queues.QueueOverview | None, str]:
    try:
        if connection is None:
            connection = await broker_connection(settings)
            async with connection:
                return await asyncio.wait_for(queues.overview(settings, connection), READ_TIMEOUT_SECONDS), ""
        return await asyncio.wait_for(queues.overview(settings, connection), READ_TIMEOUT_SECONDS), ""
    except (TimeoutError, OSError, ConnectionError, aio_pika.exceptions.AMQPError) as exc:
        log.warning("queue overview: broker unreachable: %s", exc)
        return None, f"broker unreachable: {type(exc).__name__}"


async def snapshot(
    settings: Settings,
    db: Database,
    connection: AbstractConnection | None = None,
    reach_broker: bool = True,
) -> Snapshot:
    """``connection`` None: one is opened for this call, unless ``reach_broker`` is False (the caller
    knows the broker is unreachable: the queues are then reported unavailable at once)."""
    at = now()
    if reach_broker:
        overview, error = await queue_overview(settings, connection)
    else:
        overview, error = None, "broker unreachable"
    async with db.read() as conn:
        outbox = await backlog.outbox_state(conn)
        health = await partners.health(conn, load_partners(settings.config_dir), at)
        counts = await backlog.counts(conn, settings.ops.stuck_after_minutes, at)
    return Snapshot(at, overview, error, outbox, health, counts)
