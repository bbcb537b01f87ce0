"""An order the bank could not take is parked, and the operator's `run.py parking replay` sends it on:
the bank executes it once, the order is answered, and the case system gets the report once."""

from __future__ import annotations

import asyncio
import json
import sys
from collections import Counter
from pathlib import Path
from typing import Any

import aio_pika
import pytest

from gateway.amqp.names import Names
from gateway.amqp.parking import depth
from tests.conftest import ROOT
from tests.support import orders
from tests.support.gateway_procs import BROKER, GatewayProcesses
from tests.support.lookup_world import LookupWorld, running_gateway
from tests.support.order_flow import fresh, sim_counts, wait_for

pytestmark = pytest.mark.rabbitmq

BANK = "BANK-VCB"
FAST_GIVE_UP = {"delivery": {"retry_delays_seconds": [0.2], "max_attempts": 2}}


async def wait_depth(queue: str, expected: int, timeout: float = 10) -> None:
    connection = await aio_pika.connect_robust(BROKER)
    async with connection:
        deadline = asyncio.get_running_loop().time() + timeout
        while (found := await depth(connection, queue)) != expected:
            assert asyncio.get_running_loop().time() < deadline, f"{queue}: {found}, expected {expected}"
            await asyncio.sleep(0.1)


async def operator(lw: LookupWorld, home: Path, *args: str) -> str:
    """``python run.py <args>`` in the installation's environment, as an operator runs it."""
    env = GatewayProcesses(lw.world, home / "logs", port=lw.api_port).env()
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        str(ROOT / "run.py"),
        *args,
        env=env,
        cwd=ROOT,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(proc.communicate(), 60)
    assert proc.returncode == 0, err.decode()
    return out.decode()


async def drain(queue: str, quiet: float = 1.5, timeout: float = 15) -> list[dict[str, Any]]:
    """Everything on the case system's queue until it stays quiet for ``quiet`` seconds."""
    out: list[dict[str, Any]] = []
    connection = await aio_pika.connect(BROKER)
    async with connection:
        channel = await connection.channel()
        q = await channel.get_queue(queue)
        loop = asyncio.get_running_loop()
        deadline, quiet_until = loop.time() + timeout, loop.time() + quiet
        while loop.time() < quiet_until:
            assert loop.time() < deadline, "the case system's queue never went quiet"
            message = await q.get(fail=False)
            if message is None:
                await asyncio.sleep(0.1)
                continue
            await message.ack()
            out.append(json.loads(message.body) | {"_message_id": message.message_id})
            quiet_until = loop.time() + quiet
    return out


async def test_a_parked_order_is_replayed_by_the_operator_and_answered_once(tmp_path: Path) -> None:
    async with running_gateway(tmp_path, settings=FAST_GIVE_UP) as (lw, api):
        names = Names(lw.settings.broker_namespace)
        queue = names.deliver(BANK)
        parking = names.parking(queue)
        await lw.partners.set_mode("bank", "down")

        order = fresh(orders.blocking(BANK, 250_000_000))
        resp = await api.post("/v1/documents", json=order, headers=lw.world.case_headers())
        assert resp.status == 202, await resp.text()
        failed = await wait_for(api, lw, order["message_id"], "failed")
        assert "delivery_failed" in [e["event"] for e in failed["timeline"]]
        await wait_depth(parking, 1)

        await lw.partners.set_mode("bank", "normal")
        assert order["message_id"] not in await sim_counts(lw, BANK)
        moved = await operator(
            lw, tmp_path, "parking", "replay", "--queue", queue, "--reason", "bank is back"
        )
        assert f"moved 1 message(s) from {parking} back to {queue}" in moved
        await wait_depth(parking, 0)

        answered = await wait_for(api, lw, order["message_id"], "answered", event="delivered")
        events = [e["event"] for e in answered["timeline"]]
        assert events.count("failed") == 1 and "delivered" in events, events
        [reply] = answered["replies"]
        assert reply["message_type"] == "report.account_blocking" and reply["sender"] == BANK

        assert await sim_counts(lw, BANK) == {order["message_id"]: 1}
        received = await drain(lw.world.case_queue)
        reports = [d for d in received if d["message_type"].startswith("report.")]
        assert [(r["_message_id"], r["in_reply_to"]) for r in reports] == [
            (reply["message_id"], order["message_id"])
        ], Counter(d["message_type"] for d in received)
        assert reports[0]["body"]["total_blocked"] == 250_000_000
        await wait_for(api, lw, reply["message_id"], "delivered")


async def test_parking_list_shows_a_parked_order(tmp_path: Path) -> None:
    async with running_gateway(tmp_path, settings=FAST_GIVE_UP) as (lw, api):
        names = Names(lw.settings.broker_namespace)
        parking = names.parking(names.deliver(BANK))
        await lw.partners.set_mode("bank", "down")
        order = fresh(orders.blocking(BANK, 1_000_000))
        resp = await api.post("/v1/documents", json=order, headers=lw.world.case_headers())
        assert resp.status == 202, await resp.text()
        await wait_for(api, lw, order["message_id"], "failed")
        await wait_depth(parking, 1)

        listing = await operator(lw, tmp_path, "parking", "list")
        rows = {line.split()[0]: line.split()[-1] for line in listing.splitlines() if line.strip()}
        assert rows.get(parking) == "1", listing
