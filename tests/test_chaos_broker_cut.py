"""Promise: while RabbitMQ is unreachable, pushes are still accepted (they wait in the outbox) and are
delivered once it is back; a connection cut mid-run loses nothing. The worker reaches the broker
through a loopback TCP proxy that the test cuts."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from tests.conftest import make_world
from tests.support.gateway_procs import CaseSystemQueue, GatewayProcesses, delete_topology
from tests.support.load import plan, push_all
from tests.support.tcp_proxy import TCPProxy
from tests.test_chaos_worker_kill import settled, statuses

pytestmark = [pytest.mark.rabbitmq, pytest.mark.chaos]


@pytest.fixture
async def proxied(
    tmp_path: Path, fresh_database_url: str
) -> AsyncIterator[tuple[GatewayProcesses, TCPProxy, CaseSystemQueue]]:
    world = make_world(tmp_path, fresh_database_url)
    proxy = TCPProxy("127.0.0.1", 5672)
    await proxy.start()
    procs = GatewayProcesses(
        world, tmp_path / "logs", broker_url=f"amqp://guest:guest@127.0.0.1:{proxy.port}/"
    )
    procs.start("api")
    procs.start("worker")
    await procs.wait_api()
    case_system = CaseSystemQueue(world.case_queue)  # the case system itself reaches the broker directly
    await case_system.start()
    yield procs, proxy, case_system
    await case_system.close()
    procs.stop_all()
    await proxy.close()
    await delete_topology(world)


async def test_pushes_accepted_while_broker_unreachable_are_delivered_when_it_returns(
    proxied: tuple[GatewayProcesses, TCPProxy, CaseSystemQueue],
) -> None:
    procs, proxy, case_system = proxied
    await proxy.pause()  # cuts the worker's connections and refuses new ones
    outcome = await push_all(procs.url, procs.world, plan(200))
    assert outcome.other == [] and len(outcome.unique) == 180
    await asyncio.sleep(2)
    counts, _ = await statuses(procs.world)
    assert counts == {"received": 180}, "nothing can be queued while the broker is unreachable"
    assert not case_system.seen

    await proxy.resume()
    await case_system.wait_for(set(outcome.unique))
    assert set(case_system.seen) == set(outcome.unique)
    redelivered = await settled(procs.world, {"delivered": 180})
    assert {m for m, n in case_system.seen.items() if n > 1} <= redelivered


async def test_connection_cut_mid_run_loses_nothing(
    proxied: tuple[GatewayProcesses, TCPProxy, CaseSystemQueue],
) -> None:
    procs, proxy, case_system = proxied
    pushing = asyncio.create_task(push_all(procs.url, procs.world, plan(1000)))
    while len(case_system.seen) < 150:
        assert not pushing.done() or len(case_system.seen) > 0
        await asyncio.sleep(0.01)
    await proxy.disconnect()  # once, mid-run: robust connections reconnect by themselves
    outcome = await pushing
    assert outcome.other == []
    await case_system.wait_for(set(outcome.unique), timeout=180)
    assert set(case_system.seen) == set(outcome.unique)
    redelivered = await settled(procs.world, {"delivered": len(outcome.unique)})
    assert {m for m, n in case_system.seen.items() if n > 1} <= redelivered
