"""The platforms as the demo runs them: the demo's --platforms configuration loads whole (partners,
platforms, the provider side), and a court that is an X-Road client pushes a judgment through the
simulated security server — no token, the security server vouching for it — and gets its receipt,
with the X-Road response headers and the call in the audit."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp.test_utils import TestServer
from sqlalchemy import select

from gateway.demo import COURT_XROAD_ID, XROAD_CLIENT, XROAD_FILE, write_platforms
from gateway.partners import load_partners, load_platforms, route_of
from gateway.security.xroad_inbound import load_xroad_inbound
from gateway.simulators.platforms import PROVIDER_SERVICE, provided, start_platforms
from gateway.storage.audit import record
from gateway.storage.database import Database
from gateway.storage.tables import audit_log
from gateway.web.app import create_app
from tests.conftest import ROOT, fresh_judgment, make_world
from tests.support.gateway_procs import free_port


def demo_config(config: Path) -> None:
    shutil.copy(ROOT / "config" / "partners.toml", config / "partners.toml")
    shutil.copytree(ROOT / "config" / "wsdl", config / "wsdl", dirs_exist_ok=True)
    write_platforms(config)


def test_the_demo_platform_configuration_loads_whole(tmp_path: Path) -> None:
    demo_config(tmp_path)
    partners = {p.code: p for p in load_partners(tmp_path)}
    assert partners["LAND-REG"].transport == "xroad" and partners["LAND-REG"].xroad is not None
    assert partners["BANK-VCB"].transport == "lgsp" and partners["BANK-BIDV"].transport == "lgsp"
    assert partners["BANK-CTG"].transport == "direct"
    platforms = load_platforms(tmp_path)
    assert platforms.xroad is not None and platforms.xroad.client == XROAD_CLIENT
    assert set(platforms.lgsp) == {"HN"}
    inbound = load_xroad_inbound(tmp_path)
    assert inbound.enabled and [m.client for m in inbound.settings.client] == ["TAND-HN"]


async def test_a_court_pushes_a_judgment_through_the_security_server(
    tmp_path: Path, fresh_database_url: str
) -> None:
    api_port, ss_port = free_port(), free_port()
    world = make_world(
        tmp_path, fresh_database_url, api={"public_url": f"http://127.0.0.1:{api_port}", "port": api_port}
    )
    config = world.settings.config_dir
    (config / "partners.toml").write_text(
        f'[platforms.xroad]\nsecurity_server = "http://127.0.0.1:{ss_port}"\nclient = "{XROAD_CLIENT}"\n',
        "utf-8",
    )
    (config / XROAD_FILE).write_text(
        "[provider]\nenabled = true\n"
        '[[security_server]]\nname = "ss-demo"\naddresses = ["127.0.0.1"]\n'
        f'[[client]]\nxroad_id = "{COURT_XROAD_ID}"\nclient = "TAND-HN"\n',
        "utf-8",
    )
    server = TestServer(create_app(world.settings), host="127.0.0.1", port=api_port)
    await server.start_server()
    platforms = await start_platforms(config, provided(world.settings))
    try:
        assert platforms.security_server is not None
        judgment = fresh_judgment()
        url = f"http://127.0.0.1:{ss_port}/r1/{XROAD_CLIENT}/{PROVIDER_SERVICE}/v1/judgments"
        # The clerk's X-Road user id: a country prefix and a personal ID number.
        headers = {"X-Road-Client": COURT_XROAD_ID, "X-Road-UserId": "VN001085012345"}
        async with aiohttp.ClientSession() as http:
            async with http.post(url, json=judgment, headers=headers) as resp:
                body = await resp.json()
                assert resp.status == 202, body
                assert resp.headers["X-Road-Client"] == COURT_XROAD_ID
                assert resp.headers["X-Road-Request-Hash"]
                x_road_id = resp.headers["X-Road-Id"]
            assert body["message_id"] == judgment["message_id"] and body["sender"] == "TAND-HN"
            assert body["signature"]
            # Another X-Road client, not mapped to a registered client, is refused by the gateway.
            stranger = {"X-Road-Client": "XROADVN/GOV/000.00.00.T99/TAND-XX"}
            async with http.post(url, json=fresh_judgment(), headers=stranger) as resp:
                assert resp.status >= 400
    finally:
        await platforms.close()
        await server.close()
    db = Database(world.settings.resolved_database_url)
    try:
        async with db.read() as conn:
            rows = [record(r) for r in await conn.execute(select(audit_log).order_by(audit_log.c.id))]
    finally:
        await db.dispose()
    pushed = [r for r in rows if r["action"] == "judgments.push" and r["outcome"] != "refused"]
    assert pushed, rows
    xroad: dict[str, Any] = json.loads(json.dumps(pushed[0]["data"]))["xroad"]
    assert xroad["client"] == COURT_XROAD_ID and xroad["id"] == x_road_id
    assert xroad["user_id"] and "001085012345" not in json.dumps(rows)  # masked like any personal ID


def test_operators_see_how_each_partner_is_reached(tmp_path: Path) -> None:
    """The console's partners page and its connection test use the route: the platform in front of a
    partner, not the partner's own address the gateway never calls."""
    demo_config(tmp_path)
    partners = {p.code: p for p in load_partners(tmp_path)}
    platforms = load_platforms(tmp_path)
    land = route_of(partners["LAND-REG"], platforms)
    assert land.url == "http://127.0.0.1:9110" and land.label == "X-Road XROADVN/GOV/000.00.00.G12/LAND-REG"
    vcb = route_of(partners["BANK-VCB"], platforms)
    assert vcb.url == "http://127.0.0.1:9120/lgsp/bank-vcb" and vcb.label == "LGSP HN /bank-vcb"
    assert route_of(partners["BANK-CTG"], platforms).url == partners["BANK-CTG"].endpoint
    assert route_of(partners["BANK-VPB"], platforms).label.startswith("pull")
