"""Following orders in tests: a decision of their own, their status, the case system's queue and what the
partner simulators executed."""

from __future__ import annotations

import asyncio
import json
import uuid
from typing import Any

import aio_pika
import aiohttp
from aiohttp.test_utils import TestClient

from tests.support.lookup_world import LookupWorld

Client = TestClient[Any, Any]
BROKER = "amqp://guest:guest@127.0.0.1:5672/"


def fresh(document: dict[str, Any]) -> dict[str, Any]:
    """A unique decision per test order: the same decision to the same bank is the same order."""
    document["body"]["decision"] = dict(
        document["body"]["decision"], number=f"{uuid.uuid4().int % 99999}/QĐ-CCTHADS"
    )
    return document


async def view(api: Client, lw: LookupWorld, message_id: str) -> dict[str, Any]:
    resp = await api.get(f"/v1/messages/{message_id}", headers=lw.world.case_headers())
    assert resp.status == 200, await resp.text()
    result: dict[str, Any] = await resp.json()
    return result


async def wait_for(
    api: Client,
    lw: LookupWorld,
    message_id: str,
    *statuses: str,
    timeout: float = 30,
    event: str | None = None,
) -> dict[str, Any]:
    """Until the message is in one of ``statuses`` (and its timeline has ``event``: a partner's answer at
    once is stored before the delivery that brought it is recorded, in the transaction after)."""
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        current = await view(api, lw, message_id)
        seen = {e["event"] for e in current["timeline"]}
        if current["status"] in statuses and (event is None or event in seen):
            return current
        assert asyncio.get_running_loop().time() < deadline, (
            f"still {current['status']}: {current['timeline']}"
        )
        await asyncio.sleep(0.1)


async def received(queue: str, expect: int, timeout: float = 15) -> list[dict[str, Any]]:
    """What the case system finds on its queue: exactly ``expect`` documents (then a short quiet time)."""
    out: list[dict[str, Any]] = []
    connection = await aio_pika.connect(BROKER)
    async with connection:
        channel = await connection.channel()
        q = await channel.get_queue(queue)
        deadline = asyncio.get_running_loop().time() + timeout
        quiet_until = None
        while True:
            message = await q.get(fail=False)
            now = asyncio.get_running_loop().time()
            if message is not None:
                await message.ack()
                out.append(json.loads(message.body))
                continue
            if len(out) >= expect:
                quiet_until = quiet_until or now + 1.0
                if now >= quiet_until:
                    return out
            assert now < deadline, f"{len(out)} of {expect} documents arrived"
            await asyncio.sleep(0.1)


async def sim_counts(lw: LookupWorld, path: str) -> dict[str, int]:
    url = f"{lw.partners.urls[path]}/_sim/orders"
    async with aiohttp.ClientSession() as http, http.get(url) as resp:
        counts: dict[str, int] = await resp.json()
        return counts
