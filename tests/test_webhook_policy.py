"""Status-event webhooks go only where the outbound policy allows: a forbidden address is refused when
subscribing (422 at ``$.url``) and again before every send (never contacted, the event parked); a
redirect is never followed; and once ``DELETE /v1/subscriptions/{id}`` has answered, nothing more is
POSTed to the webhook and its queue stays gone."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import aio_pika
import pytest
from aiohttp.test_utils import TestClient

from gateway.amqp.names import Names
from gateway.security.clients import ClientStore
from gateway.security.keys import public_pem
from gateway.web.app import create_app
from gateway.worker.events import RESCAN_SECONDS
from tests.conftest import World, make_world
from tests.support.flows_world import FlowsWorld, flows_world
from tests.support.gateway_procs import BROKER, queue_exists
from tests.support.listeners import Listener, listening
from tests.test_procuracy_flow import copy_of, decision

#: aio-pika's default ``reconnect_interval``: its connection recovery pauses this long after each pass.
RECONNECT_INTERVAL_SECONDS = 5.0

FORBIDDEN_WEBHOOKS = [
    "https://169.254.169.254/latest/meta-data/",
    "https://[::ffff:169.254.169.254]/",
    "https://0.0.0.0/events",
    "https://[::]/events",
    "https://10.1.2.3/events",
    "https://172.16.5.4/events",
    "https://100.100.100.100/events",
    "https://239.1.1.1/events",
    "https://240.0.0.1/events",
    "https://127.0.0.1/events",
    "https://localhost/events",
    "https://0x7f.1/events",  # a name that resolves to 127.0.0.1
    "http://procuracy.example.gov.vn/events",  # plain http
]


@pytest.fixture
def strict(tmp_path: Path, fresh_database_url: str) -> World:
    """An installation as in production: no http, not even to loopback."""
    return make_world(tmp_path, fresh_database_url, outbound={"allow_http_loopback": False})


@pytest.fixture
async def strict_api(strict: World, aiohttp_client: Callable[..., Any]) -> TestClient[Any, Any]:
    client: TestClient[Any, Any] = await aiohttp_client(create_app(strict.settings))
    return client


async def refused(api: TestClient[Any, Any], world: World, url: str) -> dict[str, Any]:
    resp = await api.post(
        "/v1/subscriptions", json={"kind": "webhook", "url": url}, headers=world.court_headers()
    )
    body: dict[str, Any] = await resp.json()
    assert resp.status == 422, body
    assert [e["path"] for e in body["errors"]] == ["$.url"]
    return body


@pytest.mark.parametrize("url", FORBIDDEN_WEBHOOKS)
async def test_a_webhook_to_a_forbidden_address_is_refused_when_subscribing(
    strict_api: TestClient[Any, Any], strict: World, url: str
) -> None:
    await refused(strict_api, strict, url)

    listed = await (await strict_api.get("/v1/subscriptions", headers=strict.court_headers())).json()
    assert listed == {"subscriptions": []}


async def test_a_loopback_listener_is_refused_without_the_development_setting(
    strict_api: TestClient[Any, Any], strict: World
) -> None:
    async with listening() as listener:
        await refused(strict_api, strict, f"{listener.url}/events")
    assert listener.requests == []


async def test_a_webhook_host_outside_the_clients_outbound_hosts_is_refused(
    strict_api: TestClient[Any, Any], strict: World
) -> None:
    store = ClientStore(strict.settings.clients_dir)
    court = strict.court
    store.add(
        court.id, public_pem(court.key.public_key()), ["messages.read"], outbound_hosts=["court.example"]
    )
    await asyncio.sleep(1.1)  # the api's client store rereads its directory at most once a second

    body = await refused(strict_api, strict, "https://elsewhere.example/events")
    assert "outbound hosts" in body["errors"][0]["message"]


# -- sending (the real broker, a worker, loopback receivers) ------------------------------------------


@pytest.fixture
async def flows(tmp_path: Path) -> AsyncIterator[FlowsWorld]:
    async with flows_world(tmp_path, recommend_every=0) as world:
        yield world


async def subscribe(flows: FlowsWorld, url: str) -> dict[str, Any]:
    resp = await flows.api.post(
        "/v1/subscriptions", json={"kind": "webhook", "url": url}, headers=flows.headers("VKS-HN")
    )
    created: dict[str, Any] = await resp.json()
    assert resp.status == 201, created
    return created


async def unsubscribe(flows: FlowsWorld, created: dict[str, Any]) -> None:
    await flows.api.delete(created["href"], headers=flows.headers("VKS-HN"))


async def send_decision(flows: FlowsWorld) -> str:
    """An enforcement decision; returns the id of the procuracy's copy once the procuracy confirmed it."""
    doc = decision()
    await flows.send(doc)
    the_copy = copy_of(flows, doc["message_id"])
    await flows.wait_for(the_copy, "confirmed", client="VKS-HN")
    return the_copy


def messages_seen(listener: Listener) -> set[str]:
    return {json.loads(body)["message_id"] for method, _path, body in listener.requests if method == "POST"}


def queue_of(flows: FlowsWorld, created: dict[str, Any]) -> str:
    names = Names(flows.world.settings.broker_namespace)
    return names.event_subscription("VKS-HN", created["subscription_id"])


async def parked(name: str) -> int:
    connection = await aio_pika.connect(BROKER)
    async with connection:
        channel = await connection.channel()
        queue = await channel.declare_queue(name, passive=True)
        return int(queue.declaration_result.message_count or 0)


@pytest.mark.rabbitmq
async def test_a_redirecting_webhook_is_not_followed(flows: FlowsWorld) -> None:
    async with listening() as elsewhere, listening(redirect_to="") as redirecting:
        redirecting.redirect_to = f"{elsewhere.url}/stolen"
        created = await subscribe(flows, f"{redirecting.url}/events")
        try:
            await send_decision(flows)
            await redirecting.wait_for(2)  # the first attempt failed (a 3xx is a failure) and was retried
        finally:
            await unsubscribe(flows, created)
    assert elsewhere.requests == []


@pytest.mark.rabbitmq
async def test_the_webhook_is_checked_again_before_each_send(flows: FlowsWorld) -> None:
    async with listening() as listener:
        created = await subscribe(flows, f"{listener.url}/events")
        try:
            # After subscribing, the procuracy's registration is narrowed to a host of its own.
            store = ClientStore(flows.world.settings.clients_dir)
            vks = store.get("VKS-HN")
            assert vks is not None
            store.add(
                vks.id,
                public_pem(vks.keys[0]),
                sorted(vks.grants),
                str(vks.deliver_to),
                outbound_hosts=["procuracy.example.gov.vn"],
            )
            await asyncio.sleep(1.1)  # the worker's client store rereads its directory at most once a second
            await send_decision(flows)
            deadline = asyncio.get_running_loop().time() + 30
            parking = Names(flows.world.settings.broker_namespace).parking(queue_of(flows, created))
            while await parked(parking) == 0:
                assert asyncio.get_running_loop().time() < deadline, "nothing parked"
                await asyncio.sleep(0.1)
        finally:
            await unsubscribe(flows, created)
    assert listener.requests == []


@pytest.mark.rabbitmq
async def test_after_unsubscribing_nothing_more_is_posted_and_the_queue_stays_gone(flows: FlowsWorld) -> None:
    async with listening() as listener:
        created = await subscribe(flows, f"{listener.url}/events")
        first = await send_decision(flows)
        deadline = asyncio.get_running_loop().time() + 30
        while first not in messages_seen(listener):
            assert asyncio.get_running_loop().time() < deadline, "the webhook was never called"
            await asyncio.sleep(0.1)

        # A worker that has run a while: aio-pika's recovery (which re-declared a queue the broker
        # cancelled the consumer of, re-bound it and consumed it again) now acts at once when asked.
        await asyncio.sleep(RECONNECT_INTERVAL_SECONDS + 1)

        ended = await flows.api.delete(created["href"], headers=flows.headers("VKS-HN"))
        assert ended.status == 200
        second = await send_decision(flows)
        # Time for any recovery and for the worker's rescan to act.
        await asyncio.sleep(RECONNECT_INTERVAL_SECONDS + RESCAN_SECONDS)

    assert second not in messages_seen(listener)
    assert not await queue_exists(queue_of(flows, created))
