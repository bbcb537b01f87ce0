"""Asset lookup end to end: one inquiry fans out over the real broker to the partner simulators (SOAP
land registry, five banks — one answering later by callback —, tax, vehicles, population) and comes
back with an answer per source that matches the simulators' seeded data."""

from __future__ import annotations

import asyncio
import copy
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from gateway.simulators.partners import seed
from gateway.storage.database import Database
from gateway.storage.tables import audit_log
from tests.conftest import EXAMPLES
from tests.support.lookup_world import PARTNER_CODES, LookupWorld, running_gateway

pytestmark = pytest.mark.rabbitmq
BASE: dict[str, Any] = json.loads(
    (EXAMPLES / "asset-inquiry" / "valid-all-registers.json").read_text("utf-8")
)


def inquiry(id_number: str = "001085012345", **changes: Any) -> dict[str, Any]:
    body = copy.deepcopy(BASE)
    body.pop("message_type", None)
    body.pop("message_id", None)
    body["debtor"] = {"id_number": id_number, "full_name": "Nguyễn Văn An", "date_of_birth": "1985-03-02"}
    body["sources"] = ["land", "bank", "tax", "vehicle", "population"]
    body.pop("callback_url", None)
    body.update(changes)
    return body


@pytest.fixture(params=["direct", "platforms"])
async def running(
    tmp_path: Path, request: pytest.FixtureRequest
) -> AsyncIterator[tuple[LookupWorld, TestClient[Any, Any]]]:
    """Once with every partner called directly, once through the simulated platforms (land, tax,
    vehicles and population through X-Road, the banks through an LGSP): the same assertions hold."""
    async with running_gateway(tmp_path, transport=request.param) as started:
        yield started


def rows_by_source(view: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {s["source"]: s for s in view["sources"]}


async def test_one_inquiry_every_source_answers_with_seeded_data(
    running: tuple[LookupWorld, TestClient[Any, Any]],
) -> None:
    lw, api = running
    headers = {**lw.world.case_headers(), "Prefer": "wait=20"}
    resp = await api.post("/v1/asset-inquiries", json=inquiry(), headers=headers)
    assert resp.status == 200, await resp.text()
    view = await resp.json()
    assert view["status"] == "complete"
    sources = rows_by_source(view)
    assert set(sources) == {"land", "tax", "vehicle", "population"} | {
        f"bank:{c}" for c in PARTNER_CODES if c.startswith("BANK-")
    }
    subject = {"id_number": "001085012345"}
    assert sources["land"]["status"] == "found"
    assert len(sources["land"]["rows"]) == len(seed.expected("land", "LAND-REG", subject)["parcels"])
    for code in ("BANK-VCB", "BANK-BIDV", "BANK-TCB"):  # TCB answered later, by callback
        expected = seed.expected("bank", code, subject)["accounts"]
        got = sources[f"bank:{code}"]["rows"]
        assert [r["account_number"] for r in got] == [a["account_number"] for a in expected]
    assert sources["bank:BANK-CTG"]["status"] == "not_found"
    assert (
        sources["vehicle"]["rows"][0]["plate"]
        == seed.expected("vehicle", "POLICE-VEH", subject)["vehicles"][0]["plate"]
    )
    for s in sources.values():
        assert len(s["request_sha256"]) == 64 and s["answered_at"]
    if lw.platforms.any:
        # Which request each answer answers, as the platform proved it.
        for name in ("land", "tax", "vehicle", "population"):
            proof = sources[name]["transport"]
            assert proof["platform"] == "xroad" and proof["verified"] is True, proof
            assert proof["request_hash"] and proof["x_road_id"]
        for code in ("BANK-VCB", "BANK-BIDV", "BANK-CTG", "BANK-TCB"):
            proof = sources[f"bank:{code}"]["transport"]
            assert proof["platform"] == "lgsp" and proof["transaction_id"], proof
    else:
        assert not any("transport" in s for s in sources.values())

    listed = await (
        await api.get(f"/v1/asset-inquiries?case_ref={view['case_ref']}", headers=lw.world.case_headers())
    ).json()
    assert [i["inquiry_id"] for i in listed["inquiries"]] == [view["inquiry_id"]]

    db = Database(lw.settings.resolved_database_url)
    try:
        async with db.read() as conn:
            from sqlalchemy import select

            rows = (
                await conn.execute(select(audit_log.c.action, audit_log.c.data, audit_log.c.reason))
            ).all()
    finally:
        await db.dispose()
    assert [r.action for r in rows].count("assets.inquire") == 1
    assert [r.action for r in rows].count("assets.result") == len(sources)
    assert not any("001085012345" in (r.data or "") + (r.reason or "") for r in rows), "ID in clear in audit"


async def test_an_identity_that_owns_nothing_and_an_ambiguous_one(
    running: tuple[LookupWorld, TestClient[Any, Any]],
) -> None:
    lw, api = running
    headers = {**lw.world.case_headers(), "Prefer": "wait=20"}
    nothing = await (
        await api.post("/v1/asset-inquiries", json=inquiry("001090000000"), headers=headers)
    ).json()
    statuses = {s["source"]: s["status"] for s in nothing["sources"]}
    assert statuses.pop("population") == "found"
    assert set(statuses.values()) == {"not_found"}
    ambiguous = await (
        await api.post(
            "/v1/asset-inquiries",
            json=inquiry("001079000001"),
            headers={**lw.world.case_headers(), "Prefer": "wait=20"},
        )
    ).json()
    land = rows_by_source(ambiguous)["land"]
    assert land["match_status"] == "ambiguous_identity"


async def test_without_prefer_wait_the_answer_is_202_then_complete(
    running: tuple[LookupWorld, TestClient[Any, Any]],
) -> None:
    lw, api = running
    resp = await api.post(
        "/v1/asset-inquiries",
        json=inquiry(),
        headers={**lw.world.case_headers(), "Idempotency-Key": "case-123-lookup-1"},
    )
    assert resp.status == 202
    first = await resp.json()
    assert resp.headers["Location"] == f"/v1/asset-inquiries/{first['inquiry_id']}"
    again = await api.post(
        "/v1/asset-inquiries",
        json=inquiry(),
        headers={**lw.world.case_headers(), "Idempotency-Key": "case-123-lookup-1"},
    )
    assert (await again.json())["inquiry_id"] == first["inquiry_id"]
    for _ in range(200):
        view = await (await api.get(resp.headers["Location"], headers=lw.world.case_headers())).json()
        if view["status"] == "complete":
            break
        await asyncio.sleep(0.1)
    assert view["status"] == "complete"
