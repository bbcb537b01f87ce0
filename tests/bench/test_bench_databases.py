"""Benchmark ``90-databases``: the same intake and lookup runs on SQLite and on PostgreSQL."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from tests.bench.results import Row, Section, record
from tests.conftest import fresh_judgment
from tests.support.bench_lookups import (
    CONCURRENCY,
    Load,
    drive_lookups,
    gateway_running,
    lookup_sources,
    percentile,
    start_sims,
)
from tests.support.databases import create_pg_database, drop_pg_database, pg_url, require_postgres

pytestmark = [pytest.mark.bench, pytest.mark.rabbitmq, pytest.mark.postgres]
COMMAND = "make bench PYTEST_ARGS=tests/bench/test_bench_databases.py"
PUSHES = 600
PUSH_CONCURRENCY = 64


async def push_all(url: str, headers: dict[str, str]) -> tuple[float, list[float]]:
    """PUSHES fresh judgments at PUSH_CONCURRENCY; every one must be accepted (202)."""
    docs = [fresh_judgment() for _ in range(PUSHES)]
    latencies: list[float] = []
    gate = asyncio.Semaphore(PUSH_CONCURRENCY)
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=PUSH_CONCURRENCY)) as http:

        async def push(doc: dict[str, Any]) -> None:
            async with gate:
                t0 = time.perf_counter()
                async with http.post(f"{url}/v1/judgments", json=doc, headers=headers) as resp:
                    assert resp.status == 202, await resp.text()
                    await resp.read()
                latencies.append(time.perf_counter() - t0)

        start = time.perf_counter()
        await asyncio.gather(*(push(d) for d in docs))
        return time.perf_counter() - start, latencies


def intake_summary(seconds: float, latencies: list[float]) -> str:
    return (
        f"{PUSHES / seconds:.0f} accepted/s, p50 {percentile(latencies, 50) * 1000:.0f} ms, "
        f"p99 {percentile(latencies, 99) * 1000:.0f} ms ({PUSHES} at concurrency {PUSH_CONCURRENCY})"
    )


async def test_sqlite_and_postgresql(tmp_path: Path) -> None:
    require_postgres()
    began = time.perf_counter()
    sims = await start_sims()
    intake: dict[str, tuple[float, list[float]]] = {}
    lookups: dict[str, Load] = {}
    try:
        for backend in ("sqlite", "postgresql"):
            home = tmp_path / backend
            pg_name = None
            if backend == "sqlite":
                url = f"sqlite+aiosqlite:///{home}/gateway.db"
            else:
                pg_name = await create_pg_database()
                url = pg_url(pg_name)
            try:
                async with gateway_running(home, url, sims, 5) as (install, procs):
                    lookups[backend] = await drive_lookups(
                        procs.url, install.world, lookup_sources(9), warmup=1.5, hold=5.0
                    )
                    print(f"\nBENCH lookups x9 on {backend}: {lookups[backend].summary('inquiries')}")
                    intake[backend] = await push_all(procs.url, install.world.court_headers())
                    print(f"BENCH intake on {backend}: {intake_summary(*intake[backend])}")
            finally:
                if pg_name is not None:
                    await drop_pg_database(pg_name)
    finally:
        await sims.close()
    push_rate = {b: PUSHES / s for b, (s, _) in intake.items()}
    elapsed = time.perf_counter() - began
    record(
        Section(
            key="90-databases",
            title="SQLite against PostgreSQL",
            command=COMMAND,
            rows=[
                Row(
                    name="Intake on PostgreSQL",
                    figure=intake_summary(*intake["postgresql"]),
                    reference=f"SQLite: {intake_summary(*intake['sqlite'])}",
                    ratio=round(push_rate["postgresql"] / push_rate["sqlite"], 3),
                    values={
                        b: {
                            "per_second": round(push_rate[b], 1),
                            "p50_ms": round(percentile(lat, 50) * 1000, 1),
                            "p99_ms": round(percentile(lat, 99) * 1000, 1),
                            "pushes": PUSHES,
                            "concurrency": PUSH_CONCURRENCY,
                        }
                        for b, (_, lat) in intake.items()
                    },
                ),
                Row(
                    name="Lookups (9 sources) on PostgreSQL",
                    figure=lookups["postgresql"].summary("inquiries"),
                    reference=f"SQLite: {lookups['sqlite'].summary('inquiries')}",
                    ratio=round(lookups["postgresql"].rate / lookups["sqlite"].rate, 3),
                    values={b: load.values() for b, load in lookups.items()},
                ),
            ],
            notes=[
                "For each backend a fresh installation with one api and one worker process: SQLite in a "
                "file (WAL), PostgreSQL in a database created for the run on 127.0.0.1:5432 and dropped "
                "afterwards. The same runs on each, in the same order: lookups first (nine sources, the "
                f"simulators answering at once, closed loop at concurrency {CONCURRENCY}, 1.5 s warm-up, "
                f"5 s hold), then the intake: {PUSHES} fresh judgments pushed at concurrency "
                f"{PUSH_CONCURRENCY}, each timed to its 202 while the worker relays and delivers them.",
                "Ratio: PostgreSQL ÷ SQLite (higher is PostgreSQL faster). The intake is kept to "
                f"{PUSHES} judgments so that every section of `make bench` fits its time budget.",
                f"Section duration: {elapsed:.0f} s.",
            ],
        )
    )
