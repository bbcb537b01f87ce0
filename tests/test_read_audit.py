"""Reads of personal data are audited: who (client), for whom (the token's subject, an officer), which
message or inquiry, and never the data itself."""

from __future__ import annotations

import json
from typing import Any

import pytest
from aiohttp.test_utils import TestClient
from sqlalchemy import select

from gateway.domain.calendar import WorkingCalendar
from gateway.domain.errors import NotFound
from gateway.partners import load_partners
from gateway.reference_data import load_calendar, load_legal_bases
from gateway.security.clients import Client
from gateway.security.tokens import Principal
from gateway.services.inquiries import InquiryService
from gateway.storage.audit import verify_chain
from gateway.storage.database import Database
from gateway.storage.tables import audit_log
from gateway.validation import catalog
from tests.conftest import CASE_SYSTEM, COURT, EXAMPLES, ROOT, World, fresh_judgment


async def reads(db: Database, action: str) -> list[Any]:
    async with db.read() as conn:
        query = select(audit_log).where(audit_log.c.action == action).order_by(audit_log.c.id)
        return list((await conn.execute(query)).all())


async def test_reading_a_message_is_audited_with_client_and_subject(
    world: World, api: TestClient[Any, Any]
) -> None:
    doc = fresh_judgment()
    pushed = await api.post("/v1/judgments", json=doc, headers=world.court_headers())
    assert pushed.status == 202
    message_id = doc["message_id"]

    got = await api.get(f"/v1/messages/{message_id}", headers=world.court_headers(subject="clerk-07"))
    assert got.status == 200
    also = await api.get(f"/v1/messages/{message_id}", headers=world.case_headers(subject="001234567890"))
    assert also.status == 200

    db = Database(world.settings.resolved_database_url)
    try:
        rows = await reads(db, "messages.read")
        async with db.read() as conn:
            assert await verify_chain(conn) is None
    finally:
        await db.dispose()
    assert [(r.actor, r.subject, r.outcome, r.message_id, r.status_code) for r in rows] == [
        (COURT, "clerk-07", "read", message_id, 200),
        (CASE_SYSTEM, "001*******90", "read", message_id, 200),  # a subject that is an ID: masked
    ]
    assert json.loads(rows[0].data) == {"message_type": "judgment.delivery", "status": "received"}


async def test_a_message_not_shown_is_not_recorded_as_read(world: World, api: TestClient[Any, Any]) -> None:
    missing = "00000000-0000-4000-8000-000000000001"
    assert (await api.get(f"/v1/messages/{missing}", headers=world.court_headers())).status == 404
    db = Database(world.settings.resolved_database_url)
    try:
        assert await reads(db, "messages.read") == []
    finally:
        await db.dispose()


def inquiry_service(db: Database) -> InquiryService:
    config = ROOT / "config"
    calendar: WorkingCalendar = load_calendar(config)
    return InquiryService(
        db, catalog(), load_partners(config), load_legal_bases(config), calendar, pepper=b"p" * 32
    )


def officer(client_id: str = CASE_SYSTEM) -> Principal:
    client = Client(id=client_id, name=client_id, grants=frozenset({"assets.inquire"}), keys=())
    return Principal(client=client, subject="officer-0042", token_id="t-1")


async def test_reading_an_inquiry_is_audited_and_never_in_clear(db: Database) -> None:
    body = json.loads((EXAMPLES / "asset-inquiry" / "valid-all-registers.json").read_text("utf-8"))
    service = inquiry_service(db)
    principal = officer()
    created, _ = await service.create(principal, body, None)
    inquiry_id = created["inquiry_id"]
    assert await reads(db, "assets.read") == [], "creating is audited as a lookup, not as a read"

    await service.view(principal, inquiry_id)
    listed = await service.for_case(principal, body["case_ref"])
    assert [v["inquiry_id"] for v in listed] == [inquiry_id]
    await service.wait(principal, inquiry_id, 0)

    rows = await reads(db, "assets.read")
    assert len(rows) == 3
    for row in rows:
        assert (row.actor, row.subject, row.outcome, row.object_ref) == (
            CASE_SYSTEM,
            "officer-0042",
            "read",
            inquiry_id,
        )
        data = json.loads(row.data)
        assert data == {"case_ref": body["case_ref"], "status": "pending", "sources_shown": []}
    identity = body["debtor"].get("id_number") or body["debtor"]["enterprise_code"]
    async with db.read() as conn:
        everything = (await conn.execute(select(audit_log.c.data, audit_log.c.reason))).all()
        assert await verify_chain(conn) is None
    assert not any(identity in (r.data or "") + (r.reason or "") for r in everything)


async def test_someone_elses_inquiry_is_not_shown_nor_recorded(db: Database) -> None:
    body = json.loads((EXAMPLES / "asset-inquiry" / "valid-all-registers.json").read_text("utf-8"))
    service = inquiry_service(db)
    created, _ = await service.create(officer(), body, None)
    other = officer("THADS-HCM")
    with pytest.raises(NotFound):
        await service.view(other, created["inquiry_id"])
    assert await service.for_case(other, body["case_ref"]) == []
    assert await reads(db, "assets.read") == []
