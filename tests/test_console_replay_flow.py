"""End to end through the console: an order the bank could not take is parked by the worker; the
operator replays it from /ops/parking; the bank executes it once and the order is answered."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from gateway.amqp.names import Names
from tests.support import orders
from tests.support.console import depth_of, operator_client
from tests.support.lookup_world import running_gateway
from tests.support.order_flow import fresh, sim_counts, wait_for

pytestmark = pytest.mark.rabbitmq

BANK = "BANK-VCB"
FAST_GIVE_UP = {"delivery": {"retry_delays_seconds": [0.2], "max_attempts": 2}}


async def wait_depth(queue: str, expected: int, timeout: float = 10) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while (found := await depth_of(queue)) != expected:
        assert loop.time() < deadline, f"{queue}: {found}, expected {expected}"
        await asyncio.sleep(0.1)


async def test_an_order_replayed_from_the_console_is_executed_once(tmp_path: Path) -> None:
    async with running_gateway(tmp_path, settings=FAST_GIVE_UP) as (lw, api):
        names = Names(lw.settings.broker_namespace)
        queue = names.deliver(BANK)
        await lw.partners.set_mode("bank", "down")
        order = fresh(orders.blocking(BANK, 5_000_000))
        resp = await api.post("/v1/documents", json=order, headers=lw.world.case_headers())
        assert resp.status == 202, await resp.text()
        await wait_for(api, lw, order["message_id"], "failed")
        await wait_depth(names.parking(queue), 1)
        await lw.partners.set_mode("bank", "normal")

        csrf = await operator_client(api, lw.settings)
        page = await (await api.get(f"/ops/parking/{queue}")).text()
        assert f'data-message-id="{order["message_id"]}"' in page
        # The delivery gave up and rejected it into parking; the document says why.
        assert '<td class="reason">rejected</td>' in page
        assert (
            'class="status status-failed">failed</a>' in page and "not delivered after 2 attempt(s)" in page
        )
        done = await api.post(
            f"/ops/parking/{queue}",
            data={
                "csrf": csrf,
                "action": "replay",
                "message_id": order["message_id"],
                "reason": "bank is back",
            },
        )
        assert "replayed 1" in await done.text()

        answered = await wait_for(api, lw, order["message_id"], "answered", event="delivered")
        events = [e["event"] for e in answered["timeline"]]
        assert "replayed_from_parking" in events and "delivered" in events
        # The replay is timed when the message is put back, so it reads before the delivery it caused.
        replayed = events.index("replayed_from_parking")
        assert "delivered" in events[replayed:], events
        assert await sim_counts(lw, BANK) == {order["message_id"]: 1}
        await wait_depth(names.parking(queue), 0)
