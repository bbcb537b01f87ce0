"""The citizen's data-access report end to end: lookups, orders and notices for several people through the
real api, worker, broker and partner simulators; each person's report (GET /v1/data-access, and
``python run.py data-access``) lists exactly what was done with their data, and nothing of anyone else's;
asking for it is audited, and the audit trail never holds a clear personal ID."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from gateway.storage.database import Database
from gateway.storage.tables import audit_log
from tests.conftest import ROOT, example
from tests.support import orders
from tests.support.citizen_world import CitizenWorld, citizen_gateway, notice
from tests.support.order_flow import fresh

pytestmark = pytest.mark.rabbitmq

ANNA = "001085012345"  # the simulators' rich debtor: lookups find something
BINH = "001090000000"  # nothing anywhere
CHI = "079090004567"  # only looked up


@pytest.fixture
async def cw(tmp_path: Path) -> AsyncIterator[CitizenWorld]:
    async with citizen_gateway(tmp_path) as world:
        yield world


async def lookup(cw: CitizenWorld, person: str) -> str:
    request = example("asset-inquiry", "valid-bank-list-and-tax.json")
    request["debtor"] = {"id_number": person, "full_name": "Người được tra cứu"}
    request["sources"] = ["tax", "land"]
    request.pop("callback_url")
    headers = cw.case_headers() | {"Prefer": "wait=15"}
    resp = await cw.api.post("/v1/asset-inquiries", json=request, headers=headers)
    body: dict[str, Any] = await resp.json()
    assert resp.status == 200 and body["status"] == "complete", body
    return str(body["inquiry_id"])


async def send(cw: CitizenWorld, document: dict[str, Any]) -> str:
    resp = await cw.api.post("/v1/documents", json=document, headers=cw.case_headers())
    assert resp.status == 202, await resp.text()
    return str(document["message_id"])


async def answered(cw: CitizenWorld, message_id: str) -> None:
    deadline = asyncio.get_running_loop().time() + 20
    while True:
        resp = await cw.api.get(f"/v1/messages/{message_id}", headers=cw.case_headers())
        view = await resp.json()
        if view["status"] == "answered":
            return
        assert asyncio.get_running_loop().time() < deadline, view
        await asyncio.sleep(0.1)


async def report(cw: CitizenWorld, person: str) -> dict[str, Any]:
    resp = await cw.api.get("/v1/data-access", params={"person_id": person}, headers=cw.portal_headers())
    body: dict[str, Any] = await resp.json()
    assert resp.status == 200, body
    return body


def blocking_for(person: str) -> dict[str, Any]:
    order = fresh(orders.blocking("BANK-VCB", 1_000_000))
    order["body"]["debtor"] = {"id_number": person, "full_name": "Người phải thi hành án"}
    return order


async def test_each_report_lists_exactly_that_persons_lookups_orders_and_notices(cw: CitizenWorld) -> None:
    done: dict[str, list[tuple[str, str]]] = {ANNA: [], BINH: [], CHI: []}
    for person in (ANNA, BINH):
        done[person].append(("lookup", await lookup(cw, person)))
        order = await send(cw, blocking_for(person))
        done[person].append(("order", order))
        note = await send(cw, notice(person))
        done[person].append(("notice", note))
        await answered(cw, order)
        await answered(cw, note)
    done[CHI].append(("lookup", await lookup(cw, CHI)))

    for person, expected in done.items():
        got = await report(cw, person)
        assert [(a["kind"], a["reference"]) for a in got["accesses"]] == expected, person
        for access in got["accesses"]:
            assert access["agency"] == "THADS-HN" and access["case_ref"]
            assert access["legal_basis"] and access["purpose"]
            assert access["officer"].count("*") == 7  # masked, as the audit trail holds it
        assert person not in json.dumps(got)

    anna = {a["kind"]: a for a in (await report(cw, ANNA))["accesses"]}
    assert anna["lookup"]["categories_asked"] == ["land", "tax"]
    assert set(anna["lookup"]["categories_returned"]) <= {"land", "tax"}
    assert anna["lookup"]["categories_returned"]  # the rich debtor is found somewhere
    assert anna["order"]["message_type"] == "order.account_blocking"
    assert anna["order"]["recipient"] == "BANK-VCB"
    assert anna["order"]["categories_returned"] == ["report.account_blocking"]
    assert anna["notice"]["recipient"] == "VNEID"
    assert anna["notice"]["categories_returned"] == ["notice.delivery_status"]
    binh = {a["kind"]: a for a in (await report(cw, BINH))["accesses"]}
    assert binh["lookup"]["categories_returned"] == []  # asked everywhere, found nowhere

    # The command line prints the same report.
    env = {
        "GATEWAY_CONFIG_DIR": str(cw.settings.config_dir),
        "GATEWAY_DATABASE_URL": cw.settings.database_url,
        "GATEWAY_LOG_LEVEL": "WARNING",
        "PATH": "/usr/bin:/bin",
    }
    cli = await asyncio.to_thread(
        subprocess.run,
        [sys.executable, str(ROOT / "run.py"), "data-access", ANNA, "--actor", "auditor-1"],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert cli.returncode == 0, cli.stderr
    printed = json.loads(cli.stdout)
    assert printed["accesses"] == (await report(cw, ANNA))["accesses"]

    # Every report asked for is audited, by whom, without the ID; no audit record holds a clear ID.
    db = Database(cw.settings.resolved_database_url)
    try:
        async with db.read() as conn:
            rows = (await conn.execute(select(audit_log).order_by(audit_log.c.id))).all()
    finally:
        await db.dispose()
    asked = [r for r in rows if r.action == "data_access.read"]
    assert [r.actor for r in asked].count("DVCQG") == 6 and asked[-1].actor == "DVCQG"
    assert any(r.actor == "cli:auditor-1" for r in asked)
    for row in rows:
        text = " ".join(str(v) for v in (row.data, row.object_ref, row.reason, row.subject))
        assert not any(person in text for person in done), row


async def test_report_is_refused_without_its_grant_or_a_personal_id(cw: CitizenWorld) -> None:
    resp = await cw.api.get("/v1/data-access", params={"person_id": ANNA}, headers=cw.case_headers())
    assert resp.status == 403
    resp = await cw.api.get("/v1/data-access", params={"person_id": "12345"}, headers=cw.portal_headers())
    assert resp.status == 422
    assert (await resp.json())["errors"][0]["path"] == "person_id"
    resp = await cw.api.get("/v1/data-access", headers=cw.portal_headers())
    assert resp.status == 422
