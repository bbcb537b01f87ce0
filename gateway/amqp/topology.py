"""Declaring the broker topology, idempotently, at every start."""

from __future__ import annotations

from typing import Any

import aio_pika
from aio_pika.abc import AbstractChannel, AbstractQueue

from gateway.amqp.names import Names


def quorum_args(names: Names, queue: str, delivery_limit: int) -> dict[str, Any]:
    """Durable, replicated, bounded: poison messages stop after ``delivery_limit`` and are parked."""
    return {
        "x-queue-type": "quorum",
        "x-delivery-limit": delivery_limit,
        "x-dead-letter-exchange": names.dlx,
        "x-dead-letter-routing-key": names.dead_key(queue),
        "x-dead-letter-strategy": "at-least-once",
        # at-least-once dead-lettering requires the queue to refuse rather than drop on overflow.
        "x-overflow": "reject-publish",
    }


async def declare_exchanges(channel: AbstractChannel, names: Names) -> None:
    await channel.declare_exchange(names.documents, aio_pika.ExchangeType.TOPIC, durable=True)
    await channel.declare_exchange(names.dlx, aio_pika.ExchangeType.TOPIC, durable=True)
    await channel.declare_exchange(names.callbacks, aio_pika.ExchangeType.TOPIC, durable=True)
    await channel.declare_exchange(names.events, aio_pika.ExchangeType.TOPIC, durable=True)
    await channel.declare_exchange(names.hints, aio_pika.ExchangeType.FANOUT, durable=True)


async def declare_callbacks(channel: AbstractChannel, names: Names, delivery_limit: int) -> AbstractQueue:
    """The callbacks queue (inquiry results to callers' callback URLs): work that must survive, so a
    quorum queue. Lookup requests have no queues of their own: they wait in each partner's work queue
    (:func:`declare_recipient`), and answers are recorded by the worker that called the partner."""
    callbacks = await declare_queue_with_parking(channel, names, names.callbacks_queue, delivery_limit)
    await callbacks.bind(names.callbacks, routing_key="#")
    return callbacks


async def declare_queue_with_parking(
    channel: AbstractChannel, names: Names, queue: str, delivery_limit: int
) -> AbstractQueue:
    """A quorum queue plus the parking queue that collects what it dead-letters."""
    parking = await channel.declare_queue(
        names.parking(queue), durable=True, arguments={"x-queue-type": "quorum"}
    )
    await parking.bind(names.dlx, routing_key=names.dead_key(queue))
    return await channel.declare_queue(
        queue, durable=True, arguments=quorum_args(names, queue, delivery_limit)
    )


async def declare_retry_tiers(
    channel: AbstractChannel, names: Names, delivery_limit: int, retry_delays_ms: list[int]
) -> None:
    """One holding queue per back-off delay, shared by every recipient (a few queues in all, not a
    few per recipient: each quorum queue is a Raft log the broker keeps)."""
    for delay in sorted(set(retry_delays_ms)):
        name = names.retry(delay)
        exchange = await channel.declare_exchange(name, aio_pika.ExchangeType.FANOUT, durable=True)
        args = quorum_args(names, name, delivery_limit)
        # Expired messages go back through `documents` with their routing key (the recipient) kept.
        args["x-dead-letter-exchange"] = names.documents
        del args["x-dead-letter-routing-key"]
        args["x-message-ttl"] = delay
        queue = await channel.declare_queue(name, durable=True, arguments=args)
        await queue.bind(exchange)


async def declare_recipient(
    channel: AbstractChannel,
    names: Names,
    client_id: str,
    delivery_limit: int,
    amqp_queue: str | None,
) -> AbstractQueue:
    """Everything one recipient needs: its delivery queue bound to documents, its urgent lane and (for
    AMQP recipients) the queue it consumes from. Retries go through the shared tiers."""
    deliver = await declare_queue_with_parking(channel, names, names.deliver(client_id), delivery_limit)
    await deliver.bind(names.documents, routing_key=client_id)
    await declare_urgent_lane(channel, names, client_id, delivery_limit)
    if amqp_queue:
        await declare_queue_with_parking(channel, names, amqp_queue, delivery_limit)
    return deliver


async def declare_urgent_lane(
    channel: AbstractChannel, names: Names, client_id: str, delivery_limit: int
) -> AbstractQueue:
    """The recipient's urgent delivery queue (with its parking queue), bound to documents by the
    urgent routing key. Quorum queues have no priorities: a separate queue is how urgent documents
    overtake a backlog."""
    queue = names.deliver_urgent(client_id)
    urgent = await declare_queue_with_parking(channel, names, queue, delivery_limit)
    await urgent.bind(names.documents, routing_key=names.urgent_key(client_id))
    return urgent
