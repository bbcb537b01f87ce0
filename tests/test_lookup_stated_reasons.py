"""Every lookup a partner receives states its case, officer, legal basis, title (judgment and enforcement
decision), purpose and deadline: from the inquiry through the queued request to every partner's wire."""

from __future__ import annotations

import copy
import json
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import aiohttp
import pytest

from gateway.domain.lookup import LookupRequest, Subject
from gateway.services.inquiries import parse_request, request_payload, whole_second
from gateway.validation import catalog
from tests.conftest import EXAMPLES
from tests.support.lookup_requests import STATED, TITLE, TITLE_JSON, TITLE_XML
from tests.support.lookup_world import PARTNER_CODES, running_gateway
from tests.test_asset_inquiry_flow import inquiry

ICT = timezone(timedelta(hours=7))
BASE = json.loads((EXAMPLES / "asset-inquiry" / "valid-all-registers.json").read_text("utf-8"))


def lookup(**changes: Any) -> LookupRequest:
    values: dict[str, Any] = {
        "request_ref": "req-1",
        "inquiry_id": "inq-1",
        "source_id": "tax",
        "partner_code": "TAX",
        "kind": "tax",
        "subject": Subject(id_number="001085012345", full_name="Nguyễn Văn An"),
        "case_ref": "THA-HN-2026-000123",
        "purpose": "Verify enforcement conditions",
        **STATED,
    }
    return LookupRequest(**(values | changes))


# -- the inquiry -------------------------------------------------------------------------------------


def test_an_inquiry_without_a_title_is_refused_naming_it() -> None:
    body = copy.deepcopy(BASE)
    del body["title"]

    violations = catalog().violations("asset.inquiry", body)

    assert [(v.path, v.rule) for v in violations] == [("$.title", "required")]  # the missing member's path
    assert "'title'" in violations[0].message


@pytest.mark.parametrize(
    ("change", "path"),
    [
        ({"judgment": {**TITLE_JSON["judgment"], "number": "bản án 123"}}, "$.title.judgment.number"),
        ({"judgment": {**TITLE_JSON["judgment"], "court_code": "tand hn"}}, "$.title.judgment.court_code"),
        ({"enforcement_decision": {"number": "152/QĐ-THADS"}}, "$.title.enforcement_decision.date"),
        ({"decision": TITLE_JSON["enforcement_decision"]}, "$.title"),
    ],
    ids=["judgment-number", "court-code", "decision-without-date", "unknown-member"],
)
def test_the_title_is_the_orders_title(change: dict[str, Any], path: str) -> None:
    body = copy.deepcopy(BASE)
    body["title"] = {**TITLE_JSON, **change}

    assert [v.path for v in catalog().violations("asset.inquiry", body)] == [path]


# -- the queued request ------------------------------------------------------------------------------


def test_the_queued_request_carries_the_stated_fields_and_reads_back() -> None:
    request = lookup()

    payload = request_payload(request)

    assert payload["officer_id"] == "001080000001"
    assert payload["legal_basis"] == "LTHADS-44"
    assert payload["title"] == TITLE_JSON
    assert payload["due_at"] == "2026-03-05T23:59:59+07:00"
    assert parse_request(json.dumps(payload).encode()) == request
    assert "001080000001" not in repr(request)  # a request that ends up in a log line leaves the officer out


def test_a_request_queued_before_the_stated_fields_existed_is_still_read() -> None:
    queued_earlier = {
        "request_ref": "req-1",
        "inquiry_id": "inq-1",
        "source_id": "bank:BANK-VCB",
        "partner_code": "BANK-VCB",
        "kind": "bank",
        "subject": {"id_number": "001085012345"},
        "case_ref": "THA-HN-2026-000123",
        "purpose": "Verify enforcement conditions",
        "callback_url": "http://127.0.0.1:8080",
    }

    request = parse_request(json.dumps(queued_earlier).encode())

    assert (request.officer_id, request.legal_basis, request.title, request.due_at) == (None,) * 4
    assert request.case_ref == "THA-HN-2026-000123" and request.callback_url == "http://127.0.0.1:8080"
    assert request_payload(request) == queued_earlier  # nothing added, nothing sent as null


@pytest.mark.parametrize(
    "body",
    [b"[]", b'{"title": {}}', json.dumps({**request_payload(lookup()), "title": {"judgment": "x"}}).encode()],
    ids=["not-an-object", "no-subject", "malformed-title"],
)
def test_an_unreadable_request_raises_what_the_worker_parks_on(body: bytes) -> None:
    with pytest.raises((ValueError, TypeError, KeyError)):
        parse_request(body)


def test_deadlines_are_whole_seconds_never_earlier() -> None:
    at = datetime(2026, 3, 5, 10, 0, 0, 250_000, tzinfo=ICT)
    assert whole_second(at) == datetime(2026, 3, 5, 10, 0, 1, tzinfo=ICT)
    assert whole_second(at.replace(microsecond=0)) == at.replace(microsecond=0)


# -- end to end --------------------------------------------------------------------------------------


@pytest.mark.rabbitmq
async def test_every_partner_is_told_case_officer_legal_basis_title_purpose_and_deadline(
    tmp_path: Any,
) -> None:
    async with running_gateway(tmp_path) as (lw, api):
        headers = {**lw.world.case_headers(), "Prefer": "wait=20"}
        resp = await api.post("/v1/asset-inquiries", json=inquiry(), headers=headers)
        assert resp.status == 200, await resp.text()
        view = await resp.json()
        assert view["status"] == "complete"
        sources = {s["source"]: s for s in view["sources"]}
        body = inquiry()
        told: dict[str, Any] = {}
        async with aiohttp.ClientSession() as http:
            for code in PARTNER_CODES:
                async with http.get(lw.partners.last_request_url(code)) as seen:
                    assert seen.status == 200, code
                    told[code] = await seen.json()

    officer = body["officer_id"][:3] + "*******" + body["officer_id"][-2:]  # masked by the simulators
    for code, (kind, _) in PARTNER_CODES.items():
        source = sources["land" if kind == "land" else f"bank:{code}" if kind == "bank" else kind]
        assert source["status"] in ("found", "not_found"), (code, source)
        seen = told[code]
        if kind == "land":
            stated = {
                "case_ref": seen["CaseRef"],
                "officer_id": seen["OfficerId"],
                "legal_basis": seen["LegalBasis"],
                "title": seen["Title"],
                "purpose": seen["Purpose"],
                "due_at": seen["DueAt"],
            }
            title = TITLE_XML
        else:
            stated = {key: seen[key] for key in ("case_ref", "officer_id", "legal_basis", "title", "purpose")}
            stated["due_at"] = seen["due_at"]
            title = TITLE_JSON
        assert stated["case_ref"] == body["case_ref"], code
        assert stated["officer_id"] == officer, code
        assert stated["legal_basis"] == body["legal_basis"], code
        assert stated["title"] == title, code
        assert stated["purpose"] == body["purpose"], code
        # The deadline the partner is told is the source's own, in Vietnamese time.
        due = datetime.fromisoformat(stated["due_at"])
        assert due.utcoffset() == timedelta(hours=7), code
        assert due == datetime.fromisoformat(source["due_at"]).astimezone(UTC), code
    assert body["title"] == TITLE_JSON == TITLE.as_dict()
