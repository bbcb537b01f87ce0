"""Each worker writes its view of every partner to ``partner_health``: a partner simulator that stops
shows up there as an open breaker as soon as the breaker opens, with its calls, failures, latency and a
scrubbed last error; the rows are upserted, never duplicated, and go when the worker stops."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest
from sqlalchemy import select

from gateway.connectors.base import LookupRequest, Subject
from gateway.connectors.registry import build_connectors
from gateway.connectors.resilience import GuardedConnector, PartnerStats
from gateway.partners import Partner
from gateway.simulators.partners.servers import Partners, start_partners
from gateway.storage.database import Database
from gateway.storage.tables import partner_health
from gateway.worker.partner_health import PartnerHealthWriter
from tests.support.lookup_requests import STATED

CODE = "POLICE-VEH"
WORKER = "test-host:4242"


@pytest.fixture
async def simulators() -> AsyncIterator[Partners]:
    partners = await start_partners(error_rate=0.0, latency=(0.0, 0.001))
    yield partners
    await partners.close()  # a second close (after a test stopped them) is harmless


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as http:
        yield http


async def guard(endpoint: str, session: aiohttp.ClientSession, monkeypatch: pytest.MonkeyPatch) -> Any:
    monkeypatch.setenv("GATEWAY_SECRET_TEST_VEH", "simulator-token")
    partner = Partner(
        code=CODE,
        kind="vehicle",
        protocol="rest",
        endpoint=endpoint,
        timeout_seconds=2,
        credentials="GATEWAY_SECRET_TEST_VEH",
        retry={"attempts": 1, "min_seconds": 0.01, "max_seconds": 0.02},
        breaker={"failures": 3, "recovery_seconds": 60},
    )
    connectors = await build_connectors([partner], session)
    return GuardedConnector(partner, connectors[CODE])


def lookup(n: int) -> LookupRequest:
    return LookupRequest(
        request_ref=f"req-health-{n}",
        inquiry_id="inq-health",
        source_id="vehicle",
        partner_code=CODE,
        kind="vehicle",
        subject=Subject(id_number="001085012345"),
        case_ref="THA-2026-001",
        purpose="civil_judgment_enforcement",
        **STATED,
    )


async def rows(db: Database) -> list[Any]:
    async with db.read() as conn:
        return list((await conn.execute(select(partner_health))).all())


async def wait_for_row(db: Database, check: Any, timeout: float = 10) -> Any:
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        found = [r for r in await rows(db) if r.partner == CODE and check(r)]
        if found:
            return found[0]
        assert asyncio.get_running_loop().time() < deadline, await rows(db)
        await asyncio.sleep(0.05)


async def test_a_stopped_partner_is_open_in_the_table_as_soon_as_its_breaker_opens(
    db: Database,
    simulators: Partners,
    session: aiohttp.ClientSession,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    guarded = await guard(simulators.urls[CODE], session, monkeypatch)
    # A long interval: only the breaker's change can bring the row up to date within the wait below.
    writer = PartnerHealthWriter(db, {CODE: guarded}, worker=WORKER, interval_seconds=600)
    task = asyncio.create_task(writer.run())
    try:
        for n in range(2):
            assert (await guarded.call(lookup(n))).status == "found"
        await wait_for_row(db, lambda r: r.breaker == "closed")

        await simulators.close()  # the partner goes away
        outcomes = [(await guarded.call(lookup(n))).status for n in range(2, 6)]
        assert outcomes == ["unavailable"] * 4  # 3 refused connections open the breaker, then refused
        assert guarded.breaker_state() == "open"

        row = await wait_for_row(db, lambda r: r.breaker == "open")
        assert row.worker == WORKER
        assert row.calls == 6 and row.failures == 4
        assert row.p50_ms is not None and row.p95_ms is not None and row.p50_ms <= row.p95_ms
        assert row.in_flight == 0
        assert row.last_error and row.last_error.startswith("unavailable")
        assert row.last_error_at is not None
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
    assert await rows(db) == []  # a worker that stops takes its view with it


async def test_snapshots_are_upserted_one_row_per_partner_and_worker(
    db: Database, simulators: Partners, session: aiohttp.ClientSession, monkeypatch: pytest.MonkeyPatch
) -> None:
    guarded = await guard(simulators.urls[CODE], session, monkeypatch)
    first = PartnerHealthWriter(db, {CODE: guarded}, worker=WORKER)
    other = PartnerHealthWriter(db, {CODE: guarded}, worker="other-host:1")
    await first.write_once()
    await other.write_once()
    assert (await guarded.call(lookup(1))).status == "found"
    await first.write_once()

    by_worker = {r.worker: r for r in await rows(db)}
    assert set(by_worker) == {WORKER, "other-host:1"}
    assert (by_worker[WORKER].calls, by_worker["other-host:1"].calls) == (1, 0)


def test_the_window_forgets_old_calls_and_scrubs_errors() -> None:
    clock = [1000.0]
    stats = PartnerStats(window_seconds=300, clock=lambda: clock[0])
    stats.record(0.010, None)
    stats.record(0.030, "error: partner said id 001085012345 is unknown")
    stats.record(None, "unavailable: circuit open for X")  # refused by the breaker: no new last error
    snap = stats.snapshot("X", "closed")
    assert (snap.calls, snap.failures, snap.p50_ms, snap.p95_ms) == (3, 2, 10, 30)
    assert snap.last_error is not None and "001085012345" not in snap.last_error
    assert "001*******45" in snap.last_error

    clock[0] += 301
    later = stats.snapshot("X", "closed")
    assert (later.calls, later.failures, later.p50_ms) == (0, 0, None)
    assert later.last_error == snap.last_error  # the last error stays until a newer one
