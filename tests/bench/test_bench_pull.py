"""Section 70: a pull partner draining its inbox through the real ``run.py api`` (SQLite under tmp).

10,000 pending lookups of one pull bank are stored (as the worker's pull connector stores them: one
``partner_pulls`` row each, its source pending), then the partner drains them: fetch (``limit=100``),
acknowledge, again, with 4 loops at once, until a fetch comes back empty. Figure: items fetched and
acknowledged per second, against the same partner fetching without acknowledging (the fetch alone).

Then the partner is killed mid-batch: 2,000 more items, the partner takes 5 batches and acknowledges 3
before it dies; a new partner drains after the lease (5 s) has run out. Figures: how many items were handed
out again (exactly the two unacknowledged batches), none lost, none executed twice.
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from datetime import timedelta
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import tomli_w
from sqlalchemy import insert

from gateway.security.clients import ClientStore
from gateway.security.keys import generate_keypair, public_pem
from gateway.storage.database import Database
from gateway.storage.migrate import upgrade
from gateway.storage.tables import inquiries, inquiry_sources, partner_pulls
from gateway.storage.timestamps import now
from tests.bench.results import Row, Section, record
from tests.bench.support import BenchProcesses
from tests.conftest import Party, make_world

pytestmark = [pytest.mark.bench, pytest.mark.timeout(600)]

BANK = "BANK-VPB"
ITEMS = 10_000
KILLED_ITEMS = 2_000
LIMIT = 100
LOOPS = 4
LEASE_SECONDS = 5
TARGET_PER_S = 500.0
TARGET = f"≥ {TARGET_PER_S:.0f} items/s fetched and acknowledged"


async def seed(db: Database, n: int) -> None:
    """``n`` pending lookups of the pull bank, as the worker stores them (source row + inbox row)."""
    at = now()
    inquiry_id = str(uuid.uuid4())
    await _insert(
        db,
        inquiries,
        [
            dict(
                inquiry_id=inquiry_id,
                client_id="THADS-HN",
                request_sha256="0" * 64,
                case_ref="THA-HN-2026-000123",
                officer_id="001080000001",
                legal_basis="LTHADS-44",
                purpose="bench",
                priority="normal",
                debtor_ref="001*******45",
                debtor_pseudonym="0" * 64,
                status="pending",
                due_at=at + timedelta(days=3),
                created_at=at,
                updated_at=at,
            )
        ],
    )
    refs = [str(uuid.uuid4()) for _ in range(n)]
    payload = {
        "subject": {"id_number": "001085012345", "full_name": "Nguyễn Văn An", "date_of_birth": "1985-03-02"},
        "case_ref": "THA-HN-2026-000123",
        "officer_id": "001080000001",
        "legal_basis": "LTHADS-44",
        "purpose": "Verify enforcement conditions",
        "due_at": (at + timedelta(days=3)).isoformat(),
    }
    sources = [
        dict(
            inquiry_id=inquiry_id,
            source_id=f"bank:{BANK}#{i}",
            partner_code=BANK,
            kind="bank",
            request_ref=ref,
            request_sha256="0" * 64,
            status="pending",
            attempts=0,
            due_at=at + timedelta(days=3),
        )
        for i, ref in enumerate(refs)
    ]
    items = [
        dict(
            item_id=ref,
            partner=BANK,
            kind="lookup",
            priority=0,
            state="pending",
            payload=json.dumps({"request_ref": ref, **payload}, ensure_ascii=False),
            created_at=at,
            available_at=at,
            fetches=0,
        )
        for ref in refs
    ]
    for start in range(0, n, 1000):
        await _insert(db, inquiry_sources, sources[start : start + 1000])
        await _insert(db, partner_pulls, items[start : start + 1000])


async def _insert(db: Database, table: Any, rows: list[dict[str, Any]]) -> None:
    async with db.transaction() as conn:
        await conn.execute(insert(table), rows)


class Partner:
    """A pull partner's loops: fetch, (acknowledge), count what it executed."""

    def __init__(self, url: str, bank: Party, settings: Any) -> None:
        self.url = url
        self.headers = bank.headers(settings)  # tokens are not single-use in the bench (BENCH_ENV)
        self.executed: dict[str, int] = {}
        self.fetches = 0
        self.refetched = 0

    async def fetch(self, http: aiohttp.ClientSession) -> tuple[str, list[dict[str, Any]]]:
        params = {"limit": str(LIMIT), "wait": "0"}
        async with http.get(self.url + "/v1/partner-inbox", params=params, headers=self.headers) as resp:
            assert resp.status == 200, await resp.text()
            body = await resp.json()
        self.fetches += 1
        for item in body["items"]:
            self.refetched += item["fetches"] > 1
        return body["lease"], body["items"]

    def execute(self, items: list[dict[str, Any]]) -> None:
        for item in items:  # a real partner executes each item_id once: remembered across its restarts
            self.executed[item["item_id"]] = self.executed.get(item["item_id"], 0) + 1

    async def ack(self, http: aiohttp.ClientSession, lease: str, items: list[dict[str, Any]]) -> int:
        body = {"lease": lease, "items": [i["item_id"] for i in items]}
        async with http.post(
            self.url + "/v1/partner-inbox/acknowledgement", json=body, headers=self.headers
        ) as resp:
            assert resp.status == 200, await resp.text()
            return len((await resp.json())["acknowledged"])

    async def drain(self, http: aiohttp.ClientSession, acknowledge: bool = True) -> int:
        """Until a fetch comes back empty; items taken."""
        taken = 0
        while True:
            lease, items = await self.fetch(http)
            if not items:
                return taken
            taken += len(items)
            fresh = [i for i in items if i["item_id"] not in self.executed]
            self.execute(fresh)
            if acknowledge:
                assert await self.ack(http, lease, items) == len(items)


async def test_a_pull_partner_drains_its_inbox(tmp_path: Path) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path}/gateway.db"
    world = make_world(tmp_path, url, relay={"publish_from_api": False})
    block = {
        "code": BANK,
        "kind": "bank",
        "protocol": "rest",
        "delivery": "pull",
        "lease_seconds": LEASE_SECONDS,
    }
    (world.settings.config_dir / "partners.toml").write_text(tomli_w.dumps({"partner": [block]}), "utf-8")
    bank = Party(BANK, generate_keypair("ed25519"))
    ClientStore(world.settings.clients_dir).add(BANK, public_pem(bank.key.public_key()), ["partner.pull"])
    await upgrade(url)
    db = Database(url)
    procs = BenchProcesses(world, tmp_path / "logs", extra_env={"GATEWAY_RELAY__PUBLISH_FROM_API": "false"})
    procs.start("api")
    rows: list[Row] = []
    try:
        await procs.wait_api()
        async with aiohttp.ClientSession() as http:
            # The fetch alone: items leased, nothing acknowledged (the leases are then run out by hand).
            await seed(db, ITEMS)
            reader = Partner(procs.url, bank, world.settings)
            started = time.perf_counter()
            fetched_only = sum(await asyncio.gather(*(reader.drain(http, False) for _ in range(LOOPS))))
            fetch_rate = fetched_only / (time.perf_counter() - started)
            async with db.transaction() as conn:
                await conn.execute(partner_pulls.delete())
            # Fetch and acknowledge.
            await seed(db, ITEMS)
            partner = Partner(procs.url, bank, world.settings)
            started = time.perf_counter()
            drained = sum(await asyncio.gather(*(partner.drain(http) for _ in range(LOOPS))))
            seconds = time.perf_counter() - started
            rate = drained / seconds
            assert drained == ITEMS and all(n == 1 for n in partner.executed.values())
            rows.append(
                Row(
                    f"pull partner drains {ITEMS:,} lookups "
                    f"({LOOPS} loops, limit {LIMIT}, fetch + acknowledge)",
                    f"{rate:,.0f} items/s ({seconds:.1f} s, {partner.fetches} fetches)",
                    reference=f"fetch alone {fetch_rate:,.0f} items/s",
                    ratio=rate / fetch_rate if fetch_rate else None,
                    target=TARGET,
                    met=rate >= TARGET_PER_S,
                    values={
                        "items": ITEMS,
                        "seconds": round(seconds, 2),
                        "fetch_alone_per_s": round(fetch_rate),
                    },
                )
            )

            # Killed mid-batch: 5 batches taken, 3 acknowledged, then it is gone.
            await seed(db, KILLED_ITEMS)
            dying = Partner(procs.url, bank, world.settings)
            batches = [await dying.fetch(http) for _ in range(5)]
            for _lease, items in batches:
                dying.execute(items)
            for lease, items in batches[:3]:
                await dying.ack(http, lease, items)
            unacknowledged = sum(len(items) for _, items in batches[3:])
            # Its successor knows what it executed (a bank's ledger survives its process).
            successor = Partner(procs.url, bank, world.settings)
            successor.executed = dict(dying.executed)
            waited = time.perf_counter()
            early = await successor.drain(http)  # the rest, at once; the leased batches are not there yet
            while successor.refetched < unacknowledged:
                await asyncio.sleep(0.2)
                await successor.drain(http)
            waited = time.perf_counter() - waited
            assert await successor.drain(http) == 0
            assert len(successor.executed) == KILLED_ITEMS and all(
                n == 1 for n in successor.executed.values()
            )
            rows.append(
                Row(
                    f"partner killed mid-batch ({KILLED_ITEMS:,} items; "
                    f"5 batches of {LIMIT} taken, 3 acknowledged)",
                    f"{successor.refetched} items handed out again after the lease ({LEASE_SECONDS} s), "
                    f"all {KILLED_ITEMS:,} acknowledged, none executed twice",
                    reference=f"unacknowledged at the kill: {unacknowledged}",
                    ratio=successor.refetched / unacknowledged,
                    target="redelivered = unacknowledged, nothing lost",
                    met=successor.refetched == unacknowledged,
                    values={
                        "redelivered": successor.refetched,
                        "unacknowledged": unacknowledged,
                        "taken_at_once_by_the_successor": early,
                        "seconds_until_all_back": round(waited, 1),
                    },
                )
            )
    finally:
        procs.stop_all()
        await db.dispose()
    record(
        Section(
            key="70-pull",
            title="Pull mode: a partner draining its inbox through the real api",
            command="make bench PYTEST_ARGS=tests/bench/test_bench_pull.py",
            rows=rows,
            notes=[
                "One api process, SQLite under tmp; the items are lookups stored as the worker's pull "
                "connector stores them (source pending + inbox row). The partner executes nothing but "
                "counts what it would execute; its answers are not part of the figure.",
            ],
        )
    )
    for row in rows:
        print(row.name, "->", row.figure, "|", row.reference)
    assert all(row.met for row in rows), [r.figure for r in rows]
