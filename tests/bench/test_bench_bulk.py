"""Benchmark ``45-bulk``: one bulk lookup of 1,000 debtors to 20 banks, beside 1,000 single lookups of the
same debtors to the same banks: time to the last answer, and the peak memory of the api and the worker."""

from __future__ import annotations

import asyncio
import copy
import functools
import json
import os
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from sqlalchemy import func, select

from gateway.storage.database import Database
from gateway.storage.tables import inquiries
from tests.bench.results import Row, Section, record
from tests.conftest import EXAMPLES, World
from tests.support.bench_lookups import CONCURRENCY, IDS, gateway_running, rss_mib, start_sims
from tests.test_asset_inquiry_flow import inquiry

# Two installations each making 20,000 partner calls: well past the suite's default 300 s on a busy machine.
pytestmark = [pytest.mark.bench, pytest.mark.rabbitmq, pytest.mark.timeout(3000)]
COMMAND = "make bench PYTEST_ARGS=tests/bench/test_bench_bulk.py"
#: 1,000 unless GATEWAY_BENCH_BULK_DEBTORS says otherwise (a quicker look).
DEBTORS = int(os.environ.get("GATEWAY_BENCH_BULK_DEBTORS", "1000"))
BANKS = 20
GIVE_UP_SECONDS = 1400


@dataclass
class Run:
    seconds: float
    api_rss_mib: float
    worker_rss_mib: float
    api_rss_before: float
    worker_rss_before: float

    def values(self) -> dict[str, Any]:
        return {
            "seconds": round(self.seconds, 1),
            "lookups_per_second": round(DEBTORS * BANKS / self.seconds, 1),
            "api_peak_rss_mib": round(self.api_rss_mib, 1),
            "worker_peak_rss_mib": round(self.worker_rss_mib, 1),
            "api_rss_before_mib": round(self.api_rss_before, 1),
            "worker_rss_before_mib": round(self.worker_rss_before, 1),
        }

    def figure(self) -> str:
        return (
            f"{self.seconds:.1f} s to the last answer ({DEBTORS * BANKS / self.seconds:.0f} bank lookups/s); "
            f"peak RSS api {self.api_rss_mib:.0f} MiB, worker {self.worker_rss_mib:.0f} MiB "
            f"(at rest {self.api_rss_before:.0f} / {self.worker_rss_before:.0f})"
        )


def bulk_body() -> dict[str, Any]:
    example = json.loads(
        (EXAMPLES / "asset-inquiry-bulk" / "valid-three-debtors-banks-and-tax.json").read_text("utf-8")
    )
    title = example["debtors"][0]["title"]
    body: dict[str, Any] = copy.deepcopy(example) | {"sources": ["bank"]}
    body["debtors"] = [
        {
            "id_number": IDS[i % len(IDS)],
            "full_name": "Nguyễn Văn An",
            "case_ref": f"THA-HN-2026-{i:06d}",
            "title": title,
        }
        for i in range(DEBTORS)
    ]
    return body


async def measured(pids: tuple[int, int], work: Callable[[], Awaitable[None]]) -> Run:
    """``work`` timed, with the api's and the worker's RSS sampled every 0.2 s while it runs."""
    api_pid, worker_pid = pids
    before = (rss_mib(api_pid), rss_mib(worker_pid))
    peaks = list(before)
    stop = asyncio.Event()

    async def sample() -> None:
        while not stop.is_set():
            peaks[0] = max(peaks[0], rss_mib(api_pid))
            peaks[1] = max(peaks[1], rss_mib(worker_pid))
            await asyncio.sleep(0.2)

    sampler = asyncio.create_task(sample())
    started = time.perf_counter()
    try:
        await work()
    finally:
        elapsed = time.perf_counter() - started
        stop.set()
        await sampler
    return Run(elapsed, peaks[0], peaks[1], before[0], before[1])


async def complete_inquiries(database_url: str) -> int:
    db = Database(database_url)
    try:
        async with db.read() as conn:
            stmt = select(func.count()).select_from(inquiries).where(inquiries.c.status == "complete")
            return int((await conn.execute(stmt)).scalar_one())
    finally:
        await db.dispose()


async def singles(url: str, world: World, database_url: str) -> None:
    """1,000 single inquiries to every bank, at the lookup benchmarks' concurrency; done when all are
    complete (read from the database, not by polling each)."""
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=CONCURRENCY)) as http:
        queue = list(range(DEBTORS))

        async def client() -> None:
            while queue:
                i = queue.pop()
                body = inquiry(IDS[i % len(IDS)], sources=["bank"], case_ref=f"THA-HN-2026-{i:06d}")
                async with http.post(
                    f"{url}/v1/asset-inquiries", json=body, headers=world.case_headers()
                ) as r:
                    assert r.status == 202, await r.text()

        await asyncio.gather(*(client() for _ in range(CONCURRENCY)))
    give_up = time.monotonic() + GIVE_UP_SECONDS
    while await complete_inquiries(database_url) < DEBTORS:
        assert time.monotonic() < give_up, "the single lookups did not all complete"
        await asyncio.sleep(0.25)


async def one_bulk(url: str, world: World) -> None:
    """One bulk of 1,000 debtors to every bank; done when the bulk says ``complete`` (progress polled)."""
    async with aiohttp.ClientSession() as http:
        async with http.post(
            f"{url}/v1/bulk-asset-inquiries", json=bulk_body(), headers=world.case_headers()
        ) as r:
            assert r.status == 202, await r.text()
            location = r.headers["Location"]
        give_up = time.monotonic() + GIVE_UP_SECONDS
        while True:
            async with http.get(f"{url}{location}?limit=0", headers=world.case_headers()) as r:
                view = await r.json()
            if view["status"] == "complete":
                assert view["progress"]["sources"] == {
                    "total": DEBTORS * BANKS,
                    "answered": DEBTORS * BANKS,
                    "pending": 0,
                }
                return
            assert time.monotonic() < give_up, f"the bulk did not complete: {view['progress']}"
            await asyncio.sleep(0.25)


async def test_a_bulk_of_1000_debtors_against_1000_single_lookups(tmp_path: Path) -> None:
    began = time.perf_counter()
    sims = await start_sims()
    runs: dict[str, Run] = {}
    try:
        for name in ("single", "bulk"):
            home = tmp_path / name
            database_url = f"sqlite+aiosqlite:///{home}/gateway.db"
            async with gateway_running(home, database_url, sims, BANKS, others=False) as (install, procs):
                pids = (procs.pid("api"), procs.pid("worker"))
                if name == "single":
                    work = functools.partial(singles, procs.url, install.world, database_url)
                else:
                    work = functools.partial(one_bulk, procs.url, install.world)
                runs[name] = await measured(pids, work)
            print(f"\nBENCH {name}: {runs[name].figure()}")
    finally:
        await sims.close()
    single, bulk = runs["single"], runs["bulk"]
    ratio = round(bulk.seconds / single.seconds, 2)
    record(
        Section(
            key="45-bulk",
            title=f"A bulk lookup of {DEBTORS:,} debtors against {DEBTORS:,} single lookups",
            command=COMMAND,
            rows=[
                Row(
                    name=f"{DEBTORS:,} single lookups, {BANKS} banks each",
                    figure=single.figure(),
                    values=single.values(),
                ),
                Row(
                    name=f"One bulk of {DEBTORS:,} debtors, {BANKS} banks each",
                    figure=bulk.figure(),
                    reference=f"{DEBTORS:,} single lookups: {single.seconds:.1f} s",
                    ratio=ratio,
                    target="no slower than the same lookups one by one (ratio ≤ 1.1); worker memory bounded",
                    met=ratio <= 1.1,
                    values=bulk.values() | {"ratio_to_single": ratio},
                ),
            ],
            notes=[
                f"Each run is its own installation (real api and worker processes, SQLite) with {BANKS} bank "
                "partners, all on the bank simulator's synchronous paths answering at once; every lookup "
                f'asks every bank (`sources: ["bank"]`): {DEBTORS * BANKS:,} partner calls a run.',
                f"Single lookups: {DEBTORS} `POST /v1/asset-inquiries` at concurrency {CONCURRENCY} (202 at "
                "once), timed from the first request to the last inquiry `complete` (read in the database). "
                "Bulk: one `POST /v1/bulk-asset-inquiries`, timed to the bulk's `complete` (progress polled "
                "every 0.25 s with `limit=0`); the worker expands it 50 debtors per transaction.",
                "Peak RSS sampled every 0.2 s while each run lasts; 'at rest' is before the first request.",
                "Batches are not in these figures: these banks declare no `batch_size`, so the worker calls "
                "each bank once per lookup.",
                f"Section duration: {time.perf_counter() - began:.0f} s.",
            ],
        )
    )
