"""Urgent documents overtake a recipient's backlog: each recipient has an urgent delivery lane (its own
queue, parking queue and consumer channel, and its own partner slots), so a call for urgent assistance
reaches the police while thousands of normal documents wait for them.

The default test is deterministic: the police desk holds every normal document (a paused consumer), the
urgent one still gets through and is acknowledged before any of the backlog is. The measured run (2,000
documents, delivery time under a second) is a chaos test: ``make chaos``."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import datetime
from pathlib import Path
from typing import Any

import aio_pika
import aiohttp
import pytest

from gateway.amqp import topology
from gateway.amqp.names import Names
from tests.conftest import fresh_namespace
from tests.support import police
from tests.support.gateway_procs import BROKER, GatewayProcesses
from tests.support.load import post_until_taken
from tests.support.police import PoliceWorld, police_world

pytestmark = pytest.mark.rabbitmq


class Api:
    def __init__(self, pw: PoliceWorld, procs: GatewayProcesses) -> None:
        self.pw, self.procs = pw, procs
        self.http = aiohttp.ClientSession()

    async def send(self, document: dict[str, Any]) -> None:
        # The backlog is pushed faster than the client's configured rate: 429s are waited out.
        url = self.procs.url + "/v1/documents"
        await post_until_taken(self.http, url, document, self.pw.world.case_headers)

    async def view(self, message_id: str) -> dict[str, Any]:
        headers = self.pw.world.case_headers()
        async with self.http.get(f"{self.procs.url}/v1/messages/{message_id}", headers=headers) as resp:
            assert resp.status == 200, await resp.text()
            body: dict[str, Any] = await resp.json()
            return body

    async def status_is(
        self, message_id: str, *statuses: str, event: str | None = None
    ) -> dict[str, Any] | None:
        """The view once in one of ``statuses`` (and, with ``event``, once its timeline has it: an at-once
        answer is stored before its delivery is recorded)."""
        view = await self.view(message_id)
        seen = {e["event"] for e in view["timeline"]}
        return view if view["status"] in statuses and (event is None or event in seen) else None


@pytest.fixture
async def api(tmp_path: Path, request: pytest.FixtureRequest) -> AsyncIterator[Api]:
    # Normal deliveries held at the desk must not time out during the test. The measured run uses
    # PostgreSQL, as a production installation does (SQLite serialises every writer of two processes);
    # the default test runs on the session's backend.
    backend = getattr(request, "param", None)
    async with (
        police_world(tmp_path, backend=backend, timeout_seconds=60, concurrency=8) as pw,
        _running(pw, tmp_path) as client,
    ):
        yield client


@asynccontextmanager
async def _running(pw: PoliceWorld, tmp_path: Path) -> AsyncIterator[Api]:
    procs = GatewayProcesses(pw.world, tmp_path / "logs", port=pw.api_port)
    procs.start("api")
    client = Api(pw, procs)
    try:
        await procs.wait_api()
        yield client
    finally:
        await pw.sim("POST", "hold", {"hold": False})
        procs.stop_all()
        await client.http.close()


async def normal_received(pw: PoliceWorld) -> list[dict[str, Any]]:
    return [r for r in await pw.received() if r["priority"] == "normal"]


async def test_urgent_assistance_overtakes_a_held_backlog_of_normal_documents(api: Api) -> None:
    pw = api.pw
    backlog = [police.protection_request() for _ in range(150)]
    for document in backlog:
        await api.send(document)
    await pw.sim("POST", "hold", {"hold": True})  # the desk takes normal documents and sits on them
    api.procs.start("worker")

    # Every partner slot of the normal lane is taken by a held document; the rest wait behind them.
    async def slots_full() -> bool:
        return len(await normal_received(pw)) >= 8

    await police.wait_until(slots_full, 30, "the normal lane to fill the partner's slots")
    call = police.urgent_assistance()
    await api.send(call)
    answered = await police.wait_until(
        lambda: api.status_is(call["message_id"], "answered", event="delivered"),
        30,
        "the urgent call to be acknowledged",
    )
    assert {"delivered", "answered"} <= {e["event"] for e in answered["timeline"]}

    # Delivered first: not one document of the backlog has got through yet.
    seen = await pw.received()
    urgent_at = next(i for i, r in enumerate(seen) if r["message_id"] == call["message_id"])
    assert urgent_at <= 8 < len(backlog)
    assert len([r for r in seen if r["priority"] == "normal"]) == 8  # the held ones, nothing more
    for document in backlog[:20]:
        assert (await api.view(document["message_id"]))["status"] in ("queued", "received")

    # Released, the backlog drains through the normal lane.
    await pw.sim("POST", "hold", {"hold": False})
    last = backlog[-1]["message_id"]
    await police.wait_until(lambda: api.status_is(last, "answered"), 60, "the backlog to drain")


async def test_a_retried_urgent_document_stays_in_the_urgent_lane() -> None:
    """The retry tiers send a document back with its own routing key: an urgent one to the urgent lane."""
    names = Names(fresh_namespace())
    connection = await aio_pika.connect(BROKER)
    async with connection:
        channel = await connection.channel()
        try:
            await topology.declare_exchanges(channel, names)
            await topology.declare_retry_tiers(channel, names, 5, [50])
            await topology.declare_recipient(channel, names, "CA-HN", 5, None)
            tier = await channel.get_exchange(names.retry(50))
            for key in (Names.routing_key("CA-HN", "urgent"), Names.routing_key("CA-HN", "normal")):
                await tier.publish(aio_pika.Message(key.encode()), routing_key=key)
            urgent = await channel.get_queue(names.deliver_urgent("CA-HN"))
            normal = await channel.get_queue(names.deliver("CA-HN"))

            got: dict[str, bytes] = {}

            async def arrived() -> bool:
                for name, queue in (("urgent", urgent), ("normal", normal)):
                    message = await queue.get(fail=False)
                    if message is not None:
                        got[name] = message.body
                        await message.ack()
                return len(got) == 2

            await police.wait_until(arrived, 10, "both retried messages")
            assert got == {"urgent": b"CA-HN.urgent", "normal": b"CA-HN"}
        finally:
            for queue in [*names.recipient_queues("CA-HN"), names.retry(50)]:
                await channel.queue_delete(queue)
            for exchange in names.exchanges:
                await channel.exchange_delete(exchange)
            await channel.exchange_delete(names.retry(50))


@pytest.mark.chaos
@pytest.mark.parametrize("api", ["postgres"], indirect=True)
async def test_measured_urgent_delivery_under_a_backlog_of_two_thousand(api: Api) -> None:
    """2,000 normal documents queued for the police (published while the desk is paused), then drained
    slowly (the desk takes 500 ms over each, 8 at a time); a call for urgent assistance sent meanwhile is
    delivered in under a second of its acceptance, while nearly all the backlog still waits."""
    pw = api.pw
    backlog = [police.protection_request() for _ in range(2000)]
    sem = asyncio.Semaphore(16)

    async def send(document: dict[str, Any]) -> None:
        async with sem:
            await api.send(document)

    await asyncio.gather(*(send(d) for d in backlog))
    await pw.sim("POST", "hold", {"hold": True})
    api.procs.start("worker")
    # The whole backlog published to the police's delivery queue (the desk paused meanwhile).
    queue = Names(pw.settings.broker_namespace).deliver(police.CODE)
    connection = await aio_pika.connect(BROKER)
    async with connection:

        async def all_queued() -> bool:
            channel = await connection.channel()
            try:
                declared = await channel.declare_queue(queue, passive=True)
            except aio_pika.exceptions.ChannelClosed:
                return False
            ready = declared.declaration_result.message_count or 0
            await channel.close()
            return ready + 100 >= len(backlog)  # the rest prefetched by the worker

        await police.wait_until(all_queued, 120, "the backlog to be queued")
    await pw.sim("POST", "hold", {"hold": False, "delay": 0.5})  # now draining, slowly

    async def draining() -> bool:
        return len(await normal_received(pw)) >= 40

    await police.wait_until(draining, 60, "the backlog to start draining")
    call = police.urgent_assistance()
    await api.send(call)

    async def delivered() -> dict[str, Any] | None:
        view = await api.view(call["message_id"])
        return view if any(e["event"] == "delivered" for e in view["timeline"]) else None

    view = await police.wait_until(delivered, 30, "the urgent call to be delivered")
    times = {e["event"]: datetime.fromisoformat(e["at"]) for e in view["timeline"]}
    took = (times["delivered"] - times["accepted"]).total_seconds()
    drained = len(await normal_received(pw))
    steps = ", ".join(
        f"{e} +{(t - times['accepted']).total_seconds() * 1000:.0f} ms" for e, t in times.items()
    )
    print(f"urgent call: {steps}; {drained} of {len(backlog)} normal documents delivered by then")
    assert took < 1.0
    assert drained < len(backlog)
