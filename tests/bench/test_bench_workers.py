"""Benchmark ``80-workers``: lookup throughput with one worker process and with two."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from tests.bench.results import Row, Section, record
from tests.support.bench_lookups import (
    CONCURRENCY,
    drive_lookups,
    gateway_running,
    lookup_sources,
    start_sims,
    wait_consumers,
)

pytestmark = [pytest.mark.bench, pytest.mark.rabbitmq]
COMMAND = "make bench PYTEST_ARGS=tests/bench/test_bench_workers.py"


async def test_one_and_two_workers(tmp_path: Path) -> None:
    began = time.perf_counter()
    sims = await start_sims()
    try:
        url = f"sqlite+aiosqlite:///{tmp_path}/gateway.db"
        async with gateway_running(tmp_path, url, sims, 5) as (install, procs):
            one = await drive_lookups(procs.url, install.world, lookup_sources(9), warmup=1.5, hold=6.0)
            print(f"\nBENCH lookups x9, 1 worker: {one.summary('inquiries')}")
            procs.start_as("worker2", "worker")
            await wait_consumers(install, 2)
            two = await drive_lookups(procs.url, install.world, lookup_sources(9), warmup=1.5, hold=6.0)
            print(f"BENCH lookups x9, 2 workers: {two.summary('inquiries')}")
    finally:
        await sims.close()
    r = round(two.rate / one.rate, 3)
    elapsed = time.perf_counter() - began
    record(
        Section(
            key="80-workers",
            title="One worker process against two",
            command=COMMAND,
            rows=[
                Row(
                    name="Lookups (9 sources), 2 workers",
                    figure=two.summary("inquiries"),
                    reference=f"1 worker: {one.summary('inquiries')}",
                    ratio=r,
                    target="> 1× (a second worker adds throughput)",
                    met=r > 1.0,
                    values={"one": one.values(), "two": two.values()},
                )
            ],
            notes=[
                "One installation (SQLite, one api process), the simulators answering at once; nine "
                "sources per inquiry (land, tax, vehicle, population, five banks). The run with one "
                "worker comes first; a second `run.py worker` is then started and the same run repeated "
                "once both consume every partner queue. Workers compete on the same queues; each has "
                "its own 8 connection slots per partner.",
                f"Closed loop at concurrency {CONCURRENCY}, 1.5 s warm-up then a 6 s hold; latency from "
                "submission to the final `complete` answer.",
                "The machine has 2 cores shared by the api, the workers, the broker and the load "
                "generator with its simulators: a second worker cannot double anything here.",
                f"Section duration: {elapsed:.0f} s.",
            ],
        )
    )
