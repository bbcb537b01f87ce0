"""The overview, alerts, history and partner pages over a real database with 60 banks configured and the
broker at a closed port: every page answers, says which parts are unavailable, and shows a bank that
answers garbage (breaker closed) as failing."""

from __future__ import annotations

import re
import uuid
from datetime import timedelta
from pathlib import Path
from typing import Any

import tomli_w
from aiohttp.test_utils import TestClient
from sqlalchemy import insert

from gateway.ops import history
from gateway.storage.database import Database
from gateway.storage.tables import messages, partner_health
from gateway.storage.timestamps import now
from gateway.web.app import create_app
from tests.conftest import make_world
from tests.support.console import add_operator, operator_client, sign_in
from tests.support.gateway_procs import free_port

BANKS = [f"BANK-T{i:03d}" for i in range(60)]
GARBAGE, DOWN = BANKS[7], BANKS[42]


def write_partners(config: Path) -> None:
    partners = [
        {"code": code, "kind": "bank", "protocol": "rest", "endpoint": f"http://127.0.0.1:9/{code}"}
        for code in BANKS
    ]
    partners.append({"code": "TAX", "kind": "tax", "protocol": "rest", "endpoint": "http://127.0.0.1:9/tax"})
    (config / "partners.toml").write_text(tomli_w.dumps({"partner": partners}), "utf-8")


async def seed(db: Database) -> str:
    at = now()

    def health(
        code: str, breaker: str, calls: int, failures: int, error: str | None = None
    ) -> dict[str, Any]:
        return {
            "partner": code, "worker": "w1", "updated_at": at, "breaker": breaker, "calls": calls,
            "failures": failures, "p50_ms": 20, "p95_ms": 80, "in_flight": 0, "last_error": error,
            "last_error_at": at if error else None,
        }  # fmt: skip

    failed_id = str(uuid.uuid4())
    async with db.transaction() as conn:
        await conn.execute(
            insert(partner_health),
            [health(code, "closed", 10, 0) for code in BANKS if code not in (GARBAGE, DOWN)]
            + [
                health(GARBAGE, "closed", 12, 12, "the answer is not JSON"),
                health(DOWN, "open", 5, 5, "connection refused"),
            ],
        )
        await conn.execute(
            insert(messages).values(
                message_id=failed_id, message_type="asset.lookup", schema_version="1", sender="THADS-HN",
                recipient=GARBAGE, priority="normal", natural_key=failed_id, sha256="ab" * 32, payload="{}",
                receipt="{}", received_at=at, status="failed", updated_at=at,
            )
        )  # fmt: skip
        await history.record(conn, [(history.PARKED_TOTAL, "", 3)], at - timedelta(minutes=2))
        await history.record(
            conn, [(history.PARTNER_CALLS, GARBAGE, 12), (history.PARTNER_FAILURES, GARBAGE, 12)], at
        )
    return failed_id


async def test_sixty_banks_with_the_broker_unreachable(
    tmp_path: Path, fresh_database_url: str, aiohttp_client: Any
) -> None:
    closed = free_port()
    world = make_world(
        tmp_path,
        fresh_database_url,
        broker_url=f"amqp://guest:guest@127.0.0.1:{closed}/",
        ops={"management_url": f"http://127.0.0.1:{closed}"},
    )
    write_partners(world.settings.config_dir)
    client: TestClient[Any, Any] = await aiohttp_client(create_app(world.settings))
    db = Database(world.settings.resolved_database_url)
    try:
        failed_id = await seed(db)
    finally:
        await db.dispose()
    await operator_client(client, world.settings)

    data = await (await client.get("/ops/api/overview")).json()
    assert data["broker"]["state"] == "down", data["broker"]  # a refused connection: known at once
    assert data["source"] == "unavailable"
    assert data["headline"] == {"failed": 1, "parked": 3, "overdue": 0, "stuck": 0, "retrying": 0}
    assert data["parked_age_seconds"] is not None and data["parked_age_seconds"] >= 100  # the last sample
    states = {p["code"]: p["state"] for p in data["partners"]}
    assert (states[GARBAGE], states[DOWN], states[BANKS[0]], states["TAX"]) == (
        "failing",
        "down",
        "ok",
        "unknown",
    )
    alerts = {a["key"] for a in data["alerts"]}
    assert {"broker", f"partner:{GARBAGE}", f"partner:{DOWN}", "parked", "failed"} <= alerts

    html = await (await client.get("/ops/")).text()
    assert re.search(r'id="broker-banner" class="banner banner-down"', html)
    assert re.search(r'id="parked-count">3<', html) and "last known" in html
    assert re.search(r'id="failed-count">1<', html) and 'href="/ops/messages?status=failed"' in html
    chip = html.split(f'data-partner="{GARBAGE}"', 1)[1].split("</li>", 1)[0]
    assert "state-down" in html.split(f'data-partner="{GARBAGE}"', 1)[0].rsplit("<li", 1)[1]
    assert f'href="/ops/partners/{GARBAGE}"' in chip
    assert html.count('class="chip state-ok"') == 58
    assert 'data-kind="bank"' in html and 'data-kind="tax"' in html

    page = await (await client.get("/ops/alerts")).text()
    assert f'data-alert="partner:{GARBAGE}"' in page and 'data-alert="broker"' in page

    page = await (await client.get(f"/ops/partners/{GARBAGE}?range=24h")).text()
    assert 'data-state="failing"' in page and "the answer is not JSON" in page
    assert f'href="/ops/messages/{failed_id}"' in page.split('id="failed"', 1)[1]
    assert 'id="partner-calls"' in page and "<svg" in page and 'class="active" data-range="24h"' in page
    assert (await client.get("/ops/partners/NOBODY")).status == 404

    for range_name in ("1h", "6h", "24h", "7d", "bogus"):
        resp = await client.get("/ops/history", params={"range": range_name})
        assert resp.status == 200
    page = await (await client.get("/ops/history?range=7d")).text()
    assert 'id="total-queues"' in page and "<svg" in page and "<script" not in page.split("<main", 1)[1]

    auditor: TestClient[Any, Any] = await aiohttp_client(client.server)
    add_operator(world.settings, "ann", "auditor")
    await sign_in(auditor, "ann")
    for path in ("/ops/", "/ops/alerts", "/ops/history", f"/ops/partners/{GARBAGE}"):
        assert (await auditor.get(path)).status == 200, path
