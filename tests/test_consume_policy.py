"""The one consumer policy (gateway/amqp/consume.py), on the real broker: a handler that returns is
acked, one that raises ``Park`` is dead-lettered to parking, one that raises ``RetryLater`` or anything
else is handed back after its back-off (and parked by the delivery limit if it never clears), without
holding up the channel's other deliveries; cancellation and ``Abandon`` settle nothing, and a settle on
a closed channel is logged, not raised."""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import aio_pika
import pytest
import structlog
from aio_pika.abc import AbstractChannel, AbstractIncomingMessage, AbstractQueue, AbstractRobustConnection

from gateway.amqp import topology
from gateway.amqp.consume import Abandon, Park, RetryLater, callback, consume
from gateway.amqp.names import Names
from tests.conftest import fresh_namespace

pytestmark = pytest.mark.rabbitmq
BROKER = "amqp://guest:guest@127.0.0.1:5672/"
DELIVERY_LIMIT = 2
BACKOFF = 0.2


@dataclass
class Lane:
    """A throwaway quorum queue with a delivery limit, dead-lettering to its parking queue."""

    connection: AbstractRobustConnection
    channel: AbstractChannel  # consumes
    names: Names
    name: str

    @property
    def parking(self) -> str:
        return self.names.parking(self.name)

    async def publish(self, message_id: str, body: bytes = b"{}") -> None:
        channel = await self.connection.channel()
        await channel.default_exchange.publish(
            aio_pika.Message(body, message_id=message_id, correlation_id="corr-1"), routing_key=self.name
        )
        await channel.close()

    async def queue(self) -> AbstractQueue:
        return await self.channel.declare_queue(self.name, passive=True)

    async def take(self) -> AbstractIncomingMessage:
        """One message, unacknowledged, as a consumer would hold it."""
        queue = await self.queue()
        for _ in range(50):
            message = await queue.get(no_ack=False, fail=False)
            if message is not None:
                return message
            await asyncio.sleep(0.1)
        raise AssertionError(f"nothing arrived on {self.name}")

    async def depth(self, queue: str) -> int:
        channel = await self.connection.channel()
        try:
            declared = await channel.declare_queue(queue, passive=True)
            return int(declared.declaration_result.message_count or 0)
        finally:
            await channel.close()

    async def settled(self) -> tuple[int, int]:
        """(messages back in the queue, messages parked) once the consuming channel is closed: anything
        left unacknowledged returns to the queue then."""
        await self.channel.close()
        counts = (0, 0)
        for _ in range(5):  # returns on a closed channel reach a quorum queue shortly after
            await asyncio.sleep(0.1)
            counts = (await self.depth(self.name), await self.depth(self.parking))
            if counts != (0, 0):
                break
        return counts

    async def parked(self) -> AbstractIncomingMessage:
        channel = await self.connection.channel()
        try:
            queue = await channel.declare_queue(self.parking, passive=True)
            for _ in range(100):
                message = await queue.get(no_ack=True, fail=False)
                if message is not None:
                    return message
                await asyncio.sleep(0.1)
        finally:
            await channel.close()
        raise AssertionError(f"nothing parked from {self.name}")


@pytest.fixture
async def lane() -> AsyncIterator[Lane]:
    names = Names(fresh_namespace())
    name = f"{names.ns}.consume-policy.{uuid.uuid4().hex[:8]}"
    connection = await aio_pika.connect_robust(BROKER)
    async with connection:
        setup = await connection.channel()
        await setup.declare_exchange(names.dlx, aio_pika.ExchangeType.TOPIC, durable=True)
        await topology.declare_queue_with_parking(setup, names, name, DELIVERY_LIMIT)
        channel = await connection.channel()
        await channel.set_qos(prefetch_count=10)
        try:
            yield Lane(connection, channel, names, name)
        finally:
            cleanup = await connection.channel()
            await cleanup.queue_delete(name)
            await cleanup.queue_delete(names.parking(name))
            await cleanup.exchange_delete(names.dlx)
            await cleanup.close()


Handler = Callable[[AbstractIncomingMessage], Awaitable[None]]


def death(parked: AbstractIncomingMessage) -> tuple[str, str]:
    """Why and from which queue the broker dead-lettered ``parked`` (its latest ``x-death`` entry)."""
    deaths = (parked.headers or {}).get("x-death")
    assert isinstance(deaths, list) and isinstance(deaths[0], dict), parked.headers
    return str(deaths[0]["reason"]), str(deaths[0]["queue"])


@dataclass
class Seen:
    message_id: str
    redelivered: bool
    at: float


class Recorder:
    """Records every delivery a handler saw; ``outcomes`` is what each successive call of a message does:
    None returns, an exception is raised (the last one repeats)."""

    def __init__(self, outcomes: dict[str, list[BaseException | None]]) -> None:
        self.outcomes = outcomes
        self.seen: list[Seen] = []
        self.changed = asyncio.Event()

    async def __call__(self, message: AbstractIncomingMessage) -> None:
        message_id = message.message_id or ""
        calls = sum(1 for s in self.seen if s.message_id == message_id)
        self.seen.append(Seen(message_id, bool(message.redelivered), time.monotonic()))
        self.changed.set()
        plan = self.outcomes[message_id]
        outcome = plan[min(calls, len(plan) - 1)]
        if outcome is not None:
            raise outcome

    def calls(self, message_id: str) -> list[Seen]:
        return [s for s in self.seen if s.message_id == message_id]

    async def wait(self, message_id: str, calls: int, timeout: float = 10.0) -> list[Seen]:
        async with asyncio.timeout(timeout):
            while len(self.calls(message_id)) < calls:
                self.changed.clear()
                await self.changed.wait()
        return self.calls(message_id)


async def consuming(lane: Lane, handler: Handler, backoff: float = BACKOFF) -> None:
    queue = await lane.queue()
    await queue.consume(callback(handler, queue=lane.name, backoff=backoff))


async def test_a_handler_that_returns_acks(lane: Lane) -> None:
    recorder = Recorder({"m-ok": [None]})
    await consuming(lane, recorder)
    await lane.publish("m-ok")
    await recorder.wait("m-ok", 1)
    await asyncio.sleep(0.2)
    assert await lane.settled() == (0, 0)
    assert len(recorder.calls("m-ok")) == 1


async def test_park_rejects_to_the_parking_queue_at_once(
    lane: Lane, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="gateway.amqp")
    recorder = Recorder({"m-park": [Park("unreadable", level=logging.ERROR)]})
    await consuming(lane, recorder)
    await lane.publish("m-park")
    parked = await lane.parked()
    assert parked.message_id == "m-park"
    assert death(parked) == ("rejected", lane.name)
    assert len(recorder.calls("m-park")) == 1  # never handed out again
    [line] = [r for r in caplog.records if r.name == "gateway.amqp.consume"]
    assert line.levelno == logging.ERROR
    assert "m-park" in line.getMessage() and lane.name in line.getMessage()
    assert "unreadable" in line.getMessage()
    assert await lane.settled() == (0, 0)


@pytest.mark.parametrize(
    "failure", [RetryLater("the partner registry is down"), RuntimeError("database gone")], ids=repr
)
async def test_a_failure_is_logged_once_and_handed_back_after_the_backoff(
    lane: Lane, caplog: pytest.LogCaptureFixture, failure: Exception
) -> None:
    caplog.set_level(logging.INFO, logger="gateway.amqp")
    recorder = Recorder({"m-retry": [failure, None]})
    await consuming(lane, recorder)
    await lane.publish("m-retry")
    first, second = await recorder.wait("m-retry", 2)
    assert not first.redelivered and second.redelivered
    assert second.at - first.at >= BACKOFF
    await asyncio.sleep(0.2)
    assert await lane.settled() == (0, 0)  # acked the second time, nothing parked
    [line] = [r for r in caplog.records if r.name == "gateway.amqp.consume"]
    assert line.levelno == (logging.WARNING if isinstance(failure, RetryLater) else logging.ERROR)
    assert "m-retry" in line.getMessage() and lane.name in line.getMessage()
    # A traceback for the unexpected only; the expected says why.
    assert (line.exc_info is not None) == (not isinstance(failure, RetryLater))


async def test_what_never_clears_is_parked_by_the_delivery_limit(lane: Lane) -> None:
    recorder = Recorder({"m-poison": [RuntimeError("still broken")]})
    await consuming(lane, recorder, backoff=0.05)
    await lane.publish("m-poison")
    parked = await lane.parked()
    assert parked.message_id == "m-poison"
    assert death(parked) == ("delivery_limit", lane.name)
    assert len(recorder.calls("m-poison")) == DELIVERY_LIMIT + 1
    assert await lane.settled() == (0, 0)


async def test_the_backoff_holds_only_the_failing_message(lane: Lane) -> None:
    recorder = Recorder({"m-slow": [RetryLater("not yet"), None], "m-fast": [None]})
    await consuming(lane, recorder, backoff=1.0)
    await lane.publish("m-slow")
    [slow] = await recorder.wait("m-slow", 1)
    await lane.publish("m-fast")
    [fast] = await recorder.wait("m-fast", 1)
    assert fast.at - slow.at < 0.8  # handled while m-slow was held
    await recorder.wait("m-slow", 2)
    await asyncio.sleep(0.2)
    assert await lane.settled() == (0, 0)


async def test_cancellation_propagates_and_settles_nothing(lane: Lane) -> None:
    await lane.publish("m-cancel")
    message = await lane.take()

    async def cancelled(_message: AbstractIncomingMessage) -> None:
        raise asyncio.CancelledError

    with pytest.raises(asyncio.CancelledError):
        await consume(message, cancelled, queue=lane.name)
    assert not message.processed
    assert await lane.settled() == (1, 0)  # back in the queue once its channel closed


async def test_cancellation_during_the_backoff_settles_nothing(lane: Lane) -> None:
    await lane.publish("m-cancel-later")
    message = await lane.take()

    async def failing(_message: AbstractIncomingMessage) -> None:
        raise RetryLater("not yet")

    task = asyncio.create_task(consume(message, failing, queue=lane.name, backoff=5.0))
    await asyncio.sleep(0.2)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert not message.processed
    assert await lane.settled() == (1, 0)


async def test_abandon_settles_nothing(lane: Lane) -> None:
    await lane.publish("m-abandon")
    message = await lane.take()

    async def gone(_message: AbstractIncomingMessage) -> None:
        raise Abandon("the consumer is gone")

    await consume(message, gone, queue=lane.name)
    assert not message.processed
    assert await lane.settled() == (1, 0)


async def test_a_settle_on_a_closed_channel_is_logged_not_raised(
    lane: Lane, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="gateway.amqp")
    await lane.publish("m-closed")
    message = await lane.take()

    async def handled_while_the_channel_went(_message: AbstractIncomingMessage) -> None:
        await lane.channel.close()

    await consume(message, handled_while_the_channel_went, queue=lane.name)
    assert any(r.name == "gateway.amqp.settle" and r.levelno == logging.WARNING for r in caplog.records), (
        caplog.text
    )
    assert await lane.depth(lane.name) == 1  # the broker has it again


async def test_a_message_the_handler_settled_is_not_settled_twice(
    lane: Lane, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="gateway.amqp")
    await lane.publish("m-self")
    message = await lane.take()

    async def settles_itself(message: AbstractIncomingMessage) -> None:
        await message.reject(requeue=False)

    await consume(message, settles_itself, queue=lane.name)
    assert not [r for r in caplog.records if r.name == "gateway.amqp.settle"], caplog.text
    parked = await lane.parked()
    assert parked.message_id == "m-self"
    assert await lane.settled() == (0, 0)


async def test_log_lines_inside_carry_the_message_and_queue(lane: Lane) -> None:
    await lane.publish("m-context")
    message = await lane.take()
    bound: dict[str, Any] = {}

    async def look(_message: AbstractIncomingMessage) -> None:
        bound.update(structlog.contextvars.get_contextvars())

    await consume(message, look, queue=lane.name, partner="BANK-X")
    assert bound == {
        "message_id": "m-context",
        "correlation_id": "corr-1",
        "queue": lane.name,
        "partner": "BANK-X",
    }
    assert await lane.settled() == (0, 0)
