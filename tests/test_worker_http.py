"""Every process serves its metrics: the worker's own listener shows the series only it defines, and its
readiness names the failing check."""

from __future__ import annotations

import asyncio
from typing import Any

import aiohttp
import pytest

from gateway.storage.database import Database
from gateway.worker import http as worker_http
from gateway.worker.main import Worker
from tests.conftest import World
from tests.support.gateway_procs import delete_topology

pytestmark = pytest.mark.rabbitmq


async def get(port: int, path: str) -> tuple[int, Any]:
    async with aiohttp.ClientSession() as http, http.get(f"http://127.0.0.1:{port}{path}") as resp:
        body = await (resp.json() if path != "/metrics" else resp.text())
        return resp.status, body


async def test_a_running_worker_serves_its_metrics_and_is_ready(world: World) -> None:
    worker = Worker(world.settings)
    stop = asyncio.Event()
    task = asyncio.create_task(worker.run(stop))
    try:
        for _ in range(200):
            if worker.metrics_port is not None and worker._consuming:
                break
            await asyncio.sleep(0.05)
        assert worker.metrics_port is not None
        status, text = await get(worker.metrics_port, "/metrics")
        assert status == 200
        for series in (
            "gateway_outbox_published_total",
            "gateway_deliveries_total",
            "gateway_partner_calls_total",
        ):
            assert series in text
        status, ready = await get(worker.metrics_port, "/readyz")
        assert status == 200, ready
        checks = ready["checks"]
        assert checks["database"] == {"status": "pass"} and checks["broker"] == {"status": "pass"}
        # The broker's health readings ride along (a pass whether or not the management API answers).
        assert checks["broker_health"]["status"] in ("pass", "warn")
        assert checks["broker_health"]["readings"] in ("management API", "unknown")
        assert isinstance(ready["warnings"], list)
    finally:
        stop.set()
        await asyncio.wait_for(task, 30)
        await delete_topology(world)


async def test_worker_readiness_names_the_failing_check(world: World) -> None:
    db = Database("postgresql+asyncpg://gateway@127.0.0.1:9/gateway")  # refuses connections
    runner = await worker_http.start(worker_http.make_app(db, lambda: False), "127.0.0.1", 0)
    assert runner is not None
    try:
        status, ready = await get(int(runner.addresses[0][1]), "/readyz")
        assert status == 503
        assert ready["failing"] == ["broker", "database"]
    finally:
        await runner.cleanup()
        await db.dispose()


async def test_a_taken_port_leaves_the_worker_running_without_metrics(world: World) -> None:
    db = Database(world.settings.resolved_database_url)
    first = await worker_http.start(worker_http.make_app(db, lambda: True), "127.0.0.1", 0)
    assert first is not None
    try:
        port = int(first.addresses[0][1])
        assert await worker_http.start(worker_http.make_app(db, lambda: True), "127.0.0.1", port) is None
    finally:
        await first.cleanup()
        await db.dispose()
