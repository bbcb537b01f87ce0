"""Benchmark: asset inquiries for every source through the real api and worker processes and the
partner simulators (SQLite, local RabbitMQ). Prints inquiries and source answers per second."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from tests.support.gateway_procs import GatewayProcesses
from tests.support.lookup_world import LookupWorld, lookup_processes
from tests.test_chaos_lookups import N, check_results, submit_all, wait_final

pytestmark = [pytest.mark.bench, pytest.mark.rabbitmq]


@pytest.fixture
async def gateway(tmp_path: Path) -> AsyncIterator[tuple[LookupWorld, GatewayProcesses]]:
    async with lookup_processes(tmp_path) as started:
        yield started


async def test_lookup_throughput(gateway: tuple[LookupWorld, GatewayProcesses]) -> None:
    lw, procs = gateway
    start = time.perf_counter()
    submitted = await submit_all(lw, procs)
    accepted = time.perf_counter() - start
    await wait_final(lw)
    total = time.perf_counter() - start
    await check_results(lw, submitted)
    print(
        f"\nBENCH lookups: {N} inquiries x 9 sources: accepted in {accepted:.1f} s ({N / accepted:.0f}/s); "
        f"all complete after {total:.1f} s "
        f"({N / total:.1f} inquiries/s, {N * 9 / total:.0f} source answers/s)"
    )
