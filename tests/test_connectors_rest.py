"""REST connectors (bank, tax, vehicle, population; documents to banks, police units and VNeID) against
fake partners on loopback."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from gateway.connectors import bank
from gateway.connectors.base import ConnectorError, LookupRequest, Subject
from gateway.connectors.registry import REST_CONNECTORS, build_connectors, close_all
from gateway.connectors.rest import RestConnector
from gateway.domain.doctypes import PartnerKind
from gateway.domain.registry import partner_kinds_receiving_documents
from gateway.partners import Partner, load_partners
from gateway.simulators.partners import seed
from gateway.simulators.partners.servers import start_partners
from tests.support.lookup_requests import (
    DUE_AT,
    LEGAL_BASIS,
    OFFICER_ID,
    STATED,
    STATED_JSON,
    TITLE_JSON,
)

ROOT = Path(__file__).resolve().parent.parent

ID_NUMBER = "001085012345"
AS_OF = "2026-03-01T08:30:00+07:00"

ACCOUNTS: list[dict[str, Any]] = [
    {
        "account_number": "0011001234567",
        "branch": "Chi nhánh Hà Nội",
        "currency": "VND",
        "type": "current",
        "opened_on": "2015-04-02",
        "closed_on": None,
        "internal_score": 7,
    },
    {
        "account_number": "0011009876543",
        "branch": "Chi nhánh Thành Công",
        "currency": "USD",
        "type": "term",
        "opened_on": "2019-11-20",
        "closed_on": "2024-11-20",
    },
]
TAX = {
    "employers": [
        {"enterprise_code": "0101234567", "name": "Công ty Cổ phần Xây dựng Sông Hồng", "since": "2018-01-01"}
    ],
    "businesses": [
        {
            "household_business_id": "HKD-0042",
            "name": "Quán Phở Lý",
            "activity": "Dịch vụ ăn uống",
            "since": "2020-06-01",
        }
    ],
}
VEHICLES = [
    {"plate": "30A-123.45", "class": "car", "make": "Toyota", "model": "Vios", "registered_on": "2021-05-10"}
]
RESIDENCE = {"permanent_address": "Số 18 phố Kim Mã, Hà Nội", "current_address": "Số 2 phố Huế, Hà Nội"}

PATHS = {
    "bank": "/api/v1/account-inquiries",
    "tax": "/api/v1/income-sources/search",
    "vehicle": "/api/v1/registrations/search",
    "population": "/api/v1/citizens/verify",
}


def found(**rows: Any) -> dict[str, Any]:
    return {"reference": "REF-1", "match_status": "found", "as_of": AS_OF, **rows}


@dataclass
class FakePartner:
    """Answers with a JSON body (or raw bytes) and a status; records what it was sent."""

    status: int = 200
    body: Any = field(default_factory=dict)
    seen: list[tuple[str, dict[str, str], Any]] = field(default_factory=list)

    async def handle(self, request: web.Request) -> web.Response:
        self.seen.append((request.path, dict(request.headers), await request.json()))
        if isinstance(self.body, bytes):
            return web.Response(status=self.status, body=self.body, content_type="application/json")
        return web.json_response(self.body, status=self.status)


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as http:
        yield http


@pytest.fixture
async def fake(aiohttp_server: Callable[..., Any]) -> AsyncIterator[tuple[FakePartner, str]]:
    partner = FakePartner()
    app = web.Application()
    app.router.add_post("/{tail:.*}", partner.handle)
    server = await aiohttp_server(app)
    yield partner, str(server.make_url("/p"))


def make_partner(kind: str, endpoint: str, code: str | None = None) -> Partner:
    return Partner(
        code=code or f"TEST-{kind.upper()}",
        kind=kind,
        protocol="rest",
        endpoint=endpoint,
        timeout_seconds=2,
        credentials="TEST_PARTNER_TOKEN",
    )


def lookup_request(kind: str, callback_url: str | None = None) -> LookupRequest:
    return LookupRequest(
        request_ref=f"req-{kind}-1",
        inquiry_id="inq-1",
        source_id=kind,
        partner_code=f"TEST-{kind.upper()}",
        kind=kind,
        subject=Subject(id_number=ID_NUMBER, full_name="Nguyễn Văn An", date_of_birth="1985-02-14"),
        case_ref="THA-2026-001",
        purpose="civil_judgment_enforcement",
        callback_url=callback_url,
        **STATED,
    )


async def connector_for(kind: str, endpoint: str, session: aiohttp.ClientSession) -> RestConnector:
    partner = make_partner(kind, endpoint)
    connectors = await build_connectors([partner], session)
    built = connectors[partner.code]
    assert isinstance(built, RestConnector)
    return built


async def test_bank_found_maps_accounts(
    fake: tuple[FakePartner, str], session: aiohttp.ClientSession, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TEST_PARTNER_TOKEN", "bank-secret")
    partner, url = fake
    partner.body = found(accounts=ACCOUNTS)
    connector = await connector_for("bank", url, session)

    answer = await connector.lookup(lookup_request("bank", callback_url="https://gw.example/cb"))

    assert (answer.match_status, answer.reference, answer.as_of) == ("found", "REF-1", AS_OF)
    assert not answer.accepted_later
    # Nulls and fields outside the contract are dropped.
    assert answer.rows == [
        {k: v for k, v in ACCOUNTS[0].items() if k not in ("closed_on", "internal_score")},
        ACCOUNTS[1],
    ]
    path, headers, body = partner.seen[0]
    assert path == "/p/api/v1/account-inquiries"
    assert headers["Authorization"] == "Bearer bank-secret"
    assert headers["X-Request-Ref"] == "req-bank-1"
    assert body == {
        "request_ref": "req-bank-1",
        "subject": {"id_number": ID_NUMBER, "full_name": "Nguyễn Văn An", "date_of_birth": "1985-02-14"},
        "case_ref": "THA-2026-001",
        "purpose": "civil_judgment_enforcement",
        "callback_url": "https://gw.example/cb",
        **STATED_JSON,
    }


async def test_bank_accepts_later(fake: tuple[FakePartner, str], session: aiohttp.ClientSession) -> None:
    partner, url = fake
    partner.status, partner.body = 202, {"reference": "TCB-77", "status": "processing"}
    connector = await connector_for("bank", url, session)

    answer = await connector.lookup(lookup_request("bank"))

    assert (answer.match_status, answer.accepted_later, answer.reference) == ("accepted", True, "TCB-77")
    assert answer.rows == []
    assert "Authorization" not in partner.seen[0][1]  # no token configured: none sent
    assert "callback_url" not in partner.seen[0][2]


async def test_bank_202_without_processing_is_an_error(
    fake: tuple[FakePartner, str], session: aiohttp.ClientSession
) -> None:
    partner, url = fake
    partner.status, partner.body = 202, {"reference": "TCB-77", "status": "queued"}
    connector = await connector_for("bank", url, session)

    with pytest.raises(ConnectorError) as caught:
        await connector.lookup(lookup_request("bank"))

    assert not caught.value.retryable


def test_bank_callback_is_parsed_and_validated() -> None:
    body = {"request_ref": "req-bank-1", **found(accounts=ACCOUNTS[1:])}

    request_ref, answer = bank.parse_callback(body)

    assert request_ref == "req-bank-1"
    assert (answer.match_status, answer.rows, answer.accepted_later) == ("found", ACCOUNTS[1:], False)


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        ({**found(accounts=ACCOUNTS)}, "request_ref"),
        ({"request_ref": "r", **found(accounts=[{**ACCOUNTS[1], "currency": "dong"}])}, "$.rows[0].currency"),
        ({"request_ref": "r", **found(accounts="none")}, "'accounts'"),
        (
            {"request_ref": "r", "match_status": "not_found", "as_of": AS_OF},
            "'reference' is a required property",
        ),
    ],
    ids=["no-request-ref", "bad-currency", "accounts-not-a-list", "no-reference"],
)
def test_bad_callbacks_are_refused(body: dict[str, Any], reason: str) -> None:
    with pytest.raises(ConnectorError) as caught:
        bank.parse_callback(body)

    assert not caught.value.retryable
    assert reason in caught.value.reason


async def test_tax_merges_employers_and_businesses(
    fake: tuple[FakePartner, str], session: aiohttp.ClientSession
) -> None:
    partner, url = fake
    partner.body = found(**TAX)
    connector = await connector_for("tax", url, session)

    answer = await connector.lookup(lookup_request("tax"))

    assert answer.rows == [
        {"income_type": "employer", **TAX["employers"][0]},
        {"income_type": "business", **TAX["businesses"][0]},
    ]
    path, _, body = partner.seen[0]
    assert path == "/p" + PATHS["tax"]
    # What every lookup states, and nothing more about the case.
    assert set(body) == {"request_ref", "subject", "case_ref", "purpose", *STATED_JSON}


@pytest.mark.parametrize("kind", ["bank", "tax", "vehicle", "population"])
async def test_every_lookup_states_case_officer_legal_basis_title_purpose_and_deadline(
    fake: tuple[FakePartner, str], session: aiohttp.ClientSession, kind: str
) -> None:
    partner, url = fake
    partner.body = {"reference": "REF-2", "match_status": "not_found", "as_of": AS_OF}
    connector = await connector_for(kind, url, session)

    await connector.lookup(lookup_request(kind))

    _, _, body = partner.seen[0]
    assert body == {
        "request_ref": f"req-{kind}-1",
        "subject": {"id_number": ID_NUMBER, "full_name": "Nguyễn Văn An", "date_of_birth": "1985-02-14"},
        "case_ref": "THA-2026-001",
        "officer_id": OFFICER_ID,
        "legal_basis": LEGAL_BASIS,
        "title": TITLE_JSON,
        "purpose": "civil_judgment_enforcement",
        "due_at": DUE_AT,
    }


@pytest.mark.parametrize("kind", ["bank", "tax", "vehicle", "population"])
async def test_a_request_queued_before_the_stated_fields_goes_without_them(
    fake: tuple[FakePartner, str], session: aiohttp.ClientSession, kind: str
) -> None:
    partner, url = fake
    partner.body = {"reference": "REF-2", "match_status": "not_found", "as_of": AS_OF}
    connector = await connector_for(kind, url, session)
    legacy = replace(lookup_request(kind), officer_id=None, legal_basis=None, title=None, due_at=None)

    await connector.lookup(legacy)

    body = partner.seen[0][2]
    assert set(body) == {"request_ref", "subject", "case_ref", "purpose"}  # left out, not sent as nulls


async def test_the_officer_id_is_never_logged(
    fake: tuple[FakePartner, str], session: aiohttp.ClientSession, caplog: pytest.LogCaptureFixture
) -> None:
    partner, url = fake
    caplog.set_level(logging.DEBUG)
    connector = await connector_for("bank", url, session)
    partner.body = found(accounts=ACCOUNTS)
    await connector.lookup(lookup_request("bank"))
    partner.status, partner.body = 400, {"error": f"officer {OFFICER_ID} unknown"}

    with pytest.raises(ConnectorError) as caught:
        await connector.lookup(lookup_request("bank"))

    assert OFFICER_ID not in caught.value.reason
    assert OFFICER_ID not in caplog.text


async def test_vehicle_found(fake: tuple[FakePartner, str], session: aiohttp.ClientSession) -> None:
    partner, url = fake
    partner.body = found(vehicles=VEHICLES)
    connector = await connector_for("vehicle", url, session)

    answer = await connector.lookup(lookup_request("vehicle"))

    assert answer.rows == VEHICLES
    assert partner.seen[0][0] == "/p" + PATHS["vehicle"]


async def test_population_found_is_one_row(
    fake: tuple[FakePartner, str], session: aiohttp.ClientSession
) -> None:
    partner, url = fake
    partner.body = found(identity_status="valid", residence=RESIDENCE)
    connector = await connector_for("population", url, session)

    answer = await connector.lookup(lookup_request("population"))

    assert answer.rows == [{"identity_status": "valid", **RESIDENCE}]
    assert partner.seen[0][0] == "/p" + PATHS["population"]


@pytest.mark.parametrize("kind", ["bank", "tax", "vehicle", "population"])
@pytest.mark.parametrize("match_status", ["not_found", "ambiguous_identity", "not_competent"])
async def test_no_match_has_no_rows(
    fake: tuple[FakePartner, str], session: aiohttp.ClientSession, kind: str, match_status: str
) -> None:
    partner, url = fake
    partner.body = {"reference": "REF-2", "match_status": match_status, "as_of": AS_OF}
    connector = await connector_for(kind, url, session)

    answer = await connector.lookup(lookup_request(kind))

    assert (answer.match_status, answer.rows) == (match_status, [])


@pytest.mark.parametrize(
    ("status", "body", "retryable", "reason"),
    [
        (503, {}, True, "HTTP 503"),
        (500, {}, True, "HTTP 500"),
        (429, {}, True, "HTTP 429"),
        (400, {}, False, "HTTP 400"),
        (404, {}, False, "HTTP 404"),
        (200, b"<html>oops</html>", False, "not JSON"),
        (200, [1, 2], False, "not a JSON object"),
        (200, found(vehicles=[{**VEHICLES[0], "class": "tank"}]), False, "$.rows[0].class (enum)"),
        (200, found(vehicles=[]), False, "$.rows (minItems)"),
        (200, {**found(vehicles=VEHICLES), "match_status": "maybe"}, False, "$.match_status (enum)"),
        (
            200,
            {"match_status": "found", "vehicles": VEHICLES},
            False,
            "$.as_of: 'as_of' is a required property",
        ),
    ],
    ids=[
        "503",
        "500",
        "429",
        "400",
        "404",
        "html",
        "array",
        "bad-class",
        "found-no-rows",
        "bad-status",
        "no-as-of",
    ],
)
async def test_failures_map_to_connector_errors(
    fake: tuple[FakePartner, str],
    session: aiohttp.ClientSession,
    status: int,
    body: Any,
    retryable: bool,
    reason: str,
) -> None:
    partner, url = fake
    partner.status, partner.body = status, body
    connector = await connector_for("vehicle", url, session)

    with pytest.raises(ConnectorError) as caught:
        await connector.lookup(lookup_request("vehicle"))

    assert caught.value.retryable is retryable
    assert reason in caught.value.reason


async def test_reasons_never_quote_personal_data(
    fake: tuple[FakePartner, str], session: aiohttp.ClientSession
) -> None:
    partner, url = fake
    # An address far too long for the schema: the reason names the field, not the address.
    address = "Số 18 phố Kim Mã " * 40
    partner.body = found(identity_status="alive", residence={"permanent_address": address})
    connector = await connector_for("population", url, session)

    with pytest.raises(ConnectorError) as caught:
        await connector.lookup(lookup_request("population"))

    reason = caught.value.reason
    assert "$.rows[0].permanent_address (maxLength)" in reason
    assert "$.rows[0].identity_status (enum)" in reason
    assert "Kim Mã" not in reason and "alive" not in reason and ID_NUMBER not in reason


async def test_port_closed_is_retryable(session: aiohttp.ClientSession, unused_tcp_port: int) -> None:
    connector = await connector_for("tax", f"http://127.0.0.1:{unused_tcp_port}", session)

    with pytest.raises(ConnectorError) as caught:
        await connector.lookup(lookup_request("tax"))

    assert caught.value.retryable
    assert "connection failed" in caught.value.reason


async def test_registry_builds_one_connector_per_partner(
    fake: tuple[FakePartner, str], session: aiohttp.ClientSession
) -> None:
    _, url = fake
    partners = [make_partner(kind, url, code=f"P-{kind.upper()}") for kind in PATHS]

    connectors = await build_connectors(partners, session)

    assert {code: type(c).__name__ for code, c in connectors.items()} == {
        "P-BANK": "BankConnector",
        "P-TAX": "TaxConnector",
        "P-VEHICLE": "VehicleConnector",
        "P-POPULATION": "PopulationConnector",
    }
    await close_all(connectors)


async def test_registry_refuses_an_unsupported_protocol(session: aiohttp.ClientSession) -> None:
    partner = Partner(code="TAX", kind="tax", protocol="soap", endpoint="http://127.0.0.1:1/x", wsdl="x.wsdl")

    with pytest.raises(ValueError, match="no SOAP connector"):
        await build_connectors([partner], session)


# -- documents: the one hand-over every REST partner shares ---------------------------------------


def document(message_type: str = "order.account_blocking", **fields: Any) -> dict[str, Any]:
    return {"message_id": "7a3c5e1f-2b4d-4c6e-8f10-123456789abc", "message_type": message_type, **fields}


@pytest.mark.parametrize(
    ("kind", "path"),
    [("bank", "/api/v1/orders"), ("police", "/api/v1/documents"), ("vneid", "/api/v1/notices")],
)
async def test_each_connector_states_only_where_it_takes_documents(
    fake: tuple[FakePartner, str], session: aiohttp.ClientSession, kind: str, path: str
) -> None:
    partner, url = fake
    partner.status, partner.body = 202, {"status": "processing", "reference": "P-1"}
    connector = await connector_for(kind, url, session)

    receipt = await connector.deliver(document())

    [(seen_path, headers, body)] = partner.seen
    assert seen_path == "/p" + path and body == document()
    assert headers["Idempotency-Key"] == headers["X-Request-Ref"] == document()["message_id"]
    assert (receipt.report, receipt.reference, receipt.accepted_later) == (None, "P-1", True)


async def test_an_answer_at_once_is_the_report_body(
    fake: tuple[FakePartner, str], session: aiohttp.ClientSession
) -> None:
    partner, url = fake
    partner.body = {"executed_at": AS_OF, "outcome": "executed"}
    connector = await connector_for("police", url, session)

    receipt = await connector.deliver(document("police.protection_request"))

    assert (receipt.report, receipt.accepted_later) == (partner.body, False)


async def test_a_document_nothing_answers_is_taken_on_any_2xx(
    fake: tuple[FakePartner, str], session: aiohttp.ClientSession
) -> None:
    partner, url = fake
    partner.body = b""
    connector = await connector_for("bank", url, session)

    receipt = await connector.deliver(document("document.revocation"))

    assert (receipt.report, receipt.accepted_later) == (None, False)


async def test_a_partner_answering_later_takes_a_200_as_later(
    fake: tuple[FakePartner, str], session: aiohttp.ClientSession
) -> None:
    partner, url = fake
    partner.body = {"reference": "VNEID-1"}
    connector = await connector_for("vneid", url, session)

    receipt = await connector.deliver(document("notice.citizen"))

    assert (receipt.report, receipt.reference, receipt.accepted_later) == (None, "VNEID-1", True)


@pytest.mark.parametrize(
    ("status", "body", "retryable"),
    [(409, {}, False), (422, {}, False), (503, {}, True), (202, {"status": "queued"}, False)],
)
async def test_a_refused_or_unavailable_partner_is_an_error(
    fake: tuple[FakePartner, str], session: aiohttp.ClientSession, status: int, body: Any, retryable: bool
) -> None:
    partner, url = fake
    partner.status, partner.body = status, body
    connector = await connector_for("bank", url, session)

    with pytest.raises(ConnectorError) as caught:
        await connector.deliver(document())

    assert caught.value.retryable is retryable


async def test_partners_that_answer_no_lookups_say_so(
    fake: tuple[FakePartner, str], session: aiohttp.ClientSession
) -> None:
    _, url = fake
    connector = await connector_for("police", url, session)

    with pytest.raises(ConnectorError) as caught:
        await connector.lookup(lookup_request("police"))

    assert not caught.value.retryable and "answers no asset lookup" in caught.value.reason


def test_every_kind_receiving_documents_has_a_connector_that_takes_them() -> None:
    for kind in partner_kinds_receiving_documents():
        if kind == PartnerKind.LAND_REGISTRY:
            continue  # SOAP: one operation per document type (land.py)
        assert REST_CONNECTORS[kind].documents_path, kind


def test_an_unknown_partner_kind_names_the_valid_ones(tmp_path: Path) -> None:
    (tmp_path / "partners.toml").write_text(
        '[[partner]]\ncode = "POLICE-VEH"\nkind = "police-vehicle"\nprotocol = "rest"\nendpoint = "http://x"\n'
    )

    with pytest.raises(ValueError) as caught:
        load_partners(tmp_path)

    message = str(caught.value)
    assert "POLICE-VEH" in message and "'police-vehicle'" in message
    assert all(kind.value in message for kind in PartnerKind)


# -- against the partner simulators -------------------------------------------------------------


@pytest.fixture
async def simulated(monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[dict[str, Partner]]:
    """The configured partners, pointed at the simulators (no latency, no random 503s)."""
    sims = await start_partners(error_rate=0.0, latency=(0.0, 0.0), callback_delay=0.05)
    try:
        partners = {}
        for configured in load_partners(ROOT / "config"):
            if configured.pulls:
                continue  # never called: its inbox is tested in test_pull_mode.py
            partners[configured.code] = configured.model_copy(update={"endpoint": sims.urls[configured.code]})
            if configured.credentials:
                monkeypatch.setenv(configured.credentials, "test-token")
        yield partners
    finally:
        await sims.close()


def expected_rows(kind: str, expected: dict[str, Any]) -> list[dict[str, Any]]:
    """The seeded answer as canonical rows."""

    def present(row: dict[str, Any]) -> dict[str, Any]:
        return {k: v for k, v in row.items() if v is not None}

    if kind == "bank":
        return [present(a) for a in expected["accounts"]]
    if kind == "vehicle":
        return [present(v) for v in expected["vehicles"]]
    if kind == "tax":
        return [{"income_type": "employer", **e} for e in expected["employers"]] + [
            {"income_type": "business", **b} for b in expected["businesses"]
        ]
    if expected["identity_status"] is None:
        return []
    return [present({"identity_status": expected["identity_status"], **expected["residence"]})]


@pytest.mark.parametrize("subject", [seed.RICH, seed.EMPTY, seed.AMBIGUOUS, "079201004321"])
@pytest.mark.parametrize(
    ("kind", "code"),
    [("bank", "BANK-VCB"), ("tax", "TAX"), ("vehicle", "POLICE-VEH"), ("population", "POP-REG")],
)
async def test_against_the_simulator(
    simulated: dict[str, Partner], session: aiohttp.ClientSession, kind: str, code: str, subject: str
) -> None:
    connectors = await build_connectors([simulated[code]], session)
    request = replace(lookup_request(kind), subject=Subject(id_number=subject))

    answer = await connectors[code].lookup(request)

    expected = seed.expected(kind, code, subject)
    assert answer.match_status == expected["match_status"]
    assert answer.rows == expected_rows(kind, expected)
    assert answer.reference and answer.as_of
    await close_all(connectors)


async def test_asynchronous_bank_against_the_simulator(
    simulated: dict[str, Partner], session: aiohttp.ClientSession, aiohttp_server: Callable[..., Any]
) -> None:
    received: asyncio.Queue[dict[str, Any]] = asyncio.Queue()

    async def callback(request: web.Request) -> web.Response:
        await received.put(await request.json())
        return web.json_response({}, status=202)

    app = web.Application()
    app.router.add_post("/cb", callback)
    server = await aiohttp_server(app)
    connectors = await build_connectors([simulated["BANK-TCB"]], session)

    answer = await connectors["BANK-TCB"].lookup(
        lookup_request("bank", callback_url=str(server.make_url("/cb")))
    )
    assert (answer.match_status, answer.accepted_later) == ("accepted", True)

    request_ref, late = bank.parse_callback(await asyncio.wait_for(received.get(), timeout=5))
    assert request_ref == "req-bank-1"
    assert late.reference == answer.reference
    expected = seed.expected("bank", "BANK-TCB", ID_NUMBER)
    assert (late.match_status, late.rows) == ("found", expected_rows("bank", expected))
