"""Status events end to end, so that nobody has to poll: the enforcement office subscribes its own queue,
the procuracy a signed webhook; an enforcement decision goes to the court and is copied to the procuracy.
Each subscriber gets every status change of the messages it sends or receives — in order, each once, the
webhook's signed with the gateway's key and retried when the receiver fails — and nothing of anyone else's."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from gateway.security.keys import b64url_decode
from gateway.worker.webhook import signing_input
from tests.support.flows_world import FlowsWorld, flows_world
from tests.support.gateway_procs import take_messages
from tests.test_procuracy_flow import copy_of, decision

pytestmark = pytest.mark.rabbitmq


class Receiver:
    """A subscriber's webhook: refuses its first call (the gateway must retry), then records each event."""

    def __init__(self) -> None:
        self.calls: list[tuple[dict[str, str], bytes]] = []
        self.refused = 0

    async def handle(self, request: web.Request) -> web.Response:
        body = await request.read()
        if self.refused == 0:
            self.refused += 1
            return web.Response(status=503)
        self.calls.append((dict(request.headers), body))
        return web.json_response({"stored": True})

    def events(self) -> list[dict[str, Any]]:
        return [json.loads(body) for _h, body in self.calls]


@pytest.fixture
async def flows(tmp_path: Path) -> AsyncIterator[FlowsWorld]:
    # The procuracy raises no recommendation here: the events are those of the decision and its copy.
    async with flows_world(tmp_path, recommend_every=0) as world:
        yield world


async def subscribe(flows: FlowsWorld, client: str, body: dict[str, Any]) -> dict[str, Any]:
    resp = await flows.api.post("/v1/subscriptions", json=body, headers=flows.headers(client))
    created: dict[str, Any] = await resp.json()
    assert resp.status == 201, created
    return created


async def drain(queue_name: str, final: set[str], timeout: float = 30) -> list[dict[str, Any]]:
    """The events on a subscriber's queue until each of ``final`` (message ids) has been confirmed."""

    def confirmed(got: list[dict[str, Any]]) -> bool:
        return not final - {e["message_id"] for e in got if e["status"] == "confirmed"}

    return await take_messages(queue_name, confirmed, timeout)


def assert_life(events: list[dict[str, Any]], message_id: str) -> None:
    """Received to confirmed, each change once and in order. ``queued`` may be skipped: a delivery can be
    recorded before the relay records the publish, and then the document never was ``queued``."""
    changes = [(e["previous_status"], e["status"]) for e in events if e["message_id"] == message_id]
    assert changes in (LIFE, SHORT_LIFE), changes


LIFE = [(None, "received"), ("received", "queued"), ("queued", "delivered"), ("delivered", "confirmed")]
SHORT_LIFE = [(None, "received"), ("received", "delivered"), ("delivered", "confirmed")]


async def test_a_queue_and_a_signed_webhook_get_every_status_change_of_their_own_messages(
    flows: FlowsWorld,
) -> None:
    receiver = Receiver()
    app = web.Application()
    app.router.add_post("/events", receiver.handle)
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    try:
        office = await subscribe(
            flows, "THADS-HN", {"kind": "queue", "message_types": ["decision.enforcement"]}
        )
        hook = await subscribe(flows, "VKS-HN", {"kind": "webhook", "url": str(server.make_url("/events"))})

        doc = decision()
        await flows.send(doc)
        the_copy = copy_of(flows, doc["message_id"])
        await flows.wait_for(doc["message_id"], "confirmed")
        await flows.wait_for(the_copy, "confirmed", client="VKS-HN")

        # The office sent both the decision and the copy made of it: every change of each, in order.
        seen = await drain(office["queue"], {doc["message_id"], the_copy})
        assert {e["message_id"] for e in seen} == {doc["message_id"], the_copy}
        assert_life(seen, doc["message_id"])
        assert_life(seen, the_copy)
        assert len({e["event_id"] for e in seen}) == len(seen)
        assert all("body" not in e for e in seen)  # metadata only, never the document

        # The procuracy receives the copy only: its events, signed, the refused call retried.
        deadline = asyncio.get_running_loop().time() + 30
        while not any(e["status"] == "confirmed" for e in receiver.events()):
            assert asyncio.get_running_loop().time() < deadline, receiver.events()
            await asyncio.sleep(0.1)
        await asyncio.sleep(0.5)
        events = receiver.events()
        assert {e["message_id"] for e in events} == {the_copy}
        assert_life(events, the_copy)
        assert receiver.refused == 1 and receiver.calls[0][0]["Gateway-Delivery-Attempt"] == "2"
        keys = {k["kid"]: k for k in (await (await flows.api.get("/v1/keys")).json())["keys"]}
        for headers, body in receiver.calls:
            sig = dict(part.split("=", 1) for part in headers["Gateway-Signature"].split(","))
            event_id = headers["Gateway-Message-Id"]
            assert event_id == json.loads(body)["event_id"]
            Ed25519PublicKey.from_public_bytes(b64url_decode(keys[sig["keyid"]]["x"])).verify(
                b64url_decode(sig["sig"]), signing_input(headers["Gateway-Timestamp"], event_id, body)
            )
    finally:
        for created, client in ((locals().get("office"), "THADS-HN"), (locals().get("hook"), "VKS-HN")):
            if created:
                await flows.api.delete(created["href"], headers=flows.headers(client))
        await server.close()
