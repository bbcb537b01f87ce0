"""Status-event subscriptions: a client's own queue bound to ``<ns>.events``, or a signed webhook.

Every subscription is a durable queue bound with the client's own keys (as sender, as recipient), so a
client never receives another's events. ``queue``: the client consumes it. ``webhook``: the worker
consumes it and POSTs each event, signed, in order (``gateway/worker/events.py``).

Subscribing talks to the broker (declare, bind; delete on unsubscribing): while the broker is down it
is refused as unavailable (503 in the API) and changes nothing. Nothing else in the api needs the broker.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from typing import Any, Final

import aio_pika
from aio_pika.abc import AbstractChannel, AbstractQueue
from sqlalchemy import insert, select, update
from sqlalchemy.engine import Row

from gateway.amqp import topology
from gateway.amqp.broker import connect_once
from gateway.amqp.names import Names
from gateway.domain import events
from gateway.domain.errors import Conflict, NotFound, Refused, Unavailable
from gateway.domain.registry import REGISTRY
from gateway.domain.violations import Violation
from gateway.security.outbound import OutboundPolicy
from gateway.security.tokens import Principal
from gateway.settings import Settings
from gateway.storage.database import Database
from gateway.storage.tables import event_subscriptions
from gateway.storage.timestamps import iso, now
from gateway.validation import SchemaCatalog

__all__ = ["MAX_QUEUED_EVENTS", "MAX_SUBSCRIPTIONS", "SubscriptionService", "declare_queue"]

SCHEMA: Final = "subscription.request"
#: Active subscriptions one client may hold.
MAX_SUBSCRIPTIONS: Final = 10
#: A subscriber's queue keeps at most this many events; beyond it the oldest are dropped (a client that
#: stopped reading must not fill the broker). ``GET /v1/messages/{id}`` stays the record.
MAX_QUEUED_EVENTS: Final = 100_000
BROKER_TIMEOUT_SECONDS: Final = 5.0


def queue_arguments(names: Names, queue: str, kind: str, delivery_limit: int) -> dict[str, Any]:
    """A webhook subscription's queue parks events the worker could not deliver; a client's own queue
    just keeps the newest :data:`MAX_QUEUED_EVENTS`."""
    if kind == "webhook":
        return topology.quorum_args(names, queue, delivery_limit)
    return {"x-queue-type": "quorum", "x-max-length": MAX_QUEUED_EVENTS, "x-overflow": "drop-head"}


async def declare_queue(
    channel: AbstractChannel, names: Names, queue: str, kind: str, bindings: list[str], delivery_limit: int
) -> AbstractQueue:
    """The subscription's queue, bound to ``events`` with ``bindings``; idempotent."""
    await channel.declare_exchange(names.events, aio_pika.ExchangeType.TOPIC, durable=True)
    if kind == "webhook":
        parking = await channel.declare_queue(
            names.parking(queue), durable=True, arguments={"x-queue-type": "quorum"}
        )
        await parking.bind(names.dlx, routing_key=names.dead_key(queue))
    declared = await channel.declare_queue(
        queue, durable=True, arguments=queue_arguments(names, queue, kind, delivery_limit)
    )
    for key in bindings:
        await declared.bind(names.events, routing_key=key)
    return declared


def _unavailable(exc: BaseException) -> Unavailable:
    return Unavailable(
        f"nothing was changed; try again later ({type(exc).__name__})",
        retry_after=5,
        slug="broker-unavailable",
    )


class SubscriptionService:
    def __init__(self, db: Database, settings: Settings, catalog: SchemaCatalog) -> None:
        self._db = db
        self._settings = settings
        self._catalog = catalog
        self._names = Names(settings.broker_namespace)
        self._outbound = OutboundPolicy.from_settings(settings.outbound)

    def _view(self, row: Row[Any]) -> dict[str, Any]:
        types: list[str] = json.loads(row.message_types) if row.message_types else []
        out: dict[str, Any] = {
            "subscription_id": row.subscription_id,
            "client": row.client_id,
            "kind": row.kind,
            "message_types": types,
            "bindings": events.binding_keys(row.client_id, types),
            "created_at": iso(row.created_at),
            "revoked_at": iso(row.revoked_at),
            "href": f"/v1/subscriptions/{row.subscription_id}",
        }
        if row.kind == "queue":
            out["queue"] = row.target
            out["exchange"] = self._names.events
        else:
            out["url"] = row.target
        return out

    async def create(self, principal: Principal, document: object) -> dict[str, Any]:
        client = principal.client.id
        violations = self._catalog.violations(SCHEMA, document)
        if violations:
            raise Refused(violations)
        assert isinstance(document, dict)
        kind: str = document["kind"]
        types: list[str] = list(document.get("message_types") or [])
        for n, message_type in enumerate(types):
            if message_type not in REGISTRY and message_type != events.ASSET_INQUIRY:
                violations.append(
                    Violation(f"$.message_types[{n}]", "is not a registered message type", "enum")
                )
        if kind == "webhook":
            # The outbound policy (gateway/security/outbound.py): checked here and again at each send.
            violations += await self._outbound.violations(
                document["url"], "$.url", principal.client.outbound_hosts
            )
        if violations:
            raise Refused(violations)
        async with self._db.read() as conn:
            active = (
                await conn.execute(
                    select(event_subscriptions.c.subscription_id).where(
                        event_subscriptions.c.client_id == client, event_subscriptions.c.revoked_at.is_(None)
                    )
                )
            ).all()
        if len(active) >= MAX_SUBSCRIPTIONS:
            raise Conflict(
                f"client {client} already holds {MAX_SUBSCRIPTIONS} subscriptions; delete one first"
            )
        subscription_id = str(uuid.uuid4())
        queue = self._names.event_subscription(client, subscription_id)
        bindings = events.binding_keys(client, types)
        # The queue before the row: a row whose queue could not be declared would promise events it
        # cannot get. A queue whose row could not be stored is deleted again.
        await self._on_broker(self._declare(queue, kind, bindings))
        row = {
            "subscription_id": subscription_id,
            "client_id": client,
            "kind": kind,
            "target": queue if kind == "queue" else document["url"],
            "message_types": json.dumps(types) if types else None,
            "created_at": now(),
            "revoked_at": None,
        }
        try:
            async with self._db.transaction() as conn:
                await conn.execute(insert(event_subscriptions).values(**row))
                stored = (
                    await conn.execute(
                        select(event_subscriptions).where(
                            event_subscriptions.c.subscription_id == subscription_id
                        )
                    )
                ).one()
        except BaseException:
            await asyncio.shield(self._delete_quietly(queue, kind))
            raise
        return self._view(stored)

    async def list_for(self, principal: Principal) -> list[dict[str, Any]]:
        async with self._db.read() as conn:
            rows = await conn.execute(
                select(event_subscriptions)
                .where(
                    event_subscriptions.c.client_id == principal.client.id,
                    event_subscriptions.c.revoked_at.is_(None),
                )
                .order_by(event_subscriptions.c.created_at, event_subscriptions.c.subscription_id)
            )
            return [self._view(r) for r in rows]

    async def delete(self, principal: Principal, subscription_id: str) -> dict[str, Any]:
        """Unbind and delete its queue, then mark it revoked. Someone else's subscription: 404."""
        async with self._db.read() as conn:
            row = (
                await conn.execute(
                    select(event_subscriptions).where(
                        event_subscriptions.c.subscription_id == subscription_id,
                        event_subscriptions.c.client_id == principal.client.id,
                    )
                )
            ).first()
        if row is None:
            raise NotFound(f"no subscription {subscription_id} of client {principal.client.id}")
        if row.revoked_at is not None:
            return self._view(row)
        queue = self._names.event_subscription(row.client_id, row.subscription_id)
        await self._on_broker(self._delete(queue, row.kind))
        at = now()
        async with self._db.transaction() as conn:
            await conn.execute(
                update(event_subscriptions)
                .where(
                    event_subscriptions.c.subscription_id == subscription_id,
                    event_subscriptions.c.revoked_at.is_(None),
                )
                .values(revoked_at=at)
            )
            stored = (
                await conn.execute(
                    select(event_subscriptions).where(
                        event_subscriptions.c.subscription_id == subscription_id
                    )
                )
            ).one()
        return self._view(stored)

    # -- broker ------------------------------------------------------------------------------------

    async def _on_broker(self, work: Any) -> None:
        try:
            await asyncio.wait_for(work, timeout=BROKER_TIMEOUT_SECONDS * 2)
        except (OSError, TimeoutError, aio_pika.exceptions.AMQPError) as exc:
            raise _unavailable(exc) from exc

    async def _channel_do(self, action: Any) -> None:
        connection = await connect_once(
            self._settings.broker_url, "gateway-api-events", BROKER_TIMEOUT_SECONDS
        )
        async with connection:
            channel = await connection.channel()
            await action(channel)

    async def _declare(self, queue: str, kind: str, bindings: list[str]) -> None:
        limit = self._settings.delivery.delivery_limit

        async def action(channel: AbstractChannel) -> None:
            await declare_queue(channel, self._names, queue, kind, bindings, limit)

        await self._channel_do(action)

    async def _delete(self, queue: str, kind: str) -> None:
        async def action(channel: AbstractChannel) -> None:
            await channel.queue_delete(queue)
            if kind == "webhook":
                await channel.queue_delete(self._names.parking(queue))

        await self._channel_do(action)

    async def _delete_quietly(self, queue: str, kind: str) -> None:
        try:
            await asyncio.wait_for(self._delete(queue, kind), timeout=BROKER_TIMEOUT_SECONDS * 2)
        except Exception:  # the worker's scan and the operator's queue list show what is left
            return
