"""Requests refused before the caller is known are counted, not chained into the audit log one by one: a
flood of them writes one aggregated record per route and reason (count, first and last time), and
``gateway_unauthenticated_rejections_total`` shows them. A known client's refusals are still audited each."""

from __future__ import annotations

import asyncio
import json
from typing import Any

from aiohttp.test_utils import TestClient
from sqlalchemy import select

from gateway.storage.database import Database
from gateway.storage.tables import audit_log
from gateway.web.app import create_app
from gateway.web.rejections import REJECTIONS
from tests.conftest import World, fresh_judgment
from tests.test_metrics_api import scrape, value

FLOOD = 300
COUNTER = "gateway_unauthenticated_rejections_total"


async def audit_rows(world: World) -> list[Any]:
    db = Database(world.settings.resolved_database_url)
    try:
        async with db.read() as conn:
            return list((await conn.execute(select(audit_log).order_by(audit_log.c.id))).all())
    finally:
        await db.dispose()


async def test_a_flood_of_unauthenticated_pushes_writes_a_handful_of_audit_rows(
    world: World, aiohttp_client: Any
) -> None:
    api: TestClient[Any, Any] = await aiohttp_client(create_app(world.settings))
    before = await scrape(api)
    doc = fresh_judgment()

    async def anonymous(i: int) -> int:
        headers = {"Authorization": "Bearer not.a.token"} if i % 2 else {}
        return (await api.post("/v1/judgments", json=doc, headers=headers)).status

    statuses = await asyncio.gather(*(anonymous(i) for i in range(FLOOD)))
    assert set(statuses) == {401}
    after = await scrape(api)
    for reason in ("no-token", "bad-token"):
        counted = value(after, COUNTER, route="judgments.push", reason=reason) - value(
            before, COUNTER, route="judgments.push", reason=reason
        )
        assert counted == FLOOD // 2
    assert await audit_rows(world) == []  # nothing written per request
    await api.close()  # the window closes with the app: its tally is written

    rows = await audit_rows(world)
    assert len(rows) == 2
    assert {r.actor for r in rows} == {"anonymous"}
    assert {r.action for r in rows} == {"judgments.push"}
    assert {r.status_code for r in rows} == {401}
    counts = {json.loads(r.data)["reason"]: json.loads(r.data)["count"] for r in rows}
    assert counts == {"no-token": FLOOD // 2, "bad-token": FLOOD // 2}
    first = json.loads(rows[0].data)
    assert first["aggregated"] is True and first["first"] <= first["last"]


async def test_a_replayed_token_is_counted_as_an_anonymous_refusal(world: World, aiohttp_client: Any) -> None:
    app = create_app(world.settings)
    api: TestClient[Any, Any] = await aiohttp_client(app)
    token = world.court.token(world.settings)
    assert (
        await api.post("/v1/judgments", json=fresh_judgment(), headers={"Authorization": f"Bearer {token}"})
    ).status == 202
    for _ in range(5):
        resp = await api.post(
            "/v1/judgments", json=fresh_judgment(), headers={"Authorization": f"Bearer {token}"}
        )
        assert resp.status == 401
    entries = app[REJECTIONS].entries()
    assert [(e.action, e.data and e.data["reason"], e.data and e.data["count"]) for e in entries] == [
        ("judgments.push", "token-used", 5)
    ]


async def test_a_known_clients_refusals_are_still_audited_one_by_one(
    world: World, aiohttp_client: Any
) -> None:
    api: TestClient[Any, Any] = await aiohttp_client(create_app(world.settings))
    for _ in range(3):
        bad = fresh_judgment()
        del bad["body"]["items"]
        resp = await api.post("/v1/judgments", json=bad, headers=world.court_headers())
        assert resp.status == 422
    rows = [r for r in await audit_rows(world) if r.outcome == "rejected"]
    assert len(rows) == 3
    assert {r.actor for r in rows} == {world.court.id}
