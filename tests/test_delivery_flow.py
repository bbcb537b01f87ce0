"""End to end over the real broker: a pushed judgment reaches the case system's queue once, is
confirmed, and its timeline shows every step."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aio_pika
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient

from gateway.security.keys import b64url_decode
from gateway.worker.main import Worker
from gateway.worker.webhook import signing_input
from tests.conftest import World, fresh_judgment, make_world
from tests.support.gateway_procs import delete_topology

pytestmark = pytest.mark.rabbitmq
BROKER = "amqp://guest:guest@127.0.0.1:5672/"


@pytest.fixture
async def worker(world: World) -> AsyncIterator[Worker]:
    stop = asyncio.Event()
    w = Worker(world.settings)
    task = asyncio.create_task(w.run(stop))
    yield w
    stop.set()
    await asyncio.wait_for(task, 30)
    await delete_topology(world)


async def drain(
    queue_name: str, expect: int, timeout: float = 20
) -> list[aio_pika.abc.AbstractIncomingMessage]:
    """Read ``expect`` messages from a queue (waiting for it to exist), plus any extra that arrive soon."""
    conn = await aio_pika.connect(BROKER)
    got: list[aio_pika.abc.AbstractIncomingMessage] = []
    async with conn:
        deadline = asyncio.get_running_loop().time() + timeout
        while True:
            ch = await conn.channel()
            try:
                queue = await ch.declare_queue(queue_name, passive=True)
                break
            except aio_pika.exceptions.ChannelClosed:
                assert asyncio.get_running_loop().time() < deadline, f"queue {queue_name} never appeared"
                await asyncio.sleep(0.2)
        while len(got) < expect and asyncio.get_running_loop().time() < deadline:
            msg = await queue.get(fail=False, no_ack=True)
            if msg is None:
                await asyncio.sleep(0.05)
            else:
                got.append(msg)
        await asyncio.sleep(0.5)
        while (msg := await queue.get(fail=False, no_ack=True)) is not None:
            got.append(msg)
    return got


async def wait_status(
    api: TestClient[Any, Any], world: World, message_id: str, status: str
) -> dict[str, Any]:
    for _ in range(200):
        view = await (await api.get(f"/v1/messages/{message_id}", headers=world.court_headers())).json()
        if view["status"] == status:
            return dict(view)
        await asyncio.sleep(0.05)
    raise AssertionError(f"{message_id} stuck in {view['status']}")


async def test_judgment_reaches_case_system_queue_once_then_is_confirmed(
    api: TestClient[Any, Any], world: World, worker: Worker
) -> None:
    doc = fresh_judgment()
    resp = await api.post("/v1/judgments", json=doc, headers=world.court_headers())
    assert resp.status == 202
    await api.post("/v1/judgments", json=doc, headers=world.court_headers())  # duplicate push

    got = await drain(world.case_queue, expect=1)
    assert [m.message_id for m in got] == [doc["message_id"]]
    assert json.loads(got[0].body) == doc
    assert got[0].delivery_mode == aio_pika.DeliveryMode.PERSISTENT

    await wait_status(api, world, doc["message_id"], "delivered")
    confirm = await api.post(
        f"/v1/messages/{doc['message_id']}/confirmation",
        json={"case_ref": "THA-HN-2026-000123"},
        headers=world.case_headers(),
    )
    assert confirm.status == 200, await confirm.text()
    view = await wait_status(api, world, doc["message_id"], "confirmed")
    assert view["case_ref"] == "THA-HN-2026-000123"
    events = [e["event"] for e in view["timeline"]]
    assert events[0] == "accepted" and events[-1] == "confirmed"
    assert {"delivered", "duplicate_push"} <= set(events)
    # One hop: the publish to the case system's own queue is the delivery (no "queued" before it).
    assert "queued" not in events

    again = await api.post(
        f"/v1/messages/{doc['message_id']}/confirmation",
        json={"case_ref": "THA-HN-2026-999999"},
        headers=world.case_headers(),
    )
    assert again.status == 409


async def test_court_cannot_confirm_and_strangers_cannot_read(
    api: TestClient[Any, Any], world: World, worker: Worker
) -> None:
    doc = fresh_judgment()
    await api.post("/v1/judgments", json=doc, headers=world.court_headers())
    await wait_status(api, world, doc["message_id"], "delivered")
    resp = await api.post(
        f"/v1/messages/{doc['message_id']}/confirmation",
        json={"case_ref": "THA-HN-2026-000001"},
        headers=world.court_headers(),
    )
    assert resp.status == 403


class Receiver:
    """A case system that takes documents by webhook; fails the first ``fail_first`` calls."""

    def __init__(self, fail_first: int = 0) -> None:
        self.calls: list[dict[str, Any]] = []
        self.fail_first = fail_first

    async def handle(self, request: web.Request) -> web.Response:
        body = await request.read()
        self.calls.append({"headers": dict(request.headers), "body": body})
        if len(self.calls) <= self.fail_first:
            return web.Response(status=503)
        return web.json_response({"ok": True})


async def test_webhook_delivery_is_signed_and_retried_until_acknowledged(
    tmp_path: Path, fresh_database_url: str, aiohttp_client: Any, aiohttp_server: Any
) -> None:
    receiver = Receiver(fail_first=2)
    app = web.Application()
    app.router.add_post("/hook", receiver.handle)
    server = await aiohttp_server(app)
    world = make_world(
        tmp_path,
        fresh_database_url,
        deliver_to=str(server.make_url("/hook")),
        delivery={"retry_delays_seconds": [0.2, 0.4], "max_attempts": 10},
    )
    from gateway.web.app import create_app

    api = await aiohttp_client(create_app(world.settings))
    stop = asyncio.Event()
    task = asyncio.create_task(Worker(world.settings).run(stop))
    try:
        doc = fresh_judgment()
        assert (await api.post("/v1/judgments", json=doc, headers=world.court_headers())).status == 202
        view = await wait_status(api, world, doc["message_id"], "delivered")
        assert len(receiver.calls) == 3
        assert [e["event"] for e in view["timeline"]].count("delivery_failed") == 2
        last = receiver.calls[-1]
        assert last["headers"]["Gateway-Message-Id"] == doc["message_id"]
        assert last["headers"]["Gateway-Delivery-Attempt"] == "3"
        keys = await (await api.get("/v1/keys")).json()
        sig = dict(p.split("=", 1) for p in last["headers"]["Gateway-Signature"].split(","))
        (jwk,) = [k for k in keys["keys"] if k["kid"] == sig["keyid"]]
        from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

        Ed25519PublicKey.from_public_bytes(b64url_decode(jwk["x"])).verify(
            b64url_decode(sig["sig"]),
            signing_input(last["headers"]["Gateway-Timestamp"], doc["message_id"], last["body"]),
        )
    finally:
        stop.set()
        await asyncio.wait_for(task, 30)
        await delete_topology(world)
