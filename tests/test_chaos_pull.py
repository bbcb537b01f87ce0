"""Promise, for a partner in pull mode: nothing lost, nothing executed twice by the partner, nothing stuck,
when the worker storing its items is SIGKILLed mid-drain, and when the partner itself is SIGKILLed
mid-batch (its leased items come back after the lease)."""

from __future__ import annotations

import asyncio
import collections
import json
import signal
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import tomli_w
from sqlalchemy import func, select

from gateway.amqp.names import Names
from gateway.security.clients import ClientStore
from gateway.security.keys import public_pem, write_keypair
from gateway.storage.database import Database
from gateway.storage.tables import messages, partner_pulls
from tests.conftest import ROOT, World, make_world
from tests.support import orders
from tests.support.gateway_procs import GatewayProcesses, delete_topology

pytestmark = [pytest.mark.rabbitmq, pytest.mark.chaos, pytest.mark.timeout(300)]

BANK = "BANK-VPB"
N = 300
LEASE = 5


@pytest.fixture
async def pull_gateway(tmp_path: Path, fresh_database_url: str) -> AsyncIterator[GatewayProcesses]:
    world = make_world(tmp_path, fresh_database_url)
    block = {"code": BANK, "kind": "bank", "protocol": "rest", "delivery": "pull", "lease_seconds": LEASE}
    (world.settings.config_dir / "partners.toml").write_text(tomli_w.dumps({"partner": [block]}), "utf-8")
    store = ClientStore(world.settings.clients_dir)
    store.add(
        world.case_system.id,
        public_pem(world.case_system.key.public_key()),
        ["messages.read", "messages.confirm", "documents.send"],
        deliver_to=f"amqp:{world.case_queue}",
    )
    _, public = write_keypair(tmp_path / "keys", BANK)
    store.add(BANK, public.read_bytes(), ["partner.pull", "assets.answer", "documents.send", "messages.read"])
    procs = GatewayProcesses(world, tmp_path / "logs")
    yield procs
    procs.stop_all()
    names = Names(world.settings.broker_namespace)
    await delete_topology(world, names.partner_queues([BANK]))


async def send_orders(procs: GatewayProcesses) -> set[str]:
    sent: set[str] = set()
    async with aiohttp.ClientSession() as http:
        for n in range(N):
            document = orders.blocking(BANK, 1_000_000 + n)
            document["body"]["decision"] = orders.DECISION | {"number": f"{n + 1}/QĐ-CCTHADS"}
            async with http.post(
                procs.url + "/v1/documents", json=document, headers=procs.world.case_headers()
            ) as resp:
                assert resp.status == 202, await resp.text()
            sent.add(document["message_id"])
    return sent


async def inbox(world: World) -> tuple[int, int, int]:
    """(items in the inbox, items handed out more than once, items acknowledged)."""
    db = Database(world.settings.resolved_database_url)
    try:
        async with db.read() as conn:
            total = (await conn.execute(select(func.count()).select_from(partner_pulls))).scalar_one()
            again = (await conn.execute(select(func.count()).where(partner_pulls.c.fetches > 1))).scalar_one()
            acked = (
                await conn.execute(select(func.count()).where(partner_pulls.c.state == "acknowledged"))
            ).scalar_one()
            return int(total), int(again), int(acked)
    finally:
        await db.dispose()


async def statuses(world: World) -> collections.Counter[str]:
    db = Database(world.settings.resolved_database_url)
    try:
        async with db.read() as conn:
            rows = await conn.execute(
                select(messages.c.status).where(messages.c.message_type == "order.account_blocking")
            )
            return collections.Counter(rows.scalars())
    finally:
        await db.dispose()


async def until(check: Any, timeout: float = 120, what: str = "", every: float = 0.2) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not await check():
        assert asyncio.get_running_loop().time() < deadline, what
        await asyncio.sleep(every)


def start_partner(procs: GatewayProcesses, journal: Path, pace: float) -> subprocess.Popen[bytes]:
    home = procs.world.settings.config_dir.parent
    key = home / "keys" / f"{BANK}.key"
    with (procs.logs / "partner.log").open("ab") as out:  # the child keeps its own descriptor
        return subprocess.Popen(
            [
                sys.executable,
                "-m",
                "tests.support.pull_partner",
                procs.url,
                str(key),
                str(journal),
                str(pace),
            ],
            cwd=ROOT,
            stdout=out,
            stderr=out,
        )


def executions(journal: Path) -> collections.Counter[str]:
    lines = journal.read_text("utf-8").splitlines() if journal.exists() else []
    return collections.Counter(json.loads(line)["item_id"] for line in lines if line.strip())


async def test_worker_killed_mid_drain_and_partner_killed_mid_batch(pull_gateway: GatewayProcesses) -> None:
    procs, world = pull_gateway, pull_gateway.world
    procs.start("api")
    await procs.wait_api()
    sent = await send_orders(procs)

    # The worker stores the items in the inbox; killed a third of the way, started again.
    procs.start("worker")
    await until(lambda: _at_least(world, N // 3), what="the worker never stored items", every=0.01)
    procs.kill("worker")
    stored_at_kill = (await inbox(world))[0]
    assert stored_at_kill < N, "the kill came too late to test anything"
    procs.start("worker")
    await until(lambda: _at_least(world, N), what="items lost by the killed worker")
    assert (await inbox(world))[0] == N  # one item per order, however often the queue repeated one

    # The partner takes batches of 20 and is killed in the middle of one.
    journal = procs.logs / f"journal-{uuid.uuid4().hex[:8]}.jsonl"
    partner = start_partner(procs, journal, pace=0.05)
    try:
        # Killed mid-batch: some of the batch executed, the rest still leased to it and unacknowledged (a
        # kill between two batches would leave nothing to come back, and prove nothing).
        await until(lambda: _mid_batch(journal, N // 3), what="the partner never executed", every=0.01)
        partner.send_signal(signal.SIGKILL)
        partner.wait(10)
        killed_after = sum(executions(journal).values())
        assert killed_after < N, "the kill came too late to test anything"
        partner = start_partner(procs, journal, pace=0.0)

        async def all_answered_and_acknowledged() -> bool:
            answered = (await statuses(world)).get("answered", 0) == N
            return answered and (await inbox(world))[2] == N

        await until(all_answered_and_acknowledged, timeout=180, what="orders or items stuck")
    finally:
        if partner.poll() is None:
            partner.send_signal(signal.SIGTERM)
            partner.wait(10)
    done = executions(journal)
    assert set(done) == sent, "an order was never executed"
    assert all(n == 1 for n in done.values()), "an order executed twice"
    total, again, _ = await inbox(world)
    assert total == N and again > 0, "the killed partner's leased items never came back"


async def _at_least(world: World, n: int) -> bool:
    return (await inbox(world))[0] >= n


async def _mid_batch(journal: Path, n: int) -> bool:
    """At least ``n`` executed, and at least two items of the current batch of 20 not yet."""
    executed = sum(executions(journal).values())
    return executed >= n and 0 < executed % 20 < 19
