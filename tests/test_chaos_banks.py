"""Promise: a lookup to many banks survives its worker being SIGKILLed, twice, in the middle of the load:
every inquiry ends complete, every bank's answer is recorded once (one answer per request_ref, one
``assets.result`` audit record per source), none is stuck, and nothing of the installation is left on
the broker. 30 banks by default (the development broker's descriptor limit); GATEWAY_CHAOS_BANKS=100 runs
it at a whole country's banks."""

from __future__ import annotations

import asyncio
import collections
import json
import os
from pathlib import Path

import aiohttp
import pytest
from sqlalchemy import func, select

from gateway.simulators.partners import banks
from gateway.storage.database import Database
from gateway.storage.tables import audit_log, inquiries, inquiry_sources
from tests.support.bench_lookups import (
    BenchProcesses,
    Install,
    broker_figures,
    gateway_running,
    install_leftovers,
    start_sims,
    step_queues,
    too_many_for_the_broker,
)
from tests.support.databases import scratch_database
from tests.support.load import post_until_taken
from tests.test_asset_inquiry_flow import inquiry

pytestmark = [pytest.mark.rabbitmq, pytest.mark.chaos]
BANKS = int(os.environ.get("GATEWAY_CHAOS_BANKS", "30"))
INQUIRIES = 40
IDS = ["001085012345", "001090000000", "001079000001"] + [f"0010{n:08d}" for n in range(1, 40)]


async def submit_all(install: Install, procs: BenchProcesses) -> dict[str, str]:
    """POST the inquiries concurrently, each asking every bank; inquiry id -> debtor ID number."""
    out: dict[str, str] = {}
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=20)) as http:

        async def one(i: int) -> None:
            id_number = IDS[i % len(IDS)]
            body = inquiry(id_number, sources=["bank"])
            url = f"{procs.url}/v1/asset-inquiries"
            answer = await post_until_taken(http, url, body, install.world.case_headers)
            out[answer["inquiry_id"]] = id_number

        await asyncio.gather(*(one(i) for i in range(INQUIRIES)))
    return out


async def answered(db: Database) -> int:
    async with db.read() as conn:
        query = select(func.count()).select_from(inquiry_sources).where(inquiry_sources.c.status != "pending")
        return int((await conn.execute(query)).scalar_one())


async def wait_answered(db: Database, at_least: int, procs: BenchProcesses, timeout: float = 300) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while await answered(db) < at_least:
        assert procs.procs["worker"].poll() is None, "the worker died on its own"
        assert asyncio.get_running_loop().time() < deadline, f"fewer than {at_least} answers in {timeout} s"
        await asyncio.sleep(0.05)


async def wait_final(db: Database, timeout: float = 600) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        async with db.read() as conn:
            query = (
                select(func.count())
                .select_from(inquiries)
                .where(inquiries.c.status.in_(["pending", "partial"]))
            )
            still_open = (await conn.execute(query)).scalar_one()
        if still_open == 0:
            return
        assert asyncio.get_running_loop().time() < deadline, f"{still_open} inquiries stuck open"
        await asyncio.sleep(0.5)


async def check_results(db: Database, submitted: dict[str, str]) -> None:
    async with db.read() as conn:
        statuses = collections.Counter((await conn.execute(select(inquiries.c.status))).scalars())
        sources = (await conn.execute(select(inquiry_sources))).all()
        audited = (
            (await conn.execute(select(audit_log.c.data).where(audit_log.c.action == "assets.result")))
            .scalars()
            .all()
        )
    assert statuses == {"complete": INQUIRIES}
    # One source per bank per inquiry, each under its own request_ref, every one answered.
    assert len(sources) == INQUIRIES * BANKS
    assert len({s.request_ref for s in sources}) == len(sources)
    assert collections.Counter(s.inquiry_id for s in sources) == dict.fromkeys(submitted, BANKS)
    assert all(s.status in ("found", "not_found") for s in sources), collections.Counter(
        s.status for s in sources
    )
    # One recorded answer per source, whatever was redelivered or asked twice across the kills.
    results = collections.Counter((json.loads(r)["source"], json.loads(r)["request_sha256"]) for r in audited)
    assert max(results.values()) == 1
    assert set(results) == {(s.source_id, s.request_sha256) for s in sources}
    # And the answer recorded is the bank's.
    for s in sources:
        status, accounts = banks.accounts(s.partner_code, submitted[s.inquiry_id])
        assert s.match_status == status, (s.source_id, submitted[s.inquiry_id])
        assert len(json.loads(s.rows or "[]")) == len(accounts), (s.source_id, submitted[s.inquiry_id])


async def test_worker_killed_twice_during_lookups_to_many_banks(tmp_path: Path) -> None:
    # A broker whose descriptor limit cannot hold this many banks' queues beside what it holds already
    # would wedge under the test (and under everyone sharing it): say so instead.
    too_many = too_many_for_the_broker(step_queues(BANKS, {}), broker_figures())
    if too_many is not None:
        pytest.skip(f"{BANKS} banks: {too_many}")
    sims = await start_sims()
    try:
        with scratch_database(tmp_path) as url:
            async with gateway_running(tmp_path, url, sims, BANKS, others=False) as (install, procs):
                db = Database(url)
                try:
                    submitted = await submit_all(install, procs)
                    total = INQUIRIES * BANKS
                    for share in (4, 2):  # kill once a quarter is answered, again at half
                        await wait_answered(db, total // share, procs)
                        procs.kill("worker")
                        # Killed with work in hand, or the test proves nothing.
                        assert await answered(db) < total, "every bank had answered before the kill"
                        procs.start_as("worker", "worker")
                    await wait_final(db)
                    await check_results(db, submitted)
                finally:
                    await db.dispose()
            # Torn down (queues and exchanges deleted even on failure): nothing of it stays on the broker.
            assert await install_leftovers(install) == []
    finally:
        await sims.close()
