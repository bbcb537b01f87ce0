"""Wake-ups across processes: a worker that made an inquiry final says so on the hints exchange, and
every api process listening wakes its ``Prefer: wait`` callers for that inquiry (see
:mod:`gateway.services.inquiry_watch`). Best effort by design: transient, unconfirmed, and a waiter
whose hint was lost still re-reads the inquiry on its own (slowly), so nothing depends on one."""

from __future__ import annotations

import logging

import aio_pika
from aio_pika.abc import AbstractChannel, AbstractIncomingMessage, AbstractRobustConnection

from gateway.amqp.names import Names
from gateway.services.inquiry_watch import InquiryWatch

log = logging.getLogger(__name__)


class Hinter:
    """Publishes hints on a channel of its own (no confirms: nothing waits for them)."""

    def __init__(self, connection: AbstractRobustConnection, names: Names) -> None:
        self._connection = connection
        self._names = names
        self._channel: AbstractChannel | None = None

    async def final(self, inquiry_id: str) -> None:
        try:
            if self._channel is None or self._channel.is_closed:
                self._channel = await self._connection.channel(publisher_confirms=False)
            exchange = await self._channel.get_exchange(self._names.hints, ensure=False)
            message = aio_pika.Message(
                inquiry_id.encode(), delivery_mode=aio_pika.DeliveryMode.NOT_PERSISTENT
            )
            await exchange.publish(message, routing_key="")
        except Exception as exc:  # a lost hint only delays a waiter's re-read; never fail the answer
            log.debug("hint for inquiry %s not sent: %r", inquiry_id, exc)


async def listen(connection: AbstractRobustConnection, names: Names, watch: InquiryWatch) -> None:
    """Consume hints into ``watch`` on an exclusive, auto-deleted classic queue of this process's own:
    nothing there must survive the process (a quorum queue would be a replicated log kept for nothing).
    The robust connection declares it again after a reconnect."""
    channel = await connection.channel()
    exchange = await channel.declare_exchange(names.hints, aio_pika.ExchangeType.FANOUT, durable=True)
    queue = await channel.declare_queue(
        exclusive=True, auto_delete=True, arguments={"x-queue-type": "classic"}
    )
    await queue.bind(exchange)

    async def on_hint(message: AbstractIncomingMessage) -> None:
        watch.changed(message.body.decode(errors="replace"))

    await queue.consume(on_hint, no_ack=True)
