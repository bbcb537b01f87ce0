"""GET /v1/services: each client sees what its grants let it use, with schema links that resolve;
GET /v1/schemas/{schema} serves the files the gateway validates with."""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from gateway.domain.registry import REGISTRY
from gateway.security.clients import ClientStore
from gateway.security.keys import generate_keypair, public_pem
from gateway.web.app import create_app
from tests.conftest import CASE_SYSTEM, ROOT, Party, World

BANK_CLERK = Party("BANK-CLERK", generate_keypair("ed25519"))
SCHEMAS = ROOT / "gateway" / "schemas"


@pytest.fixture
async def api(world: World, aiohttp_client: Callable[..., Any]) -> TestClient[Any, Any]:
    shutil.copy(ROOT / "config" / "partners.toml", world.settings.config_dir / "partners.toml")
    store = ClientStore(world.settings.clients_dir)
    store.add(
        CASE_SYSTEM,
        public_pem(world.case_system.key.public_key()),
        ["messages.read", "messages.confirm", "assets.inquire", "documents.send:order.account_blocking"],
    )
    store.add(BANK_CLERK.id, public_pem(BANK_CLERK.key.public_key()), ["assets.inquire:bank"])
    client: TestClient[Any, Any] = await aiohttp_client(create_app(world.settings))
    return client


async def directory(api: TestClient[Any, Any], headers: dict[str, str]) -> dict[str, Any]:
    response = await api.get("/v1/services", headers=headers)
    assert response.status == 200, await response.text()
    body: dict[str, Any] = await response.json()
    return body


def operations(body: dict[str, Any]) -> set[str]:
    return {f"{op['method']} {op['path']}" for op in body["operations"]}


async def test_a_court_sees_judgments_and_following_messages_only(
    api: TestClient[Any, Any], world: World
) -> None:
    body = await directory(api, world.court_headers())

    assert body["client"] == world.court.id
    listed = {d["message_type"]: d for d in body["documents"]}
    assert "judgment.delivery" in listed  # through its older grant name, judgments.push
    assert listed["judgment.delivery"]["schema"] == "/v1/schemas/judgment.delivery.schema.json"
    assert all("judgments.push" in REGISTRY[t].extra_grants for t in listed)
    assert body["lookups"] == []
    ops = operations(body)
    assert {"POST /v1/judgments", "POST /v1/documents", "GET /v1/messages/{message_id}"} <= ops
    assert "POST /v1/asset-inquiries" not in ops
    assert "POST /v1/messages/{message_id}/confirmation" not in ops
    assert "GET /v1/services" in ops and "GET /v1/keys" in ops


async def test_the_case_system_sees_its_order_every_source_and_lookups(
    api: TestClient[Any, Any], world: World
) -> None:
    body = await directory(api, world.case_headers())

    assert [d["message_type"] for d in body["documents"]] == ["order.account_blocking"]
    assert body["documents"][0]["answered_by"] == "report.account_blocking"
    assert {entry["kind"] for entry in body["lookups"]} == {"land", "bank", "tax", "vehicle", "population"}
    land = next(entry for entry in body["lookups"] if entry["kind"] == "land")
    assert land["result_schema"] == "/v1/schemas/asset.result.land.schema.json"
    ops = operations(body)
    assert {"POST /v1/asset-inquiries", "POST /v1/messages/{message_id}/confirmation"} <= ops
    assert "POST /v1/judgments" not in ops


async def test_a_grant_of_one_source_kind_lists_that_kind_only(
    api: TestClient[Any, Any], world: World
) -> None:
    body = await directory(api, BANK_CLERK.headers(world.settings))

    assert body["documents"] == []
    assert body["lookups"] and {entry["kind"] for entry in body["lookups"]} == {"bank"}
    assert all(entry["source"] == f"bank:{entry['partner']}" for entry in body["lookups"])
    assert "POST /v1/asset-inquiries" in operations(body)
    assert "GET /v1/messages/{message_id}" not in operations(body)


async def test_every_schema_link_serves_the_file_the_gateway_validates_with(
    api: TestClient[Any, Any], world: World
) -> None:
    body = await directory(api, world.case_headers())
    links = {d["schema"] for d in body["documents"]}
    links |= {e[k] for e in body["lookups"] for k in ("schema", "result_schema")}
    links |= {link for op in body["operations"] for link in op.get("request_schemas", [])}
    assert None not in links
    for link in sorted(links):
        response = await api.get(link)
        assert response.status == 200, link
        served = json.loads(await response.text())
        assert served == json.loads((SCHEMAS / link.rsplit("/", 1)[1]).read_text("utf-8"))


async def test_an_unknown_schema_is_a_404_problem(api: TestClient[Any, Any]) -> None:
    response = await api.get("/v1/schemas/nothing.schema.json")

    assert response.status == 404
    assert response.content_type == "application/problem+json"


async def test_the_directory_needs_a_registered_client(api: TestClient[Any, Any]) -> None:
    response = await api.get("/v1/services")

    assert response.status == 401
    assert response.content_type == "application/problem+json"
