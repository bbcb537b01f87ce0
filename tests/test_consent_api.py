"""POST /v1/consents: only the notification service records consents; every violation is listed with its
path; nothing is stored from a refused request; a recorded decision is audited without the ID."""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from aiohttp.test_utils import TestClient
from sqlalchemy import func, select

from gateway.security.clients import ClientStore
from gateway.security.keys import generate_keypair, public_pem
from gateway.storage.database import Database
from gateway.storage.tables import audit_log, consents
from gateway.web.app import create_app
from tests.conftest import ROOT, Party, World, example

Client = TestClient[Any, Any]
VNEID = Party("VNEID", generate_keypair())


@pytest.fixture
async def api(world: World, aiohttp_client: Callable[..., Any]) -> Client:
    shutil.copy(ROOT / "config" / "partners.toml", world.settings.config_dir / "partners.toml")
    ClientStore(world.settings.clients_dir).add(
        VNEID.id, public_pem(VNEID.key.public_key()), ["consents.write"]
    )
    client: Client = await aiohttp_client(create_app(world.settings))
    return client


async def stored(world: World) -> tuple[int, list[Any]]:
    db = Database(world.settings.resolved_database_url)
    try:
        async with db.read() as conn:
            count = (await conn.execute(select(func.count()).select_from(consents))).scalar_one()
            audit = (
                await conn.execute(select(audit_log).where(audit_log.c.action == "consents.write"))
            ).all()
    finally:
        await db.dispose()
    return int(count), list(audit)


async def test_the_service_records_a_consent_and_the_latest_decision_is_answered(
    api: Client, world: World
) -> None:
    granted = example("consent.request", "valid-granted.json")
    resp = await api.post("/v1/consents", json=granted, headers=VNEID.headers(world.settings))
    body = await resp.json()
    assert resp.status == 201, body
    assert body["status"] == body["current_status"] == "granted" and body["recorded_by"] == "VNEID"
    # A withdrawal made before the consent, recorded late, does not override it.
    late = {"person": granted["person"], "status": "withdrawn", "at": "2026-03-01T08:00:00+07:00"}
    body = await (await api.post("/v1/consents", json=late, headers=VNEID.headers(world.settings))).json()
    assert body["status"] == "withdrawn" and body["current_status"] == "granted"
    count, audit = await stored(world)
    assert count == 2 and len(audit) == 2
    assert all(granted["person"]["id_number"] not in json.dumps(row.data) for row in audit)


async def test_refusals_list_every_violation_and_store_nothing(api: Client, world: World) -> None:
    headers = VNEID.headers(world.settings)
    resp = await api.post(
        "/v1/consents", json=example("consent.request", "invalid-several-errors.json"), headers=headers
    )
    assert resp.status == 422 and resp.content_type == "application/problem+json"
    paths = {e["path"] for e in (await resp.json())["errors"]}
    assert {"$.person.id_number", "$.channel", "$.status", "$.at"} <= paths
    future = (datetime.now(UTC) + timedelta(days=1)).isoformat()
    ahead = {"person": {"id_number": "001085012345"}, "status": "granted", "at": future}
    resp = await api.post("/v1/consents", json=ahead, headers=VNEID.headers(world.settings))
    assert resp.status == 422 and (await resp.json())["errors"][0]["path"] == "$.at"
    resp = await api.post(
        "/v1/consents", json=example("consent.request", "valid-granted.json"), headers=world.case_headers()
    )
    assert resp.status == 403
    assert (await stored(world))[0] == 0
