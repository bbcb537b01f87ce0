"""Partners fail; the gateway does not: a partner down, silent past its deadline or answering garbage
affects only its own source status, and the caller still gets an answer (or a callback) for the rest."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient

from tests.support.lookup_world import LookupWorld, running_gateway
from tests.test_asset_inquiry_flow import inquiry, rows_by_source

pytestmark = pytest.mark.rabbitmq


def gateway(tmp_path: Path, **options: Any) -> Any:
    return running_gateway(tmp_path, **options)


async def lookup(
    lw: LookupWorld, api: TestClient[Any, Any], body: dict[str, Any], wait: int = 20
) -> dict[str, Any]:
    resp = await api.post(
        "/v1/asset-inquiries", json=body, headers={**lw.world.case_headers(), "Prefer": f"wait={wait}"}
    )
    assert resp.status in (200, 202), await resp.text()
    return dict(await resp.json())


async def eventually(check: Callable[[], Awaitable[bool]], timeout: float = 20) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not await check():
        assert asyncio.get_running_loop().time() < deadline
        await asyncio.sleep(0.1)


async def test_land_registry_down_then_back_breaker_opens_and_closes(tmp_path: Path) -> None:
    async with gateway(tmp_path, modes={"land": "down"}, breaker={"failures": 2, "recovery_seconds": 1}) as (
        lw,
        api,
    ):
        first = await lookup(lw, api, inquiry())
        assert first["status"] == "complete"
        sources = rows_by_source(first)
        assert sources["land"]["status"] in ("unavailable", "timeout")
        assert sources["tax"]["status"] == "found" and sources["bank:BANK-VCB"]["status"] == "found"

        second = await lookup(lw, api, inquiry())  # breaker open now: refused at once, partner not called
        land = rows_by_source(second)["land"]
        assert land["status"] == "unavailable"

        await lw.partners.set_mode("land", "normal")
        await asyncio.sleep(1.2)  # past recovery: the next call is the half-open probe
        third = await lookup(lw, api, inquiry())
        assert rows_by_source(third)["land"]["status"] == "found"
        fourth = await lookup(lw, api, inquiry())
        assert rows_by_source(fourth)["land"]["status"] == "found"


async def test_a_partner_silent_past_its_deadline_becomes_timeout(tmp_path: Path) -> None:
    # The asynchronous bank accepts at once but calls back only after the bank deadline has passed.
    async with gateway(tmp_path, callback_delay=30, deadlines={"bank": "2s"}) as (lw, api):
        view = await lookup(lw, api, inquiry(sources=[{"bank": ["BANK-TCB"]}, "tax"]), wait=10)
        assert view["status"] == "expired", json.dumps(view)
        sources = rows_by_source(view)
        assert sources["bank:BANK-TCB"]["status"] == "timeout"
        assert sources["tax"]["status"] == "found"


async def test_garbage_from_one_partner_is_an_error_for_that_source_only(tmp_path: Path) -> None:
    async with gateway(tmp_path, modes={"tax": "failing"}) as (lw, api):
        view = await lookup(lw, api, inquiry())
        sources = rows_by_source(view)
        assert sources["tax"]["status"] in ("error", "unavailable")
        assert sources["tax"].get("reason")
        assert sources["vehicle"]["status"] == "found" and sources["land"]["status"] == "found"


async def test_callback_url_is_called_when_the_inquiry_completes(tmp_path: Path, aiohttp_server: Any) -> None:
    received: list[dict[str, Any]] = []

    async def hook(request: web.Request) -> web.Response:
        received.append({"headers": dict(request.headers), "body": await request.json()})
        return web.json_response({"ok": True})

    app = web.Application()
    app.router.add_post("/results", hook)
    server = await aiohttp_server(app)
    async with gateway(tmp_path) as (lw, api):
        body = inquiry(sources=["tax", "vehicle"], callback_url=str(server.make_url("/results")))
        view = await lookup(lw, api, body, wait=0)
        await eventually(lambda: asyncio.sleep(0, result=bool(received)))
        (call,) = received
        assert call["body"]["inquiry_id"] == view["inquiry_id"]
        assert call["body"]["status"] == "complete"
        assert call["headers"]["Gateway-Signature"].startswith("keyid=")


async def test_not_granted_source_is_403_and_preconditions_are_422(tmp_path: Path) -> None:
    async with gateway(tmp_path) as (lw, api):
        from gateway.security.clients import ClientStore
        from gateway.security.keys import public_pem

        store = ClientStore(lw.settings.clients_dir)
        case = lw.world.case_system
        store.add(
            case.id,
            public_pem(case.key.public_key()),
            ["assets.inquire:tax"],
            deliver_to=f"amqp:{lw.world.case_queue}",
        )
        await asyncio.sleep(1.1)
        resp = await api.post("/v1/asset-inquiries", json=inquiry(), headers=lw.world.case_headers())
        assert resp.status == 403
        ok = await api.post(
            "/v1/asset-inquiries", json=inquiry(sources=["tax"]), headers=lw.world.case_headers()
        )
        assert ok.status == 202
        body = inquiry(sources=["tax"])
        body["preconditions"]["data_necessary"] = False
        del body["case_ref"]
        bad = await api.post("/v1/asset-inquiries", json=body, headers=lw.world.case_headers())
        assert bad.status == 422
        errors = (await bad.json())["errors"]
        assert any("case_ref" in e["path"] + e["message"] for e in errors)


async def test_concurrent_requests_with_one_idempotency_key_make_one_inquiry(tmp_path: Path) -> None:
    async with gateway(tmp_path) as (lw, api):

        def headers() -> dict[str, str]:
            return {**lw.world.case_headers(), "Idempotency-Key": "THA-HN-2026-000123-race"}

        body = inquiry(sources=["tax"])
        responses = await asyncio.gather(
            *(api.post("/v1/asset-inquiries", json=body, headers=headers()) for _ in range(10))
        )
        assert {r.status for r in responses} == {202}
        ids = {(await r.json())["inquiry_id"] for r in responses}
        assert len(ids) == 1
