"""Console pages over real data: message search and a message's page (payload by role, personal IDs
masked), overdue and stuck lists, partner health and the connection test, the role checks."""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import aio_pika
import tomli_w
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from sqlalchemy import insert, select, update

from gateway.storage.database import Database
from gateway.storage.tables import audit_log, evidences, inquiries, messages, partner_health
from gateway.storage.timestamps import now
from gateway.web.app import create_app
from tests.conftest import World, make_world
from tests.support.console import add_operator, operator_client, push_judgment, sign_in, write

RAW_ID = "001185012345"  # a personal ID in the example judgment


async def audit_actions(world: World) -> list[Any]:
    db = Database(world.settings.resolved_database_url)
    try:
        async with db.read() as conn:
            return list(await conn.execute(select(audit_log).where(audit_log.c.action.startswith("ops."))))
    finally:
        await db.dispose()


def ids_in(html: str, table: str) -> list[str]:
    section = html.split(f'id="{table}"', 1)[1].split("</table>", 1)[0]
    return re.findall(r'data-message-id="([^"]+)"', section)


async def test_message_search_filters(world: World, api: TestClient[Any, Any]) -> None:
    first, second = await push_judgment(api, world), await push_judgment(api, world)
    await write(
        world,
        update(messages)
        .where(messages.c.message_id == second["message_id"])
        .values(case_ref="THA-HN-2026-000777"),
        update(messages)
        .where(messages.c.message_id == first["message_id"])
        .values(received_at=now() - timedelta(days=10)),
    )
    await operator_client(api, world.settings)

    async def found(**params: str) -> list[str]:
        resp = await api.get("/ops/messages", params=params)
        assert resp.status == 200
        return ids_in(await resp.text(), "messages")

    both = {first["message_id"], second["message_id"]}
    assert set(await found()) == both
    assert await found(q=first["message_id"]) == [first["message_id"]]
    assert await found(q=first["message_id"][:13]) == [first["message_id"]]
    assert await found(case_ref="THA-HN-2026-000777") == [second["message_id"]]
    assert set(await found(sender=world.court.id, recipient=world.case_system.id)) == both
    assert await found(sender="NOBODY") == []
    assert set(await found(type="judgment.delivery", status="received")) == both
    assert await found(status="confirmed") == []
    today = now().date().isoformat()
    assert await found(**{"from": today}) == [second["message_id"]]
    ten_days_ago = (now() - timedelta(days=10)).date().isoformat()
    assert await found(**{"from": ten_days_ago, "to": ten_days_ago}) == [first["message_id"]]
    html = await (await api.get("/ops/messages", params={"q": second["message_id"]})).text()
    assert f'<a class="message-link" href="/ops/messages/{second["message_id"]}">' in html
    assert '<td class="status status-received">received</td>' in html
    assert 'form id="search"' in html


async def test_message_page_shows_payload_to_operators_only_and_masks_ids(
    world: World, api: TestClient[Any, Any], aiohttp_client: Any
) -> None:
    doc = await push_judgment(api, world)
    await operator_client(api, world.settings)
    resp = await api.get(f"/ops/messages/{doc['message_id']}")
    html = await resp.text()
    assert resp.status == 200
    for part in (
        'id="envelope"',
        'id="timeline"',
        'data-status="accepted"',
        'id="replies"',
        'id="deliveries"',
    ):
        assert part in html, part
    assert 'id="payload"' in html and 'id="payload-hidden"' not in html
    assert RAW_ID not in html and "001*******45" in html
    assert [(r.actor, r.action, r.message_id) for r in await audit_actions(world)][-1] == (
        "olga",
        "ops.message.payload",
        doc["message_id"],
    )

    auditor: TestClient[Any, Any] = await aiohttp_client(api.server)
    add_operator(world.settings, "ann", "auditor")
    await sign_in(auditor, "ann")
    html = await (await auditor.get(f"/ops/messages/{doc['message_id']}")).text()
    assert 'id="payload-hidden"' in html and 'id="payload"' not in html
    assert RAW_ID not in html
    assert (await auditor.get(f"/ops/messages/{uuid.uuid4()}")).status == 404


async def test_overdue_stuck_retrying_and_pending_inquiries(
    world: World, aiohttp_client: Callable[..., Any]
) -> None:
    # The api relays nothing: the four documents stay in the outbox whatever the timing. (A relaying api's
    # fallback pass drops the row of the one made final below, some time after it is: a race, not a count.)
    relay = world.settings.relay.model_copy(update={"publish_from_api": False})
    api: TestClient[Any, Any] = await aiohttp_client(
        create_app(world.settings.model_copy(update={"relay": relay}))
    )
    docs = [await push_judgment(api, world) for _ in range(4)]
    overdue, stuck, retrying, fine = (d["message_id"] for d in docs)
    long_ago = now() - timedelta(hours=5)
    inquiry_id = str(uuid.uuid4())
    await write(
        world,
        update(messages).where(messages.c.message_id == overdue).values(due_at=now() - timedelta(minutes=1)),
        update(messages).where(messages.c.message_id == stuck).values(updated_at=long_ago, status="queued"),
        insert(evidences).values(
            message_id=retrying, event="delivery_failed", at=now(), actor="gateway.delivery"
        ),
        update(messages).where(messages.c.message_id == fine).values(status="confirmed"),
        insert(inquiries).values(
            inquiry_id=inquiry_id,
            client_id=world.case_system.id,
            request_sha256="0" * 64,
            case_ref="THA-HN-2026-000123",
            officer_id="CHV-0001",
            legal_basis="LTHADS-44",
            purpose="verify assets",
            priority="normal",
            debtor_ref="001*******45",
            debtor_pseudonym="p" * 64,
            status="pending",
            due_at=now() + timedelta(minutes=5),
            created_at=now(),
            updated_at=now(),
        ),
    )
    await operator_client(api, world.settings)
    html = await (await api.get("/ops/stuck")).text()
    sections = {
        name: html.split(f'<section id="{name}">', 1)[1].split("</section>", 1)[0]
        for name in ("overdue", "pending-inquiries", "retrying", "stuck")
    }
    assert re.findall(r'data-message-id="([^"]+)"', sections["overdue"]) == [overdue]
    assert re.findall(r'data-message-id="([^"]+)"', sections["stuck"]) == [stuck]
    assert re.findall(r'data-message-id="([^"]+)"', sections["retrying"]) == [retrying]
    assert re.findall(r'data-inquiry-id="([^"]+)"', sections["pending-inquiries"]) == [inquiry_id]
    assert fine not in html

    overview = await api.get("/ops/api/overview")
    data = await overview.json()
    assert data["counts"] == {"overdue": 1, "stuck": 1, "retrying": 1, "pending_inquiries": 1}
    assert data["outbox"]["backlog"] == 4 and data["outbox"]["oldest_age_seconds"] is not None
    page = await (await api.get("/ops/")).text()
    assert re.search(r'id="overdue-count"[^>]*>1<', page) and re.search(r'id="stuck-count"[^>]*>1<', page)
    assert 'id="outbox"' in page and 'id="partners-summary"' in page and 'id="source"' in page


async def partners_world(world: World, endpoint_ok: str) -> None:
    partners = [
        {"code": "BANK-VCB", "kind": "bank", "protocol": "rest", "endpoint": endpoint_ok},
        {
            "code": "POLICE-VEH",
            "kind": "vehicle",
            "protocol": "rest",
            "endpoint": "http://127.0.0.1:9/closed",
        },
        {"code": "TAX-GDT", "kind": "tax", "protocol": "rest", "endpoint": "http://127.0.0.1:9/tax"},
    ]
    (world.settings.config_dir / "partners.toml").write_text(tomli_w.dumps({"partner": partners}))
    fresh, stale = now(), now() - timedelta(minutes=5)

    def row(partner: str, worker: str, at: Any, breaker: str, calls: int, failures: int, **kw: Any) -> Any:
        values = dict(
            partner=partner, worker=worker, updated_at=at, breaker=breaker, calls=calls, failures=failures,
            in_flight=kw.pop("in_flight", 0), **kw,
        )  # fmt: skip
        return insert(partner_health).values(**values)

    await write(
        world,
        row("BANK-VCB", "w1", fresh, "closed", 90, 0, p50_ms=20, p95_ms=80, in_flight=2),
        row("BANK-VCB", "w2", fresh, "closed", 10, 2, p50_ms=30, p95_ms=120, in_flight=1,
            last_error=f"HTTP 503 for {RAW_ID}", last_error_at=fresh),
        row("POLICE-VEH", "w1", fresh, "open", 5, 5, last_error="connection refused", last_error_at=fresh),
        row("TAX-GDT", "w1", stale, "open", 5, 5),
    )  # fmt: skip


async def test_partner_health_and_connection_test(
    world: World, api: TestClient[Any, Any], aiohttp_client: Any
) -> None:
    async def hello(_request: web.Request) -> web.Response:
        return web.Response(text="ok")

    partner_app = web.Application()
    partner_app.router.add_get("/vcb", hello)
    partner = TestServer(partner_app)
    await partner.start_server()
    try:
        await partners_world(world, str(partner.make_url("/vcb")))
        csrf = await operator_client(api, world.settings)
        html = await (await api.get("/ops/partners")).text()

        def row(code: str) -> str:
            return html.split(f'data-partner="{code}"', 1)[1].split("</tr>", 1)[0]

        vcb = row("BANK-VCB")
        assert 'class="breaker state-ok">closed<' in vcb
        assert 'class="n success-rate">98.0 %<' in vcb
        assert 'class="n p50">30<' in vcb and 'class="n p95">120<' in vcb and 'class="n in-flight">3<' in vcb
        assert "HTTP 503 for 001*******45" in vcb and RAW_ID not in html
        assert 'class="breaker state-down">open<' in row("POLICE-VEH")
        assert 'class="breaker state-unknown">unknown<' in row("TAX-GDT")
        assert 'class="test-connection"' in vcb

        ok = await api.post("/ops/partners/BANK-VCB/test", data={"csrf": csrf})
        assert ok.status == 200
        result = (await ok.text()).split('data-partner="BANK-VCB"', 1)[1].split("</tr>", 1)[0]
        assert 'class="test-result state-ok">ok: HTTP 200' in result
        down = await api.post("/ops/partners/POLICE-VEH/test", data={"csrf": csrf})
        assert 'class="test-result state-down">error:' in await down.text()
        assert (await api.post("/ops/partners/BANK-VCB/test", data={"csrf": "nope"})).status == 403
        tests = [
            (r.actor, r.object_ref, r.outcome)
            for r in await audit_actions(world)
            if r.action == "ops.partner.test"
        ]
        assert tests == [("olga", "BANK-VCB", "ok"), ("olga", "POLICE-VEH", "error")]

        auditor: TestClient[Any, Any] = await aiohttp_client(api.server)
        add_operator(world.settings, "ann", "auditor")
        auditor_csrf = await sign_in(auditor, "ann")
        page = await (await auditor.get("/ops/partners")).text()
        assert 'class="test-connection" disabled' in page
        denied = await auditor.post("/ops/partners/BANK-VCB/test", data={"csrf": auditor_csrf})
        assert denied.status == 403
    finally:
        await partner.close()


async def test_overview_json_lists_partners(world: World, api: TestClient[Any, Any]) -> None:
    await partners_world(world, "http://127.0.0.1:9/vcb")
    await operator_client(api, world.settings)
    data = await (await api.get("/ops/api/overview")).json()
    assert {p["code"]: p["breaker"] for p in data["partners"]} == {
        "BANK-VCB": "closed",
        "POLICE-VEH": "open",
        "TAX-GDT": "unknown",
    }
    assert data["source"] in ("AMQP", "AMQP + management API", "unavailable")
    assert json.dumps(data)  # plain JSON for the page's script
    css = await api.get("/ops/static/ops.css")
    assert css.status == 200


async def test_overview_from_the_management_api(
    tmp_path: Any, fresh_database_url: str, aiohttp_client: Any
) -> None:
    """With the management API answering, the page adds its unacked counts and rates to the depths read
    over AMQP, and says so. The management API's own counts (stale by its sampling interval) are not used:
    it claims 70 ready here, the broker holds 7."""
    seen: list[str] = []
    cleanup: list[Any] = []

    async def queues(request: web.Request) -> web.Response:
        seen.append(request.headers.get("Authorization", ""))
        ns = request.query["name"].lstrip("^").rstrip(".")
        return web.json_response(
            [
                {
                    "name": f"{ns}.deliver.THADS-HN",
                    "messages_ready": 70,
                    "messages_unacknowledged": 3,
                    "consumers": 2,
                    "message_stats": {"publish_details": {"rate": 1.5}, "deliver_get_details": {"rate": 2.0}},
                },
                {"name": f"{ns}.parking.{ns}.deliver.THADS-HN", "messages_ready": 40},
            ]
        )

    management = web.Application()
    management.router.add_get("/api/queues/{vhost}", queues)
    server = TestServer(management)
    await server.start_server()
    try:
        world = make_world(
            tmp_path,
            fresh_database_url,
            ops={
                "management_url": str(server.make_url("/")),
                "management_user": "mon",
                "management_password": "pw",
            },
        )
        queue = f"{world.settings.broker_namespace}.deliver.THADS-HN"
        parking = f"{world.settings.broker_namespace}.parking.{queue}"
        connection = await aio_pika.connect(world.settings.broker_url)
        channel = await connection.channel()
        cleanup.extend((connection, channel, queue, parking))
        for name, count in ((queue, 7), (parking, 4)):
            await channel.declare_queue(name)
            for _ in range(count):
                await channel.default_exchange.publish(aio_pika.Message(b"{}"), routing_key=name)
        client: TestClient[Any, Any] = await aiohttp_client(create_app(world.settings))
        await operator_client(client, world.settings)
        html = await (await client.get("/ops/")).text()
        assert re.search(r'id="source">AMQP \+ management API<', html)
        row = html.split(f'data-queue="{queue}"', 1)[1].split("</tr>", 1)[0]
        for cell, value in (
            ("depth", 10),
            ("ready", 7),
            ("unacked", 3),
            ("consumers", 0),
            ("publish-rate", 1.5),
        ):
            assert f'class="n {cell}">{value}<' in row, cell
        assert '">4</a></td>' in row  # parked, linked to the parking page
        assert seen and seen[0].startswith("Basic ")
    finally:
        await server.close()
        if cleanup:
            connection, channel, *declared = cleanup
            for name in declared:
                await channel.queue_delete(name)
            await connection.close()
