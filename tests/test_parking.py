"""Operators move parked messages back: nothing is lost, properties survive, attempts restart."""

from __future__ import annotations

import uuid

import aio_pika
import pytest

from gateway.amqp import topology
from gateway.amqp.names import Names
from gateway.amqp.parking import depth, replay
from tests.conftest import fresh_namespace

pytestmark = pytest.mark.rabbitmq
BROKER = "amqp://guest:guest@127.0.0.1:5672/"


async def test_replay_moves_parked_messages_back_with_their_identity() -> None:
    names = Names(fresh_namespace())
    queue = names.deliver("THADS-HN")
    connection = await aio_pika.connect_robust(BROKER)
    async with connection:
        channel = await connection.channel()
        await topology.declare_exchanges(channel, names)
        await topology.declare_queue_with_parking(channel, names, queue, delivery_limit=3)
        ids = [str(uuid.uuid4()) for _ in range(3)]
        for message_id in ids:
            await channel.default_exchange.publish(
                aio_pika.Message(
                    b"{}", message_id=message_id, headers={"x-delivery-attempt": 9, "sender": "TAND-HN"}
                ),
                routing_key=names.parking(queue),
            )
        try:
            assert await depth(connection, names.parking(queue)) == 3
            assert await replay(connection, names, queue, limit=10) == 3
            assert await depth(connection, names.parking(queue)) == 0
            back = await channel.declare_queue(queue, passive=True)
            got = [await back.get(no_ack=True) for _ in ids]
            assert [m.message_id for m in got] == ids
            assert all(
                m.headers.get("x-delivery-attempt") is None and m.headers["sender"] == "TAND-HN" for m in got
            )
            assert all(m.delivery_mode == aio_pika.DeliveryMode.PERSISTENT for m in got)
            assert await depth(connection, names.parking("no-such-queue")) is None
        finally:
            ch = await connection.channel()
            await ch.queue_delete(queue)
            await ch.queue_delete(names.parking(queue))
            await ch.exchange_delete(names.dlx)
            await ch.exchange_delete(names.documents)
            for ex in names.exchanges:
                await ch.exchange_delete(ex)
