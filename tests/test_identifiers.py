"""One definition per identifier: the code's patterns are the schemas' patterns, and a message id is
the same message whatever the letter case it is written in."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from aiohttp.test_utils import TestClient

import gateway
from gateway.domain import identifiers
from gateway.domain.identifiers import canonical_ids, canonical_uuid
from gateway.openapi_schemas import component_name, components_from_files, message_schemas
from gateway.validation import format_checker
from tests.conftest import World, fresh_judgment

COMMON = json.loads((Path(gateway.__file__).parent / "schemas" / "common.schema.json").read_text("utf-8"))


def test_agency_code_and_case_ref_patterns_are_the_schemas_own() -> None:
    assert COMMON["$defs"]["agency_code"]["pattern"] == identifiers.AGENCY_CODE.pattern
    assert COMMON["$defs"]["case_ref"]["pattern"] == identifiers.CASE_REF.pattern


def test_the_personal_id_the_schemas_state_is_the_one_definition() -> None:
    # The files say it as the format vn-personal-id; the published schemas as a pattern.
    assert COMMON["$defs"]["personal_id"] == {
        "description": COMMON["$defs"]["personal_id"]["description"],
        "type": "string",
        "format": "vn-personal-id",
    }
    published = components_from_files(message_schemas())[component_name("common")]
    assert published["$defs"]["personal_id"]["pattern"] == identifiers.PERSONAL_ID.pattern
    checker = format_checker()
    for value in (
        "001085012345",
        "096999999999",
        "000123456789",
        "097123456789",
        "00108501234",
        "0010850123456",
        "001085012345\n",
        "\uff10\uff10\uff11085012345",
    ):
        accepted = identifiers.is_personal_id(value)
        assert checker.conforms(value, "vn-personal-id") is accepted, value
        assert (re.fullmatch(published["$defs"]["personal_id"]["pattern"], value) is not None) is accepted


def test_client_ids_partner_codes_and_the_gateway_code_use_the_agency_code_pattern() -> None:
    from gateway.partners import Partner
    from gateway.security.clients import CLIENT_ID
    from gateway.settings import Settings

    assert CLIENT_ID is identifiers.AGENCY_CODE
    assert Partner.model_fields["code"].metadata[0].pattern == identifiers.AGENCY_CODE.pattern
    assert Settings.model_fields["agency_code"].metadata[0].pattern == identifiers.AGENCY_CODE.pattern


def test_a_uuid_has_one_stored_spelling() -> None:
    upper = "5F0D9A3E-7C2B-4E8A-9B1D-2A6C4E8F0B11"
    assert canonical_uuid(upper) == upper.lower()
    assert canonical_uuid("not-a-uuid") is None
    doc = canonical_ids({"message_id": upper, "in_reply_to": upper, "sender": "TAND-HN"})
    assert doc == {"message_id": upper.lower(), "in_reply_to": upper.lower(), "sender": "TAND-HN"}


async def test_a_judgment_pushed_with_an_upper_case_message_id_can_be_followed(
    api: TestClient[Any, Any], world: World
) -> None:
    doc = fresh_judgment()
    doc["message_id"] = doc["message_id"].upper()
    resp = await api.post("/v1/judgments", json=doc, headers=world.court_headers())
    assert resp.status == 202, await resp.text()
    assert (await resp.json())["message_id"] == doc["message_id"].lower()
    for spelling in (doc["message_id"], doc["message_id"].lower()):
        got = await api.get(f"/v1/messages/{spelling}", headers=world.court_headers())
        assert got.status == 200, await got.text()
    again = await api.post("/v1/judgments", json=doc, headers=world.court_headers())
    assert again.status == 200  # the same message, not a conflict
