"""No personal ID in clear anywhere in the audit log: whatever string a caller hands the audit (a token's
``sub``, a lookup's ``purpose``, reasons, data), in whatever grouping or digits, it is masked by the one
definition of an ID before it is hashed into the chain; and a person's data-access report shows no one
else's ID."""

from __future__ import annotations

import json
import re
import shutil
import unicodedata
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer
from sqlalchemy import select

from gateway.domain.identifiers import PERSONAL_ID, scrub, scrub_value
from gateway.logs import request_id, scrub_event
from gateway.openapi_schemas import FORMAT_PATTERNS
from gateway.security.clients import ClientStore
from gateway.security.keys import generate_keypair, public_pem
from gateway.storage.audit import AuditEntry, append, verify_chain
from gateway.storage.database import Database
from gateway.storage.tables import audit_log
from gateway.web.app import create_app
from tests.conftest import EXAMPLES, ROOT, Party, World, make_world

ANNA = "001085012345"  # the debtor looked up
BINH = "079090004567"  # another person, named in the purpose of Anna's lookup
OFFICER = "001080000001"
CLERK = "048082000017"  # an officer whose token's sub is their ID
FORMS = {
    "plain": "079090004567",
    "spaces": "079 090 004 567",
    "hyphens": "079-090-004-567",
    "dots": "079.090.004.567",
    "full-width": "０７９０９０００４５６７",
    "mixed": "079０９０ 004-５６７",
    "fours": "0790 9000 4567",
}
AGENCY = "THADS-HCM"


def in_clear(text: str, person: str) -> bool:
    """Whether ``person``'s ID can be read in ``text``: full-width digits folded to ASCII, separators
    between digits dropped."""
    folded = unicodedata.normalize("NFKC", text)
    joined = re.sub(r"(?<=\d)[\s.\-\u2010-\u2015]+(?=\d)", "", folded)
    return person in joined


@pytest.mark.parametrize("form", FORMS)
def test_every_form_of_an_id_is_masked_the_same_way(form: str) -> None:
    assert scrub(f"see {FORMS[form]}, then") == "see 079*******67, then"


def test_ids_of_other_lengths_and_what_is_spared() -> None:
    assert scrub("CMND 123456789") == "CMND *******89"  # the old 9-digit ID card
    assert scrub("account 0123456789012") == "account 012********12"
    kept = [
        "THA-HN-2026-000123",  # a case reference: year and serial
        "TAND-HN/2025/DS/0456",
        "5f0d9a3e-7c2b-4e8a-9b1d-202612070812",  # a message id ending in twelve digits
        "16a08eacb52144f150b4e5e43dc93caf6b4548dd2e768105473d001185012345",  # a digest
        "2026-12-07T08:49:11.123456+00:00",
        "2026-12-07 08:49",
        "1,500,000,000",  # an amount as the gateway writes it
        "12345678",
    ]
    for text in kept:
        assert scrub(text) == text
    assert scrub_value({"n": 1234567890123, "s": [ANNA]}) == {"n": 1234567890123, "s": ["001*******45"]}


def test_the_schemas_personal_id_is_the_one_definition() -> None:
    assert FORMAT_PATTERNS["vn-personal-id"] == PERSONAL_ID.pattern
    assert PERSONAL_ID.fullmatch(ANNA) and not PERSONAL_ID.fullmatch("099085012345")


async def test_append_scrubs_every_field_before_hashing(db: Database) -> None:
    async with db.transaction() as conn:
        await append(
            conn,
            AuditEntry(
                actor="THADS-HN",
                subject=FORMS["full-width"],
                action="judgments.push",
                outcome="rejected",
                object_ref=f"ref {FORMS['dots']}",
                reason=f"$.body.debtor.id_number {FORMS['spaces']} is not valid",
                data={"purpose": f"for {FORMS['hyphens']}", "ids": [FORMS["mixed"]], FORMS["plain"]: 1},
            ),
        )
    async with db.read() as conn:
        row = (await conn.execute(select(audit_log))).one()
        assert await verify_chain(conn) is None
    stored = json.dumps([str(v) for v in row._mapping.values()], ensure_ascii=False)
    assert not in_clear(stored, BINH), stored
    assert row.subject == "079*******67"


@pytest.fixture
def officers(tmp_path: Path, fresh_database_url: str) -> tuple[World, Party]:
    """A gateway with an enforcement agency that may look up assets and read data-access reports."""
    world = make_world(tmp_path, fresh_database_url)
    for name in ("partners.toml", "legal_bases.toml", "holidays.toml"):
        shutil.copy(ROOT / "config" / name, world.settings.config_dir / name)
    key = generate_keypair("ed25519")
    ClientStore(world.settings.clients_dir).add(
        AGENCY, public_pem(key.public_key()), ["assets.inquire", "data_access.read"]
    )
    return world, Party(AGENCY, key)


async def look_up(api: TestClient[Any, Any], world: World, agency: Party, subject: str, purpose: str) -> None:
    body = json.loads((EXAMPLES / "asset-inquiry" / "valid-all-registers.json").read_text("utf-8"))
    body |= {"purpose": purpose, "officer_id": OFFICER}
    body["debtor"]["id_number"] = ANNA
    resp = await api.post(
        "/v1/asset-inquiries", json=body, headers=agency.headers(world.settings, subject=subject)
    )
    assert resp.status == 202, await resp.text()


async def test_no_id_in_clear_in_the_audit_table_after_real_requests(officers: tuple[World, Party]) -> None:
    world, agency = officers
    async with TestClient(TestServer(create_app(world.settings))) as api:
        for form in FORMS.values():
            await look_up(api, world, agency, CLERK, f"Assets of the debtor; the creditor is {form}")
        await look_up(api, world, agency, "０４８ ０８２ ０００ ０１７", "Verify enforcement conditions")
        read = await api.get(
            "/v1/data-access",
            params={"person_id": ANNA},
            headers=agency.headers(world.settings, subject=CLERK),
        )
        assert read.status == 200, await read.text()
    db = Database(world.settings.resolved_database_url)
    try:
        async with db.read() as conn:
            rows = (await conn.execute(select(audit_log))).all()
            assert await verify_chain(conn) is None
    finally:
        await db.dispose()
    assert len(rows) >= len(FORMS) + 2
    for row in rows:
        stored = " | ".join(str(v) for k, v in row._mapping.items() if k not in ("prev_hash", "hash"))
        for person in (ANNA, BINH, CLERK, OFFICER):
            assert not in_clear(stored, person), stored
        ours = re.sub(
            r"\b[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}\b|\b[0-9a-f]{64}\b", "", stored
        )
        assert not re.search(r"\d{12}", ours), stored


async def test_a_persons_report_shows_no_one_elses_id(officers: tuple[World, Party]) -> None:
    world, agency = officers
    async with TestClient(TestServer(create_app(world.settings))) as api:
        await look_up(api, world, agency, "officer-7", f"Anna owes {FORMS['spaces']} ({FORMS['full-width']})")
        resp = await api.get(
            "/v1/data-access", params={"person_id": ANNA}, headers=agency.headers(world.settings)
        )
        assert resp.status == 200, await resp.text()
        report = await resp.json()
    assert [a["kind"] for a in report["accesses"]] == ["lookup"]
    assert report["accesses"][0]["purpose"] == "Anna owes 079*******67 (079*******67)"
    assert not in_clear(json.dumps(report, ensure_ascii=False), BINH)


def test_every_log_line_is_scrubbed_by_the_same_rule() -> None:
    line = {"event": f"lookup for {FORMS['dots']} failed", "detail": {"sub": FORMS["full-width"]}, "n": 7}
    assert scrub_event(None, "warning", line) == {
        "event": "lookup for 079*******67 failed",
        "detail": {"sub": "079*******67"},
        "n": 7,
    }
    assert request_id("caller-079.090.004.567") != "caller-079.090.004.567"
    assert request_id("5f0d9a3e-7c2b-4e8a-9b1d-202612070812") == "5f0d9a3e-7c2b-4e8a-9b1d-202612070812"
