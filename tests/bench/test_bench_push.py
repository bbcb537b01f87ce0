"""Benchmark: judgment pushes through the real api and worker processes (SQLite, local RabbitMQ).

Run with ``make bench``; prints accepted pushes per second, latency percentiles and the time until
the case system's queue has every document. Figures and the machine they came from go in
docs/benchmarks.md.
"""

from __future__ import annotations

import asyncio
import statistics
import time
from pathlib import Path

import aiohttp
import pytest

from tests.conftest import fresh_judgment, make_world
from tests.support.gateway_procs import CaseSystemQueue, GatewayProcesses, delete_topology

pytestmark = [pytest.mark.bench, pytest.mark.rabbitmq]
N = 2000
CONCURRENCY = 64


async def test_push_throughput_and_delivery_latency(tmp_path: Path) -> None:
    world = make_world(tmp_path, f"sqlite+aiosqlite:///{tmp_path}/gateway.db")
    procs = GatewayProcesses(world, tmp_path / "logs")
    procs.start("api")
    procs.start("worker")
    case_system = CaseSystemQueue(world.case_queue)
    try:
        await procs.wait_api()
        await case_system.start()
        docs = [fresh_judgment() for _ in range(N)]
        latencies: list[float] = []
        gate = asyncio.Semaphore(CONCURRENCY)
        headers = world.court_headers()
        async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=CONCURRENCY)) as http:

            async def push(doc: dict[str, object]) -> None:
                async with gate:
                    t0 = time.perf_counter()
                    async with http.post(f"{procs.url}/v1/judgments", json=doc, headers=headers) as resp:
                        assert resp.status == 202
                        await resp.read()
                    latencies.append(time.perf_counter() - t0)

            start = time.perf_counter()
            await asyncio.gather(*(push(d) for d in docs))
            accepted_in = time.perf_counter() - start
        await case_system.wait_for({str(d["message_id"]) for d in docs}, timeout=600)
        delivered_in = time.perf_counter() - start - 1.0  # wait_for lingers 1 s for stray copies
        q = statistics.quantiles(latencies, n=100)
        print(
            f"\nBENCH push: {N} judgments, concurrency {CONCURRENCY}: "
            f"{N / accepted_in:.0f} accepted/s; latency p50 {q[49] * 1000:.1f} ms, "
            f"p95 {q[94] * 1000:.1f} ms, p99 {q[98] * 1000:.1f} ms; "
            f"all on the case system's queue after {delivered_in:.1f} s "
            f"({N / delivered_in:.0f} delivered/s end to end)"
        )
    finally:
        await case_system.close()
        procs.stop_all()
        await delete_topology(world)
