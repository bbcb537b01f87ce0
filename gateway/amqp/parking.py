"""Operator tools for parking queues: what exhausted its deliveries or attempts waits there until an
operator has fixed the cause and moves it back. Nothing is deleted by these tools."""

from __future__ import annotations

import aio_pika
from aio_pika.abc import AbstractChannel, AbstractIncomingMessage, AbstractRobustConnection, DeliveryMode

from gateway.amqp.names import Names

RESET_HEADERS = (
    "x-delivery-attempt",
    "x-death",
    "x-first-death-exchange",
    "x-first-death-queue",
    "x-first-death-reason",
    "x-last-death-exchange",
    "x-last-death-queue",
    "x-last-death-reason",
)


async def depth(connection: AbstractRobustConnection, queue: str) -> int | None:
    """Messages ready in ``queue``, or None if it does not exist."""
    channel = await connection.channel()
    try:
        declared = await channel.declare_queue(queue, passive=True)
    except aio_pika.exceptions.ChannelClosed:
        return None
    count = declared.declaration_result.message_count
    await channel.close()
    return int(count or 0)


async def replay(connection: AbstractRobustConnection, names: Names, queue: str, limit: int) -> int:
    """Move up to ``limit`` messages from ``queue``'s parking queue back into ``queue``: each is
    republished (persistent, confirmed, same message_id and properties, attempt count reset) before it
    is acked, so a crash in between duplicates at worst, and consumers de-duplicate on message_id."""
    channel = await connection.channel(publisher_confirms=True, on_return_raises=True)
    parking = await channel.declare_queue(names.parking(queue), passive=True)
    await channel.declare_queue(queue, passive=True)
    moved = 0
    while moved < limit:
        message = await parking.get(fail=False, no_ack=False)
        if message is None:
            break
        await republish(channel, queue, message)
        # Taken with basic.get by an operator's command, not consumed: no gateway.amqp.consume policy
        # here. An ack that fails raises, so the command never counts a message it did not move.
        await message.ack()
        moved += 1
    await channel.close()
    return moved


async def republish(channel: AbstractChannel, queue: str, message: AbstractIncomingMessage) -> None:
    """Put a parked ``message`` back on ``queue``: persistent, same message_id and properties, attempt
    count and death headers reset, marked ``x-replayed``. The caller acks the parked copy after."""
    headers = {k: v for k, v in (message.headers or {}).items() if k not in RESET_HEADERS}
    headers["x-replayed"] = True
    await channel.default_exchange.publish(
        aio_pika.Message(
            message.body,
            headers=headers,
            content_type=message.content_type,
            content_encoding=message.content_encoding,
            delivery_mode=DeliveryMode.PERSISTENT,
            message_id=message.message_id,
            correlation_id=message.correlation_id,
            type=message.type,
            app_id=message.app_id,
            timestamp=message.timestamp,
        ),
        routing_key=queue,
        mandatory=True,
    )
