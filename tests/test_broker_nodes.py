"""broker_url may name a cluster's nodes: connections go to the first node that answers, and a
connection whose node drops comes back through the next one, channels and consumers restored. One URL
behaves as before. Against the real broker, each "node" a loopback proxy in front of it."""

from __future__ import annotations

import asyncio

import aio_pika
import aiormq
import pytest

from gateway.amqp import broker
from gateway.amqp.broker import ClusterConnection, connect, connect_once, node_urls
from gateway.settings import Settings
from tests.support.tcp_proxy import TCPProxy

pytestmark = pytest.mark.rabbitmq

REFUSED = "amqp://guest:guest@127.0.0.1:9/"


def via(proxy: TCPProxy) -> str:
    return f"amqp://guest:guest@127.0.0.1:{proxy.port}/"


def test_broker_url_lists_a_clusters_nodes_separated_by_commas() -> None:
    settings = Settings(broker_url=" amqp://a:5672/ ,amqp://b:5672/,, amqps://c:5671/")
    assert settings.broker_urls == ["amqp://a:5672/", "amqp://b:5672/", "amqps://c:5671/"]
    assert Settings().broker_urls == ["amqp://guest:guest@127.0.0.1:5672/"]
    assert node_urls(["amqp://a/", " "]) == ["amqp://a/"]
    with pytest.raises(ValueError, match="amqp:// or amqps://"):
        Settings(broker_url="amqp://a:5672/,http://b/")
    with pytest.raises(ValueError, match="names no node"):
        Settings(broker_url=" , ")


def test_cluster_connection_hooks_aio_pika() -> None:
    # The failover rides on the robust connection's per-attempt step: an aio-pika that renamed it
    # would silently reconnect to one node again.
    assert broker._connect_transport is not None


async def test_one_url_is_aio_pikas_own_robust_connection() -> None:
    connection = await connect("amqp://guest:guest@127.0.0.1:5672/", "test-one-node")
    try:
        assert type(connection) is aio_pika.RobustConnection
    finally:
        await connection.close()


async def test_the_first_node_that_answers_takes_the_connection() -> None:
    async with TCPProxy("127.0.0.1", 5672) as proxy:
        connection = await connect(f"{REFUSED},{via(proxy)}", "test-first-answering")
        try:
            assert isinstance(connection, ClusterConnection)
            assert connection.url.port == proxy.port
        finally:
            await connection.close()
        once = await connect_once([REFUSED, via(proxy)], "test-once", 5)
        await once.close()
    with pytest.raises(OSError):
        await connect_once([REFUSED], "test-once", 5)


async def test_a_dropped_node_hands_the_connection_and_its_consumer_to_the_next() -> None:
    queue_name = f"test.nodes.{id(object())}"
    async with TCPProxy("127.0.0.1", 5672) as first, TCPProxy("127.0.0.1", 5672) as second:
        connection = await connect([via(first), via(second)], "test-failover")
        assert isinstance(connection, ClusterConnection)
        try:
            channel = await connection.channel()
            queue = await channel.declare_queue(queue_name, auto_delete=True)
            received: asyncio.Queue[bytes] = asyncio.Queue()

            async def on_message(message: aio_pika.abc.AbstractIncomingMessage) -> None:
                async with message.process():
                    await received.put(message.body)

            await queue.consume(on_message)
            assert connection.url.port == first.port
            await first.pause()  # the first node goes away and stays away
            await asyncio.wait_for(_moved(connection, second.port), 30)
            # The connection is back before its channels are: publish once the channel is restored.
            await asyncio.wait_for(_publish_when_restored(channel, queue_name, b"after"), 30)
            assert await asyncio.wait_for(received.get(), 15) == b"after"
        finally:
            await connection.close()


async def _publish_when_restored(channel: aio_pika.abc.AbstractChannel, queue: str, body: bytes) -> None:
    while True:
        try:
            await channel.default_exchange.publish(aio_pika.Message(body), routing_key=queue)
            return
        except aiormq.exceptions.ChannelInvalidStateError:
            await asyncio.sleep(0.05)


async def _moved(connection: ClusterConnection, port: int) -> None:
    while not (connection.url.port == port and connection.connected.is_set()):
        await asyncio.sleep(0.05)
