"""POST/GET/DELETE /v1/subscriptions: problems for bad requests (every violation, with its path), the
grant, someone else's subscription, and an unreachable broker changing nothing; a subscription declares
a queue bound with the client's own keys only, and ending it deletes the queue."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import aio_pika
import pytest
from aiohttp.test_utils import TestClient

from gateway.amqp.names import Names
from gateway.security.clients import ClientStore
from gateway.security.keys import generate_keypair, public_pem
from gateway.web.app import create_app
from tests.conftest import Party, World, make_world

BROKER = "amqp://guest:guest@127.0.0.1:5672/"
PROBLEM = "application/problem+json"
NO_GRANTS = Party("NO-GRANTS", generate_keypair("ed25519"))


@pytest.fixture
async def api(world: World, aiohttp_client: Callable[..., Any]) -> TestClient[Any, Any]:
    ClientStore(world.settings.clients_dir).add(NO_GRANTS.id, public_pem(NO_GRANTS.key.public_key()), [])
    client: TestClient[Any, Any] = await aiohttp_client(create_app(world.settings))
    return client


@pytest.fixture
async def cleanup(world: World) -> AsyncIterator[list[str]]:
    """Queues a test may leave behind (deleted whatever happened), then the events exchange."""
    queues: list[str] = []
    yield queues
    names = Names(world.settings.broker_namespace)
    connection = await aio_pika.connect(BROKER)
    async with connection:
        channel = await connection.channel()
        for queue in queues:
            await channel.queue_delete(queue)
            await channel.queue_delete(names.parking(queue))
        await channel.exchange_delete(names.events)


async def problem(response: Any, status: int) -> dict[str, Any]:
    assert response.status == status, await response.text()
    assert response.content_type == PROBLEM
    body: dict[str, Any] = await response.json()
    return body


async def test_every_violation_is_listed_with_its_path(api: TestClient[Any, Any], world: World) -> None:
    response = await api.post(
        "/v1/subscriptions",
        json={
            "kind": "webhook",
            "url": "http://example.org/events",
            "message_types": ["no.such", "judgment.delivery"],
        },
        headers=world.court_headers(),
    )

    body = await problem(response, 422)
    assert {e["path"] for e in body["errors"]} == {"$.message_types[0]", "$.url"}


@pytest.mark.parametrize(
    ("document", "paths"),
    [
        ({"kind": "webhook"}, {"$.url"}),  # a missing member at its own path
        ({"kind": "queue", "url": "https://example.org/events"}, {"$"}),
        ({"kind": "mail", "extra": 1}, {"$.kind", "$"}),
        ({"kind": "queue", "message_types": ["judgment.delivery", "judgment.delivery"]}, {"$.message_types"}),
    ],
)
async def test_schema_violations_are_422(
    api: TestClient[Any, Any], world: World, document: dict[str, Any], paths: set[str]
) -> None:
    response = await api.post("/v1/subscriptions", json=document, headers=world.court_headers())

    body = await problem(response, 422)
    assert {e["path"] for e in body["errors"]} >= paths


async def test_not_json_is_400_and_no_grant_is_403(api: TestClient[Any, Any], world: World) -> None:
    response = await api.post(
        "/v1/subscriptions", data=b"{", headers={**world.court_headers(), "Content-Type": "application/json"}
    )
    await problem(response, 400)
    response = await api.post(
        "/v1/subscriptions", json={"kind": "queue"}, headers=NO_GRANTS.headers(world.settings)
    )
    await problem(response, 403)


async def test_an_unknown_subscription_is_404(api: TestClient[Any, Any], world: World) -> None:
    response = await api.delete("/v1/subscriptions/nope", headers=world.court_headers())

    await problem(response, 404)


async def test_an_unreachable_broker_is_503_and_subscribes_nothing(
    tmp_path: Path, fresh_database_url: str, aiohttp_client: Callable[..., Any]
) -> None:
    world = make_world(tmp_path, fresh_database_url, broker_url="amqp://guest:guest@127.0.0.1:9/")
    api: TestClient[Any, Any] = await aiohttp_client(create_app(world.settings))

    response = await api.post("/v1/subscriptions", json={"kind": "queue"}, headers=world.court_headers())

    body = await problem(response, 503)
    assert "Retry-After" in response.headers and "nothing" in body["detail"]
    listed = await (await api.get("/v1/subscriptions", headers=world.court_headers())).json()
    assert listed == {"subscriptions": []}


@pytest.mark.rabbitmq
async def test_a_queue_subscription_is_bound_to_the_clients_own_keys_and_ends_with_its_queue(
    api: TestClient[Any, Any], world: World, cleanup: list[str]
) -> None:
    response = await api.post(
        "/v1/subscriptions",
        json={"kind": "queue", "message_types": ["judgment.delivery"]},
        headers=world.court_headers(),
    )
    assert response.status == 201, await response.text()
    created = await response.json()
    cleanup.append(created["queue"])
    assert response.headers["Location"] == created["href"]
    assert created["queue"].startswith(f"{world.settings.broker_namespace}.events.{world.court.id}.")
    assert created["bindings"] == [
        f"{world.court.id}.*.*.judgment.delivery",
        f"*.{world.court.id}.*.judgment.delivery",
    ]

    listed = await (await api.get("/v1/subscriptions", headers=world.court_headers())).json()
    assert [s["subscription_id"] for s in listed["subscriptions"]] == [created["subscription_id"]]
    theirs = await (await api.get("/v1/subscriptions", headers=world.case_headers())).json()
    assert theirs == {"subscriptions": []}
    other = await api.delete(created["href"], headers=world.case_headers())
    await problem(other, 404)

    ended = await api.delete(created["href"], headers=world.court_headers())
    assert ended.status == 200
    assert (await ended.json())["revoked_at"] is not None
    again = await api.delete(created["href"], headers=world.court_headers())
    assert again.status == 200
    connection = await aio_pika.connect(BROKER)
    async with connection:
        channel = await connection.channel()
        with pytest.raises(aio_pika.exceptions.ChannelClosed):
            await channel.declare_queue(created["queue"], passive=True)
    listed = await (await api.get("/v1/subscriptions", headers=world.court_headers())).json()
    assert listed == {"subscriptions": []}
