"""Reference figures: what the HTTP stack and the broker can do on their own on this machine, measured
in the same run as the gateway figures compared with them."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from pathlib import Path

import aio_pika

from tests.bench import documents
from tests.bench.support import REFERENCES, BareServer
from tests.bench.wrk import WrkResult, run_wrk
from tests.conftest import fresh_namespace
from tests.support.gateway_procs import BROKER

BARE_SECONDS = 10


async def bare_judgments(bare: BareServer, workdir: Path) -> WrkResult:
    """The bare handler under the intake benchmark's load (same wrk script, same judgment), once a session."""
    cached = REFERENCES.get("bare-judgment")
    if isinstance(cached, WrkResult):
        return cached
    template = documents.write(documents.judgment_template(), workdir / "bare-judgment.json")
    result = await run_wrk(f"{bare.url}/v1/judgments", bare.token, template, BARE_SECONDS)
    REFERENCES["bare-judgment"] = result
    return result


@dataclass
class BrokerFigures:
    messages: int
    size: int
    published_per_s: float
    end_to_end_per_s: float


async def broker_limit(
    size: int, messages: int = 5000, in_flight: int = 256, prefetch: int = 100
) -> BrokerFigures:
    """Raw aio-pika: persistent messages of ``size`` bytes published with publisher confirms (``in_flight``
    awaiting a confirm at once, like the gateway's relay) to a quorum queue, consumed with one ack each;
    the queue (throwaway name) is deleted afterwards."""
    name = f"{fresh_namespace()}.bench.reference"
    body = b"x" * size
    connection = await aio_pika.connect(BROKER)
    async with connection:
        publisher = await connection.channel(publisher_confirms=True)
        consumer = await connection.channel()
        try:
            await consumer.set_qos(prefetch_count=prefetch)
            queue = await consumer.declare_queue(
                name, durable=True, arguments={"x-queue-type": "quorum", "x-delivery-limit": 20}
            )
            received = 0
            all_in = asyncio.Event()

            async def on_message(message: aio_pika.abc.AbstractIncomingMessage) -> None:
                nonlocal received
                await message.ack()
                received += 1
                if received >= messages:
                    all_in.set()

            await queue.consume(on_message)
            gate = asyncio.Semaphore(in_flight)

            async def publish(i: int) -> None:
                async with gate:
                    await publisher.default_exchange.publish(
                        aio_pika.Message(
                            body, message_id=str(i), delivery_mode=aio_pika.DeliveryMode.PERSISTENT
                        ),
                        routing_key=name,
                    )

            start = time.perf_counter()
            await asyncio.gather(*(publish(i) for i in range(messages)))
            published = time.perf_counter() - start
            await asyncio.wait_for(all_in.wait(), 120)
            consumed = time.perf_counter() - start
        finally:
            await consumer.queue_delete(name)
    return BrokerFigures(messages, size, messages / published, messages / consumed)
