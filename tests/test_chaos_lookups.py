"""Acceptance for lookups through the real api and worker processes and the partner simulators:
500 inquiries for every source end complete with results matching the seeded data; a worker
SIGKILLed mid-run leaves nothing pending and no source answered twice."""

from __future__ import annotations

import asyncio
import collections
import json
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest
from sqlalchemy import func, select

from gateway.simulators.partners import seed
from gateway.storage.database import Database
from gateway.storage.tables import audit_log, inquiries, inquiry_sources
from tests.support.gateway_procs import GatewayProcesses
from tests.support.load import post_until_taken
from tests.support.lookup_world import PARTNER_CODES, LookupWorld, lookup_processes
from tests.test_asset_inquiry_flow import inquiry

pytestmark = [pytest.mark.rabbitmq, pytest.mark.chaos]
N = 500
IDS = ["001085012345", "001090000000", "001079000001"] + [f"0010{n:08d}" for n in range(1, 40)]


@pytest.fixture
async def gateway(tmp_path: Path) -> AsyncIterator[tuple[LookupWorld, GatewayProcesses]]:
    async with lookup_processes(tmp_path) as started:
        yield started


async def submit_all(lw: LookupWorld, procs: GatewayProcesses) -> dict[str, str]:
    """POST N inquiries concurrently; returns inquiry id -> debtor ID number."""
    headers = lw.world.case_headers  # a fresh token per request
    out: dict[str, str] = {}
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=50)) as http:

        async def one(i: int) -> None:
            id_number = IDS[i % len(IDS)]
            url = f"{procs.url}/v1/asset-inquiries"
            answer = await post_until_taken(http, url, inquiry(id_number), headers)
            out[answer["inquiry_id"]] = id_number

        await asyncio.gather(*(one(i) for i in range(N)))
    return out


async def wait_final(lw: LookupWorld, timeout: float = 600) -> None:
    db = Database(lw.settings.resolved_database_url)
    try:
        deadline = asyncio.get_running_loop().time() + timeout
        while True:
            async with db.read() as conn:
                open_ = (
                    await conn.execute(
                        select(func.count())
                        .select_from(inquiries)
                        .where(inquiries.c.status.in_(["pending", "partial"]))
                    )
                ).scalar_one()
            if open_ == 0:
                return
            assert asyncio.get_running_loop().time() < deadline, f"{open_} inquiries still open"
            await asyncio.sleep(1)
    finally:
        await db.dispose()


async def check_results(lw: LookupWorld, submitted: dict[str, str]) -> None:
    db = Database(lw.settings.resolved_database_url)
    try:
        async with db.read() as conn:
            statuses = collections.Counter((await conn.execute(select(inquiries.c.status))).scalars())
            sources = (await conn.execute(select(inquiry_sources))).all()
            results = (
                (await conn.execute(select(audit_log.c.data).where(audit_log.c.action == "assets.result")))
                .scalars()
                .all()
            )
    finally:
        await db.dispose()
    assert statuses == {"complete": N}
    assert len(sources) == N * len(PARTNER_CODES)
    assert all(s.status in ("found", "not_found") for s in sources)
    # One recorded answer per source, whatever was redelivered or called twice.
    answered = collections.Counter(
        (json.loads(r)["source"], json.loads(r)["request_sha256"]) for r in results
    )
    assert max(answered.values()) == 1 and len(answered) == len(sources)
    kinds = {"land": "parcels", "bank": "accounts", "tax": None, "vehicle": "vehicles", "population": None}
    for s in sources:
        id_number = submitted[s.inquiry_id]
        expected = seed.expected(s.kind, s.partner_code, {"id_number": id_number})
        assert s.match_status == expected["match_status"], (s.source_id, id_number)
        field = kinds[s.kind]
        if field and s.rows is not None:
            assert len(json.loads(s.rows)) == len(expected[field] or []), (s.source_id, id_number)


async def test_five_hundred_inquiries_all_sources(gateway: tuple[LookupWorld, GatewayProcesses]) -> None:
    lw, procs = gateway
    submitted = await submit_all(lw, procs)
    await wait_final(lw)
    await check_results(lw, submitted)


async def test_worker_killed_mid_run_nothing_pending_nothing_twice(
    gateway: tuple[LookupWorld, GatewayProcesses],
) -> None:
    lw, procs = gateway
    procs.kill("worker")
    submitted = await submit_all(lw, procs)
    procs.start("worker")
    db = Database(lw.settings.resolved_database_url)
    try:
        while True:  # kill again once a good share of answers is in
            async with db.read() as conn:
                done = (
                    await conn.execute(
                        select(func.count())
                        .select_from(inquiry_sources)
                        .where(inquiry_sources.c.status != "pending")
                    )
                ).scalar_one()
            if done >= N * len(PARTNER_CODES) // 4:
                break
            await asyncio.sleep(0.05)
    finally:
        await db.dispose()
    procs.kill("worker")
    procs.start("worker")
    await wait_final(lw)
    await check_results(lw, submitted)
