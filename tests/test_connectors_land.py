"""The land registry connector over SOAP, against a small aiohttp fake serving canned envelopes."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from lxml import etree

from gateway.connectors.base import ConnectorError, LookupRequest, Subject
from gateway.connectors.land import LandConnector
from gateway.connectors.resilience import GuardedConnector
from gateway.partners import Partner
from gateway.simulators.partners import seed
from gateway.simulators.partners.land import as_json
from gateway.simulators.partners.servers import start_partners
from tests.support.lookup_requests import STATED, STATED_SOAP

ROOT = Path(__file__).resolve().parent.parent
WSDL = ROOT / "config" / "wsdl" / "land-registry.wsdl"
NS = "urn:vn:gov:land:registry:1"
SOAP_ENV = "http://schemas.xmlsoap.org/soap/envelope/"
ACTION = f"{NS}#QueryLandRights"
ID_NUMBER = "001085012345"


def envelope(body: str) -> str:
    return (
        f'<?xml version="1.0" encoding="UTF-8"?>'
        f'<soap:Envelope xmlns:soap="{SOAP_ENV}" xmlns:l="{NS}"><soap:Body>{body}</soap:Body></soap:Envelope>'
    )


FOUND = envelope(
    "<l:QueryLandRightsResponse>"
    "<l:Reference>LR-2026-000123</l:Reference><l:MatchStatus>found</l:MatchStatus>"
    "<l:AsOf>2026-03-01T08:30:00+07:00</l:AsOf>"
    "<l:Parcels>"
    "<l:Parcel><l:ParcelId>00181-12-0345</l:ParcelId><l:MapSheet>12</l:MapSheet>"
    "<l:Address>Số 18 ngõ 45 phố Kim Mã, Hà Nội</l:Address><l:AreaM2>84.50</l:AreaM2>"
    "<l:CertificateNumber>CS 01234</l:CertificateNumber>"
    "<l:CoOwners><l:CoOwner>Trần Thị Mai</l:CoOwner></l:CoOwners>"
    "<l:Encumbrances><l:Encumbrance>Thế chấp tại ngân hàng</l:Encumbrance>"
    "<l:Encumbrance>Kê biên</l:Encumbrance></l:Encumbrances>"
    "<l:PendingTransactions/></l:Parcel>"
    "<l:Parcel><l:ParcelId>26734-03-0001</l:ParcelId><l:MapSheet>3</l:MapSheet>"
    "<l:Address>Đường Lê Văn Sỹ, TP. Hồ Chí Minh</l:Address><l:AreaM2>120</l:AreaM2>"
    "<l:CertificateNumber>CH 00077</l:CertificateNumber>"
    "<l:CoOwners/><l:Encumbrances/><l:PendingTransactions><l:Transaction>Chuyển nhượng</l:Transaction>"
    "</l:PendingTransactions></l:Parcel>"
    "</l:Parcels></l:QueryLandRightsResponse>"
)
NOT_FOUND = envelope(
    "<l:QueryLandRightsResponse><l:Reference>LR-2026-000124</l:Reference>"
    "<l:MatchStatus>not_found</l:MatchStatus><l:AsOf>2026-03-01T08:30:00Z</l:AsOf><l:Parcels/>"
    "</l:QueryLandRightsResponse>"
)
# The registry's own record is broken: an area of zero, which the canonical schema refuses.
ZERO_AREA = FOUND.replace("<l:AreaM2>120</l:AreaM2>", "<l:AreaM2>0</l:AreaM2>")
# MatchStatus missing: the WSDL requires it.
NO_STATUS = NOT_FOUND.replace("<l:MatchStatus>not_found</l:MatchStatus>", "")


def fault(code: str) -> str:
    return envelope(
        f"<soap:Fault><faultcode>soap:{code}</faultcode>"
        f"<faultstring>Citizen {ID_NUMBER} refused</faultstring>"
        f"<detail><l:LandRegistryFault><l:Code>X</l:Code><l:Message>x</l:Message></l:LandRegistryFault>"
        f"</detail></soap:Fault>"
    )


@dataclass
class FakeRegistry:
    """Answers every call with the next canned (status, content type, body), the last one repeating."""

    replies: list[tuple[int, str, str]] = field(default_factory=lambda: [(200, "text/xml", FOUND)])
    seen: list[tuple[dict[str, str], bytes]] = field(default_factory=list)

    async def handle(self, request: web.Request) -> web.Response:
        self.seen.append((dict(request.headers), await request.read()))
        status, content_type, body = self.replies[min(len(self.seen), len(self.replies)) - 1]
        return web.Response(status=status, body=body.encode(), content_type=content_type, charset="utf-8")


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as http:
        yield http


@pytest.fixture
async def registry(aiohttp_server: Callable[..., Any]) -> AsyncIterator[tuple[FakeRegistry, str]]:
    fake = FakeRegistry()
    app = web.Application()
    app.router.add_post("/land/soap", fake.handle)
    server = await aiohttp_server(app)
    yield fake, str(server.make_url("/land/soap"))


def land_partner(endpoint: str, **overrides: Any) -> Partner:
    values: dict[str, Any] = {
        "code": "LAND-REG",
        "kind": "land",
        "protocol": "soap",
        "wsdl": str(WSDL),
        "endpoint": endpoint,
        "timeout_seconds": 2,
        "retry": {"attempts": 3, "min_seconds": 0.01, "max_seconds": 0.02},
        "credentials": "TEST_LAND_TOKEN",
    }
    values.update(overrides)
    return Partner(**values)


def lookup_request(**subject: str) -> LookupRequest:
    return LookupRequest(
        request_ref="req-land-1",
        inquiry_id="inq-1",
        source_id="land",
        partner_code="LAND-REG",
        kind="land",
        subject=Subject(**(subject or {"id_number": ID_NUMBER, "full_name": "Nguyễn Văn An"})),
        case_ref="THA-2026-001",
        purpose="civil_judgment_enforcement",
        **STATED,
    )


def stated(request: etree._Element) -> dict[str, Any]:
    """The request's stated fields as JSON under their element names."""
    out: dict[str, Any] = {}
    for name in ("OfficerId", "LegalBasis", "Title", "DueAt"):
        element = request.find(f"{{{NS}}}{name}")
        if element is not None:
            out[name] = as_json(element)
    return out


@pytest.fixture
async def connector(
    registry: tuple[FakeRegistry, str], session: aiohttp.ClientSession, monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[LandConnector]:
    monkeypatch.setenv("TEST_LAND_TOKEN", "land-secret")
    land = await LandConnector.create(land_partner(registry[1]), session)
    yield land
    await land.close()


async def test_found_parcels_become_canonical_rows(
    connector: LandConnector, registry: tuple[FakeRegistry, str]
) -> None:
    answer = await connector.lookup(lookup_request())

    assert answer.match_status == "found"
    assert answer.reference == "LR-2026-000123"
    assert answer.as_of == "2026-03-01T08:30:00+07:00"
    assert not answer.accepted_later
    assert answer.rows == [
        {
            "parcel_id": "00181-12-0345",
            "map_sheet": "12",
            "address": "Số 18 ngõ 45 phố Kim Mã, Hà Nội",
            "area_m2": 84.5,
            "certificate_number": "CS 01234",
            "co_owners": ["Trần Thị Mai"],
            "encumbrances": ["Thế chấp tại ngân hàng", "Kê biên"],
            "pending_transactions": [],
        },
        {
            "parcel_id": "26734-03-0001",
            "map_sheet": "3",
            "address": "Đường Lê Văn Sỹ, TP. Hồ Chí Minh",
            "area_m2": 120.0,
            "certificate_number": "CH 00077",
            "co_owners": [],
            "encumbrances": [],
            "pending_transactions": ["Chuyển nhượng"],
        },
    ]
    assert isinstance(answer.rows[0]["area_m2"], float)


async def test_request_carries_the_contract_headers_and_fields(
    connector: LandConnector, registry: tuple[FakeRegistry, str]
) -> None:
    await connector.lookup(lookup_request())

    headers, body = registry[0].seen[0]
    assert headers["Authorization"] == "Bearer land-secret"
    assert headers["X-Request-Ref"] == "req-land-1"
    assert headers["SOAPAction"].strip('"') == ACTION
    doc = etree.fromstring(body)
    request = doc.find(f"{{{SOAP_ENV}}}Body/{{{NS}}}QueryLandRightsRequest")
    assert request is not None
    assert request.findtext(f"{{{NS}}}RequestRef") == "req-land-1"
    assert request.findtext(f"{{{NS}}}Subject/{{{NS}}}IdNumber") == ID_NUMBER
    assert request.findtext(f"{{{NS}}}Subject/{{{NS}}}FullName") == "Nguyễn Văn An"
    assert request.findtext(f"{{{NS}}}CaseRef") == "THA-2026-001"
    assert request.findtext(f"{{{NS}}}Purpose") == "civil_judgment_enforcement"
    assert stated(request) == STATED_SOAP
    # In the order the WSDL's sequence prescribes.
    assert [etree.QName(child).localname for child in request] == [
        "RequestRef",
        "Subject",
        "CaseRef",
        "Purpose",
        "OfficerId",
        "LegalBasis",
        "Title",
        "DueAt",
    ]
    title = request.find(f"{{{NS}}}Title")
    assert title is not None
    assert [etree.QName(child).localname for child in title] == ["Judgment", "EnforcementDecision"]


async def test_a_request_queued_before_the_stated_fields_goes_without_them(
    connector: LandConnector, registry: tuple[FakeRegistry, str]
) -> None:
    legacy = replace(lookup_request(), officer_id=None, legal_basis=None, title=None, due_at=None)

    answer = await connector.lookup(legacy)

    assert answer.match_status == "found"
    request = etree.fromstring(registry[0].seen[0][1]).find(f".//{{{NS}}}QueryLandRightsRequest")
    assert request is not None
    assert stated(request) == {}  # the elements are optional in the WSDL: left out, not empty
    assert request.findtext(f"{{{NS}}}CaseRef") == "THA-2026-001"


async def test_organisation_subject(connector: LandConnector, registry: tuple[FakeRegistry, str]) -> None:
    registry[0].replies = [(200, "text/xml", NOT_FOUND)]

    answer = await connector.lookup(lookup_request(enterprise_code="0101234567"))

    assert (answer.match_status, answer.rows, answer.reference) == ("not_found", [], "LR-2026-000124")
    doc = etree.fromstring(registry[0].seen[0][1])
    assert doc.findtext(f".//{{{NS}}}Subject/{{{NS}}}EnterpriseCode") == "0101234567"
    assert doc.find(f".//{{{NS}}}Subject/{{{NS}}}IdNumber") is None


@pytest.mark.parametrize(
    ("reply", "retryable", "reason"),
    [
        ((500, "text/xml", fault("Client")), False, "SOAP fault Client"),
        ((503, "text/xml", fault("Server")), True, "SOAP fault Server"),
        ((503, "text/html", "<html>Service Unavailable</html>"), True, "HTTP 503"),
        ((404, "text/plain", "no such endpoint"), False, "HTTP 404"),
        ((200, "text/xml", "<not-xml"), False, "unusable SOAP answer"),
        ((200, "text/xml", NO_STATUS), False, "unusable SOAP answer"),
        ((200, "text/xml", ZERO_AREA), False, "$.rows[1].area_m2"),
    ],
    ids=["client-fault", "server-fault", "html-503", "404", "not-xml", "missing-element", "bad-area"],
)
async def test_failures_map_to_connector_errors(
    connector: LandConnector,
    registry: tuple[FakeRegistry, str],
    reply: tuple[int, str, str],
    retryable: bool,
    reason: str,
) -> None:
    registry[0].replies = [reply]

    with pytest.raises(ConnectorError) as caught:
        await connector.lookup(lookup_request())

    assert caught.value.retryable is retryable
    assert reason in caught.value.reason
    assert ID_NUMBER not in caught.value.reason


async def test_guarded_land_retries_a_server_fault(
    registry: tuple[FakeRegistry, str], session: aiohttp.ClientSession
) -> None:
    fake, url = registry
    fake.replies = [(503, "text/xml", fault("Server")), (200, "text/xml", FOUND)]
    partner = land_partner(url)
    guarded = GuardedConnector(partner, await LandConnector.create(partner, session))

    outcome = await guarded.call(lookup_request())

    assert (outcome.status, outcome.attempts) == ("found", 2)
    assert outcome.answer is not None and len(outcome.answer.rows) == 2
    await guarded.close()


async def test_port_closed_is_retryable(session: aiohttp.ClientSession, unused_tcp_port: int) -> None:
    land = await LandConnector.create(land_partner(f"http://127.0.0.1:{unused_tcp_port}/land/soap"), session)

    with pytest.raises(ConnectorError) as caught:
        await land.lookup(lookup_request())

    assert caught.value.retryable
    assert "connection failed" in caught.value.reason
    await land.close()


# -- against the land registry simulator --------------------------------------------------------


@pytest.fixture
async def simulated_land(monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[str]:
    monkeypatch.setenv("TEST_LAND_TOKEN", "test-token")
    sims = await start_partners(error_rate=0.0, latency=(0.0, 0.0))
    try:
        yield sims.urls["LAND-REG"]
    finally:
        await sims.close()


@pytest.mark.parametrize("subject", [seed.RICH, seed.EMPTY, seed.AMBIGUOUS, "079201004321", "0101234567"])
async def test_against_the_simulator(
    simulated_land: str, session: aiohttp.ClientSession, subject: str
) -> None:
    land = await LandConnector.create(land_partner(simulated_land), session)
    key = "enterprise_code" if len(subject) == 10 else "id_number"

    answer = await land.lookup(lookup_request(**{key: subject}))

    expected = seed.expected("land", "LAND-REG", subject)
    assert answer.match_status == expected["match_status"]
    assert answer.rows == expected["parcels"]
    assert answer.reference and answer.as_of
    await land.close()


async def test_the_simulator_is_told_case_officer_legal_basis_title_purpose_and_deadline(
    simulated_land: str, session: aiohttp.ClientSession
) -> None:
    land = await LandConnector.create(land_partner(simulated_land), session)

    await land.lookup(lookup_request())

    async with session.get(simulated_land.removesuffix("/soap") + "/_sim/last-request") as response:
        assert response.status == 200
        seen = await response.json()
    assert seen == {
        "RequestRef": "req-land-1",
        "Subject": {"IdNumber": "001*******45", "FullName": "Nguyễn Văn An"},
        "CaseRef": "THA-2026-001",
        "Purpose": "civil_judgment_enforcement",
        **STATED_SOAP,
        "OfficerId": "001*******01",
    }
    await land.close()


async def test_the_simulator_refuses_a_query_that_does_not_state_its_title(
    simulated_land: str, session: aiohttp.ClientSession
) -> None:
    land = await LandConnector.create(land_partner(simulated_land), session)

    with pytest.raises(ConnectorError) as caught:
        await land.lookup(replace(lookup_request(), title=None))

    assert (caught.value.reason, caught.value.retryable) == ("SOAP fault Client", False)
    await land.close()


async def test_simulated_outage_and_garbage(simulated_land: str, session: aiohttp.ClientSession) -> None:
    sims_url = simulated_land.removesuffix("/land/soap")
    async with session.post(f"{sims_url}/_sim/mode", json={"mode": "failing"}) as response:
        assert response.status == 200
    partner = land_partner(simulated_land)
    guarded = GuardedConnector(partner, await LandConnector.create(partner, session))

    # The simulator alternates a soap:Server fault (retried) and a truncated envelope (not retried).
    outcome = await guarded.call(lookup_request())

    assert (outcome.status, outcome.attempts) == ("error", 2)
    assert outcome.reason is not None and "unusable SOAP answer" in outcome.reason
    await guarded.close()
