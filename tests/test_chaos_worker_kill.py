"""Promise: a worker SIGKILLed in the middle of delivering loses nothing and applies nothing twice.
Copies the broker hands out again carry the same message_id and are counted (``redelivered``)."""

from __future__ import annotations

import asyncio
import collections
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from sqlalchemy import select

from gateway.storage.database import Database
from gateway.storage.tables import evidences, messages
from tests.conftest import World, make_world
from tests.support.gateway_procs import CaseSystemQueue, GatewayProcesses, delete_topology
from tests.support.load import plan, push_all

pytestmark = [pytest.mark.rabbitmq, pytest.mark.chaos]
N = 1000


async def statuses(world: World) -> tuple[collections.Counter[str], set[str]]:
    """Status counts, and the ids with a ``redelivered`` evidence."""
    db = Database(world.settings.resolved_database_url)
    try:
        async with db.read() as conn:
            counts = collections.Counter((await conn.execute(select(messages.c.status))).scalars())
            rows = await conn.execute(
                select(evidences.c.message_id).where(evidences.c.event == "redelivered")
            )
            return counts, set(rows.scalars())
    finally:
        await db.dispose()


async def settled(world: World, expected: dict[str, int], timeout: float = 60) -> set[str]:
    """Wait until the statuses are ``expected`` (a forward whose confirm was lost is retried after a
    back-off before it is recorded); return the ids with a ``redelivered`` evidence."""
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        counts, redelivered = await statuses(world)
        if counts == expected or asyncio.get_running_loop().time() > deadline:
            assert counts == expected
            return redelivered
        await asyncio.sleep(0.2)


async def accept_batch(procs: GatewayProcesses) -> set[str]:
    procs.start("api")
    await procs.wait_api()
    outcome = await push_all(procs.url, procs.world, plan(N))
    assert outcome.other == []
    return set(outcome.unique)


async def kill_when(procs: GatewayProcesses, seen: Any, threshold: int, timeout: float = 60) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while len(seen) < threshold:
        assert asyncio.get_running_loop().time() < deadline, "delivery never started"
        await asyncio.sleep(0.01)
    procs.kill("worker")


@pytest.fixture
async def amqp_gateway(tmp_path: Path, fresh_database_url: str) -> AsyncIterator[GatewayProcesses]:
    world = make_world(tmp_path, fresh_database_url)
    procs = GatewayProcesses(world, tmp_path / "logs")
    yield procs
    procs.stop_all()
    await delete_topology(world)


async def test_worker_killed_mid_delivery_to_queue(amqp_gateway: GatewayProcesses) -> None:
    procs, world = amqp_gateway, amqp_gateway.world
    accepted = await accept_batch(procs)
    case_system = CaseSystemQueue(world.case_queue)
    procs.start("worker")
    await case_system.start()
    try:
        await kill_when(procs, case_system.seen, threshold=len(accepted) // 3)
        killed_at = len(case_system.seen)
        assert killed_at < len(accepted), "the kill came too late to test anything"
        procs.start("worker")
        await case_system.wait_for(accepted)
    finally:
        await case_system.close()
    assert set(case_system.seen) == accepted
    redelivered = await settled(world, {"delivered": len(accepted)})
    twice = {m for m, n in case_system.seen.items() if n > 1}
    assert twice <= redelivered, "a copy seen twice was not counted as a redelivery"
    # What a kill can make the gateway send twice: the deliveries the killed worker held unacknowledged (at
    # most its prefetch), and the outbox rows its relay pass had claimed and published but not yet deleted
    # (at most one claim, republished when the lease ends) — each repeat counted, as asserted above.
    assert len(twice) <= world.settings.delivery.prefetch + world.settings.relay.batch_size


class IdempotentReceiver:
    """A case system behind a webhook: applies each Gateway-Message-Id once, counts every call."""

    def __init__(self) -> None:
        self.applied: set[str] = set()
        self.calls: collections.Counter[str] = collections.Counter()
        self.flagged: set[str] = set()

    async def handle(self, request: web.Request) -> web.Response:
        await request.read()
        message_id = request.headers["Gateway-Message-Id"]
        self.calls[message_id] += 1
        if request.headers.get("Gateway-Redelivered") == "true":
            self.flagged.add(message_id)
        self.applied.add(message_id)
        return web.json_response({"ok": True})


async def test_worker_killed_mid_delivery_to_webhook(
    tmp_path: Path, fresh_database_url: str, aiohttp_server: Any
) -> None:
    receiver = IdempotentReceiver()
    app = web.Application()
    app.router.add_post("/hook", receiver.handle)
    server = await aiohttp_server(app)
    world = make_world(tmp_path, fresh_database_url, deliver_to=str(server.make_url("/hook")))
    procs = GatewayProcesses(world, tmp_path / "logs")
    try:
        accepted = await accept_batch(procs)
        procs.start("worker")
        await kill_when(procs, receiver.calls, threshold=len(accepted) // 3)
        procs.start("worker")
        deadline = asyncio.get_running_loop().time() + 120
        while receiver.applied != accepted:
            assert asyncio.get_running_loop().time() < deadline, len(accepted - receiver.applied)
            await asyncio.sleep(0.1)
        await asyncio.sleep(1)
        redelivered = await settled(world, {"delivered": len(accepted)})
        # Called twice only where the gateway could not know the first call succeeded, and then the
        # second call says so; the gateway recorded one delivery for each.
        twice = {m for m, n in receiver.calls.items() if n > 1}
        assert twice <= receiver.flagged <= redelivered
    finally:
        procs.stop_all()
        await delete_topology(world)
