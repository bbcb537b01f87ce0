"""GET /readyz tells an operator what stops the gateway working: a missing database (503) and partner
credentials that are not in the environment (still ready, but every call to those partners fails)."""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp.test_utils import TestClient

from gateway.partners import Partner, load_partners, missing_credentials
from gateway.settings import Settings
from gateway.storage.database import Database
from gateway.web.app import create_app
from gateway.worker import http as worker_http
from tests.conftest import ROOT, World

# The partners the gateway calls: a pull partner (BANK-VPB) is never called and holds no credentials.
BUNDLED = [p for p in load_partners(ROOT / "config") if not p.pulls]


def partner(code: str, credentials: str | None) -> Partner:
    return Partner(
        code=code, kind="tax", protocol="rest", endpoint="http://127.0.0.1:1/", credentials=credentials
    )


def test_missing_credentials_lists_partners_whose_variable_is_unset_or_empty() -> None:
    partners = [
        partner("SET", "GW_TEST_SET"),
        partner("EMPTY", "GW_TEST_EMPTY"),
        partner("UNSET", "GW_TEST_UNSET"),
        partner("NO-CREDENTIALS", None),
    ]
    env = {"GW_TEST_SET": "token", "GW_TEST_EMPTY": ""}
    assert [p.code for p in missing_credentials(partners, env)] == ["EMPTY", "UNSET"]
    assert missing_credentials([], env) == []


def test_missing_credentials_reads_the_process_environment_by_default(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("GW_TEST_SET", "token")
    monkeypatch.delenv("GW_TEST_UNSET", raising=False)
    partners = [partner("SET", "GW_TEST_SET"), partner("UNSET", "GW_TEST_UNSET")]
    assert [p.code for p in missing_credentials(partners)] == ["UNSET"]


def clear_partner_secrets(monkeypatch: pytest.MonkeyPatch) -> None:
    for p in BUNDLED:
        assert p.credentials
        monkeypatch.delenv(p.credentials, raising=False)


@pytest.fixture
def with_partners(world: World) -> World:
    shutil.copy(ROOT / "config" / "partners.toml", world.settings.config_dir / "partners.toml")
    shutil.copytree(ROOT / "config" / "wsdl", world.settings.config_dir / "wsdl")
    return world


async def test_readyz_is_ready_but_names_partners_without_credentials(
    with_partners: World, api: TestClient[Any, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    clear_partner_secrets(monkeypatch)
    monkeypatch.setenv("GATEWAY_SECRET_TAX", "a-token")
    monkeypatch.setenv("GATEWAY_SECRET_BANK_VCB", "")  # set but empty is as good as missing

    resp = await api.get("/readyz")
    assert resp.status == 200
    body = await resp.json()
    assert body["status"] == "ready" and body["database"] == "up"
    assert body["checks"]["database"] == {"status": "pass"}
    credentials = body["checks"]["partner_credentials"]
    assert credentials["status"] == "warn"
    assert credentials["partners_without_credentials"] == [p.code for p in BUNDLED if p.code != "TAX"]
    assert "failing" not in body


async def test_readyz_passes_every_check_when_all_credentials_are_set(
    with_partners: World, api: TestClient[Any, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    for p in BUNDLED:
        assert p.credentials
        monkeypatch.setenv(p.credentials, "a-token")
    resp = await api.get("/readyz")
    assert resp.status == 200
    body = await resp.json()
    assert body["checks"]["partner_credentials"] == {"status": "pass", "partners_without_credentials": []}


async def test_readyz_without_database_is_503_naming_the_failing_check(
    world: World, tmp_path: Path, aiohttp_client: Callable[..., Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    clear_partner_secrets(monkeypatch)
    # A server that refuses connections.
    unreachable = "postgresql+asyncpg://gateway@127.0.0.1:9/gateway"
    settings = Settings(**{**world.settings.model_dump(), "database_url": unreachable})
    client: TestClient[Any, Any] = await aiohttp_client(create_app(settings, migrate=False))

    resp = await client.get("/readyz")
    assert resp.status == 503
    body = await resp.json()
    assert body["status"] == "unavailable" and body["database"] == "down"
    assert body["failing"] == ["database"]
    assert body["checks"]["database"]["status"] == "fail"


async def test_readyz_stays_ready_when_the_management_api_does_not_answer(
    world: World, aiohttp_client: Callable[..., Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    for p in BUNDLED:
        assert p.credentials
        monkeypatch.setenv(p.credentials, "a-token")
    ops = {**world.settings.ops.model_dump(), "management_url": "http://127.0.0.1:9"}  # refuses
    settings = Settings(**{**world.settings.model_dump(), "ops": ops})
    client: TestClient[Any, Any] = await aiohttp_client(create_app(settings))

    resp = await client.get("/readyz")
    assert resp.status == 200
    body = await resp.json()
    assert body["status"] == "ready" and body["warnings"] == []
    health = body["checks"]["broker_health"]
    assert health["status"] == "pass" and health["readings"] == "unknown"
    assert "does not answer" in health["detail"]


async def test_worker_readyz_carries_the_broker_readings_even_when_unknown(world: World) -> None:
    ops = {**world.settings.ops.model_dump(), "management_url": "http://127.0.0.1:9"}
    settings = Settings(**{**world.settings.model_dump(), "ops": ops})
    db = Database(settings.resolved_database_url)
    runner = await worker_http.start(worker_http.make_app(db, lambda: True, settings), "127.0.0.1", 0)
    assert runner is not None
    try:
        url = f"http://127.0.0.1:{runner.addresses[0][1]}/readyz"
        async with aiohttp.ClientSession() as http, http.get(url) as resp:
            assert resp.status == 200
            body = await resp.json()
        assert body["status"] == "ready" and body["warnings"] == []
        assert body["checks"]["broker_health"]["readings"] == "unknown"
    finally:
        await runner.cleanup()
        await db.dispose()
