"""The partner simulators as the gateway's connectors see them: real servers on loopback, seeded answers,
and the failure modes (slow, failing, down) switched at runtime."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import aiohttp
import jwt
import pytest
import zeep
from aiohttp import web

from gateway.security.keys import PrivateKey, generate_keypair, private_pem, public_pem
from gateway.simulators.partners import seed
from gateway.simulators.partners.servers import Partners, start_partners
from tests.support import zeep_typed
from tests.support.lookup_requests import OFFICER_ID, STATED_JSON, STATED_SOAP

ROOT = Path(__file__).resolve().parent.parent
WSDL = ROOT / "config" / "wsdl" / "land-registry.wsdl"
AUDIENCE = "thads-gateway"
HEADERS = {"Authorization": "Bearer any-token", "X-Request-Ref": "req-1"}
IDS = [seed.RICH, seed.EMPTY, seed.AMBIGUOUS, "001099123456", "0101234567", "097000000001"]
# partner code -> (kind, inquiry path under its endpoint)
REST = {
    **{
        bank: ("bank", "/api/v1/account-inquiries")
        for bank in ("BANK-VCB", "BANK-BIDV", "BANK-CTG", "BANK-AGR")
    },
    "TAX": ("tax", "/api/v1/income-sources/search"),
    "POLICE-VEH": ("vehicle", "/api/v1/registrations/search"),
    "POP-REG": ("population", "/api/v1/citizens/verify"),
}
TCB_INQUIRY = "/api/v1/account-inquiries"
REQUIRED = ["exp", "iat", "iss", "aud", "sub", "jti"]


@dataclass
class Env:
    partners: Partners
    tcb_key: PrivateKey

    def url(self, code: str) -> str:
        return self.partners.urls[code] + REST[code][1] if code in REST else self.partners.urls[code]


def inquiry(identifier: str, ref: str = "req-1", **extra: Any) -> dict[str, Any]:
    key = "id_number" if len(identifier) == 12 else "enterprise_code"
    subject = {key: identifier, "full_name": "Nguyễn Văn An", "date_of_birth": "1985-04-12"}
    return {
        "request_ref": ref,
        "subject": subject,
        "case_ref": "123/QĐ-THADS",
        "purpose": "enforcement",
        **STATED_JSON,
        **extra,
    }


@pytest.fixture
async def env(tmp_path: Path) -> AsyncIterator[Env]:
    key = generate_keypair()
    key_file = tmp_path / "BANK-TCB.key"
    key_file.write_bytes(private_pem(key))
    partners = await start_partners(
        bank_callback_key=key_file,
        audience=AUDIENCE,
        callback_delay=0.2,
        error_rate=0.0,  # transient 503s are random by design; these tests switch failures on explicitly
        latency=(0.0, 0.002),
        slow_delay=0.5,
    )
    try:
        yield Env(partners, key)
    finally:
        await partners.close()


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=5)) as s:
        yield s


# ------------------------------------------------------------------------------------------- seeded data


def test_seed_follows_the_documented_subjects() -> None:
    rich = [code for code in seed.BANKS if seed.expected("bank", code, seed.RICH)["match_status"] == "found"]
    assert rich == ["BANK-VCB", "BANK-BIDV", "BANK-TCB"]
    assert len(seed.expected("land", "LAND-REG", seed.RICH)["parcels"]) == 2
    assert [v["class"] for v in seed.expected("vehicle", "POLICE-VEH", seed.RICH)["vehicles"]] == ["car"]
    assert len(seed.expected("tax", "TAX", {"id_number": seed.RICH})["employers"]) == 1
    assert seed.expected("population", "POP-REG", seed.RICH)["identity_status"] == "valid"
    for kind, code in [("land", ""), ("tax", ""), ("vehicle", ""), *[("bank", b) for b in seed.BANKS]]:
        assert seed.expected(kind, code, seed.EMPTY)["match_status"] == "not_found"
        assert seed.expected(kind, code, "097000000001")["match_status"] == "not_found"
        ambiguous = "ambiguous_identity" if kind == "land" else "not_found"
        assert seed.expected(kind, code, seed.AMBIGUOUS)["match_status"] == ambiguous
    assert seed.expected("population", "", seed.EMPTY)["identity_status"] == "valid"
    assert seed.expected("population", "", seed.AMBIGUOUS)["match_status"] == "ambiguous_identity"
    assert seed.expected("population", "", "097000000001")["match_status"] == "not_found"
    assert seed.expected("population", "", "0101234567")["match_status"] == "not_competent"


def test_derived_subjects_are_deterministic_and_varied() -> None:
    ids = [f"0010{n:08d}" for n in range(300)]
    sources = [("land", ""), ("tax", ""), ("vehicle", ""), *[("bank", b) for b in seed.BANKS]]
    answers = [[seed.expected(kind, code, i) for kind, code in sources] for i in ids]
    assert answers == [[seed.expected(kind, code, i) for kind, code in sources] for i in ids]
    own_nothing = sum(all(a["match_status"] == "not_found" for a in row) for row in answers)
    assert 0.25 < own_nothing / len(ids) < 0.5  # about a third, plus some with nothing by chance
    parcel_counts = {len(row[0]["parcels"]) for row in answers}
    assert parcel_counts == {0, 1, 2, 3}


# ------------------------------------------------------------------------------------------------- REST


@pytest.mark.parametrize("identifier", IDS)
async def test_rest_answers_match_the_seed(env: Env, session: aiohttp.ClientSession, identifier: str) -> None:
    for code, (kind, _path) in REST.items():
        async with session.post(env.url(code), json=inquiry(identifier), headers=HEADERS) as resp:
            assert resp.status == 200, code
            body = await resp.json()
        assert body.pop("reference").startswith(code + "-")
        assert datetime.fromisoformat(body.pop("as_of")).utcoffset() is not None
        assert body == seed.expected(kind, code, identifier), code


async def test_rest_refuses_malformed_inquiries(env: Env, session: aiohttp.ClientSession) -> None:
    url = env.url("TAX")
    async with session.post(url, json=inquiry(seed.RICH)) as resp:
        assert resp.status == 401
    async with session.post(url, json=inquiry("12345"), headers=HEADERS) as resp:
        assert resp.status == 400
        assert (await resp.json())["error"] == "invalid_subject"
    async with session.post(url, data=b"{", headers=HEADERS) as resp:
        assert resp.status == 400
    tcb = env.partners.urls["BANK-TCB"] + TCB_INQUIRY
    async with session.post(tcb, json=inquiry(seed.RICH), headers=HEADERS) as resp:
        assert resp.status == 400  # an asynchronous bank needs somewhere to answer


# ----------------------------------------------------------------------------- what a lookup must state

ALL_REST = [*REST, "BANK-TCB"]
TITLE_PARTS = STATED_JSON["title"]


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("case_ref", None),
        ("case_ref", " "),
        ("officer_id", None),
        ("officer_id", "00108000001"),
        ("legal_basis", None),
        ("purpose", None),
        ("title", None),
        ("title", {"judgment": TITLE_PARTS["judgment"]}),
        ("title", {**TITLE_PARTS, "judgment": {**TITLE_PARTS["judgment"], "court_code": ""}}),
        ("title", {**TITLE_PARTS, "enforcement_decision": {"number": "152/QĐ-THADS", "date": "2026-02-30"}}),
        ("due_at", None),
        ("due_at", "2026-03-05T23:59:59"),
        ("due_at", "2026-03-05"),
    ],
    ids=[
        "no-case",
        "blank-case",
        "no-officer",
        "officer-11-digits",
        "no-legal-basis",
        "no-purpose",
        "no-title",
        "title-without-decision",
        "title-without-court",
        "title-bad-date",
        "no-due-at",
        "due-at-without-offset",
        "due-at-a-date",
    ],
)
async def test_rest_refuses_a_lookup_that_does_not_state_its_reasons(
    env: Env, session: aiohttp.ClientSession, field: str, value: object
) -> None:
    body = inquiry(seed.RICH, callback_url="http://127.0.0.1:1/cb")
    if value is None:
        del body[field]
    else:
        body[field] = value
    for code in ALL_REST:
        url = env.partners.urls[code] + (REST[code][1] if code in REST else TCB_INQUIRY)
        async with session.post(url, json=body, headers=HEADERS) as resp:
            assert resp.status == 400, code
            refusal = await resp.json()
        assert refusal["error"] == "invalid_request"
        assert field in refusal["message"], code
        assert OFFICER_ID not in refusal["message"]


async def test_rest_simulators_show_the_last_request_masked(env: Env, session: aiohttp.ClientSession) -> None:
    for code in ALL_REST:
        async with session.get(env.partners.last_request_url(code)) as resp:
            assert resp.status == 404, code
    for code in REST:
        async with session.post(
            env.url(code), json=inquiry(seed.RICH, ref=f"req-{code}"), headers=HEADERS
        ) as resp:
            assert resp.status == 200
    refused = {k: v for k, v in inquiry(seed.RICH, ref="req-refused").items() if k != "title"}
    async with session.post(env.url("TAX"), json=refused, headers=HEADERS) as resp:
        assert resp.status == 400

    for code in REST:
        async with session.get(env.partners.last_request_url(code)) as resp:
            assert resp.status == 200
            seen = await resp.json()
        expected = inquiry(seed.RICH, ref="req-refused" if code == "TAX" else f"req-{code}")
        expected["subject"]["id_number"] = "001*******45"
        expected["officer_id"] = "001*******01"
        if code == "TAX":  # refused, and remembered as it came
            del expected["title"]
        assert seen == expected, code
        assert seed.RICH not in json.dumps(seen) and OFFICER_ID not in json.dumps(seen)
    async with session.get(env.partners.last_request_url("BANK-TCB")) as resp:
        assert resp.status == 404  # banks on one server keep their own


LAND_SOAP = {
    "Content-Type": "text/xml; charset=utf-8",
    "SOAPAction": '"urn:vn:gov:land:registry:1#QueryLandRights"',
}
STATED_XML = {
    "OfficerId": f"<OfficerId>{OFFICER_ID}</OfficerId>",
    "LegalBasis": "<LegalBasis>LTHADS-44</LegalBasis>",
    "Title": (
        "<Title><Judgment><CourtCode>TAND-HN</CourtCode><Number>123/2025/DS-PT</Number><Date>2025-11-14</Date>"
        "</Judgment><EnforcementDecision><Number>152/QĐ-THADS</Number><Date>2026-01-08</Date>"
        "</EnforcementDecision></Title>"
    ),
    "DueAt": "<DueAt>2026-03-05T23:59:59+07:00</DueAt>",
}


def land_query(**stated: str | None) -> bytes:
    """A QueryLandRights envelope stating everything, but for the fields given (None leaves one out)."""
    parts = {**STATED_XML, **stated}
    return (
        '<soap:Envelope xmlns:soap="http://schemas.xmlsoap.org/soap/envelope/"><soap:Body>'
        '<QueryLandRightsRequest xmlns="urn:vn:gov:land:registry:1"><RequestRef>r-land</RequestRef>'
        f"<Subject><IdNumber>{seed.RICH}</IdNumber></Subject><CaseRef>THA-2026-001</CaseRef>"
        "<Purpose>enforcement</Purpose>"
        + "".join(part for part in parts.values() if part is not None)
        + "</QueryLandRightsRequest></soap:Body></soap:Envelope>"
    ).encode()


async def test_land_registry_answers_a_query_that_states_its_reasons(
    env: Env, session: aiohttp.ClientSession
) -> None:
    last = env.partners.last_request_url("LAND-REG")
    async with session.get(last) as resp:
        assert resp.status == 404
    async with session.post(
        env.partners.urls["LAND-REG"], data=land_query(), headers=HEADERS | LAND_SOAP
    ) as resp:
        assert resp.status == 200
        assert "<lr:MatchStatus>found</lr:MatchStatus>" in await resp.text()
    async with session.get(last) as resp:
        seen = await resp.json()
    assert seen == {
        "RequestRef": "r-land",
        "Subject": {"IdNumber": "001*******45"},
        "CaseRef": "THA-2026-001",
        "Purpose": "enforcement",
        **STATED_SOAP,
        "OfficerId": "001*******01",
    }


@pytest.mark.parametrize(
    ("stated", "named"),
    [
        ({"OfficerId": None}, "OfficerId"),
        ({"LegalBasis": None}, "LegalBasis"),
        ({"Title": None}, "Title"),
        ({"DueAt": None}, "DueAt"),
        ({"OfficerId": None, "Title": None}, "OfficerId, Title"),
        ({"DueAt": "<DueAt>2026-03-05T23:59:59</DueAt>"}, "DueAt"),
        ({"Title": "<Title><Judgment><CourtCode>TAND-HN</CourtCode></Judgment></Title>"}, "Title"),
    ],
    ids=[
        "no-officer",
        "no-legal-basis",
        "no-title",
        "no-due-at",
        "two-missing",
        "due-at-no-offset",
        "bad-title",
    ],
)
async def test_land_registry_refuses_a_query_that_does_not_state_its_reasons(
    env: Env, session: aiohttp.ClientSession, stated: dict[str, str | None], named: str
) -> None:
    async with session.post(
        env.partners.urls["LAND-REG"], data=land_query(**stated), headers=HEADERS | LAND_SOAP
    ) as resp:
        assert resp.status == 500
        text = await resp.text()
    assert "<faultcode>soap:Client</faultcode>" in text
    assert named in text
    async with session.get(env.partners.last_request_url("LAND-REG")) as resp:
        assert (await resp.json())["RequestRef"] == "r-land"  # remembered even when refused


# ------------------------------------------------------------------------------------------------- SOAP


def items(container: dict[str, list[Any]] | None, name: str) -> list[Any]:
    # zeep reads an empty list wrapper (<CoOwners/>) as None, and so must a connector.
    return [] if container is None else container[name]


def land_answer(result: Any) -> dict[str, Any]:
    """zeep's QueryLandRightsResponse in the canonical JSON names."""
    data = zeep_typed.as_dict(result)
    parcels: list[dict[str, Any]] = []
    for p in items(data["Parcels"], "Parcel"):
        assert isinstance(p["AreaM2"], Decimal)
        row = {"parcel_id": p["ParcelId"], "map_sheet": p["MapSheet"], "address": p["Address"]}
        row |= {"area_m2": float(p["AreaM2"]), "certificate_number": p["CertificateNumber"]}
        row |= {"co_owners": items(p["CoOwners"], "CoOwner")}
        row |= {"encumbrances": items(p["Encumbrances"], "Encumbrance")}
        parcels.append(row | {"pending_transactions": items(p["PendingTransactions"], "Transaction")})
    assert data["AsOf"].tzinfo is not None and data["Reference"].startswith("LAND-REG-")
    return {"match_status": data["MatchStatus"], "parcels": parcels}


def query_with_zeep(
    wsdl: Path, address: str | None, identifiers: list[str]
) -> tuple[str, list[dict[str, Any]]]:
    settings = zeep.Settings(strict=True, forbid_external=True)
    with zeep_typed.client(str(wsdl), settings=settings) as client:
        client.transport.session.headers.update(HEADERS)
        binding = "{urn:vn:gov:land:registry:1}LandRegistrySoap11Binding"
        service = client.create_service(binding, address) if address else client.service
        query = {"CaseRef": "123/QĐ-THADS", "Purpose": "enforcement", **STATED_SOAP}
        answers = [
            land_answer(service.QueryLandRights(RequestRef=f"req-{i}", Subject={"IdNumber": i}, **query))
            for i in identifiers
        ]
        port = client.wsdl.services["LandRegistryService"].ports["LandRegistrySoap11Port"]
        return port.binding_options["address"], answers


async def test_zeep_calls_the_land_registry_with_the_vendored_wsdl(env: Env) -> None:
    url = env.partners.urls["LAND-REG"]
    ids = [seed.RICH, seed.EMPTY, seed.AMBIGUOUS, "001099123456"]
    _, answers = await asyncio.to_thread(query_with_zeep, WSDL, url, ids)
    assert answers == [seed.expected("land", "LAND-REG", i) for i in ids]


async def test_served_wsdl_points_at_the_server(
    env: Env, session: aiohttp.ClientSession, tmp_path: Path
) -> None:
    url = env.partners.urls["LAND-REG"]
    async with session.get(url + "?wsdl") as resp:
        assert resp.status == 200
        (tmp_path / "served.wsdl").write_bytes(await resp.read())
    address, answers = await asyncio.to_thread(query_with_zeep, tmp_path / "served.wsdl", None, [seed.RICH])
    assert address == url
    assert answers == [seed.expected("land", "LAND-REG", seed.RICH)]


async def test_land_registry_answers_faults(env: Env, session: aiohttp.ClientSession) -> None:
    url = env.partners.urls["LAND-REG"]
    soap = {
        "Content-Type": "text/xml; charset=utf-8",
        "SOAPAction": '"urn:vn:gov:land:registry:1#QueryLandRights"',
    }
    evil = b'<?xml version="1.0"?><!DOCTYPE x [<!ENTITY a "a">]><x>&a;</x>'
    async with session.post(url, data=evil, headers=HEADERS | soap) as resp:
        assert resp.status == 500
        assert "<faultcode>soap:Client</faultcode>" in await resp.text()
    invalid = (
        '<soap:Envelope xmlns:soap="http://schemas.xmlsoap.org/soap/envelope/"><soap:Body>'
        '<QueryLandRightsRequest xmlns="urn:vn:gov:land:registry:1"><RequestRef>r</RequestRef>'
        "<Subject><IdNumber>123</IdNumber></Subject><CaseRef>c</CaseRef><Purpose>p</Purpose>"
        "</QueryLandRightsRequest></soap:Body></soap:Envelope>"
    )
    async with session.post(url, data=invalid.encode(), headers=HEADERS | soap) as resp:
        assert resp.status == 500
        assert "IdNumber" in await resp.text()
    async with session.post(url, data=invalid.encode(), headers=soap) as resp:
        assert resp.status == 401


# ----------------------------------------------------------------------------------- asynchronous bank


async def test_async_bank_calls_back_with_a_verifiable_token(
    env: Env, session: aiohttp.ClientSession
) -> None:
    received: asyncio.Queue[tuple[str, dict[str, Any]]] = asyncio.Queue()
    statuses = iter([503, 200])  # the first delivery fails: the bank must try again

    async def callback(request: web.Request) -> web.Response:
        await received.put((request.headers["Authorization"], await request.json()))
        return web.json_response({}, status=next(statuses))

    app = web.Application()
    app.router.add_post("/v1/callbacks/banks", callback)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    try:
        callback_url = f"http://127.0.0.1:{runner.addresses[0][1]}/v1/callbacks/banks"
        body = inquiry(seed.RICH, ref="req-tcb", callback_url=callback_url)
        async with session.post(
            env.partners.urls["BANK-TCB"] + TCB_INQUIRY, json=body, headers=HEADERS
        ) as resp:
            assert resp.status == 202
            accepted = await resp.json()
        assert accepted["status"] == "processing"
        deliveries = [await asyncio.wait_for(received.get(), 5) for _ in range(2)]
    finally:
        await runner.cleanup()
    public = public_pem(env.tcb_key.public_key())
    tokens = []
    for authorization, payload in deliveries:
        scheme, token = authorization.split(" ", 1)
        assert scheme == "Bearer"
        claims = jwt.decode(
            token, public, ["EdDSA"], audience=AUDIENCE, issuer="BANK-TCB", options={"require": REQUIRED}
        )
        tokens.append(claims["jti"])
        assert payload.pop("request_ref") == "req-tcb"
        assert payload.pop("reference") == accepted["reference"]
        assert datetime.fromisoformat(payload.pop("as_of")).utcoffset() is not None
        assert payload == seed.expected("bank", "BANK-TCB", seed.RICH)
    assert len(set(tokens)) == 2  # a fresh token per attempt


# -------------------------------------------------------------------------------------------- modes


async def post_tax(session: aiohttp.ClientSession, env: Env, timeout: float = 5) -> tuple[int, bytes]:
    async with session.post(
        env.url("TAX"), json=inquiry(seed.RICH), headers=HEADERS, timeout=aiohttp.ClientTimeout(total=timeout)
    ) as resp:
        return resp.status, await resp.read()


async def test_modes_switch_at_runtime(env: Env, session: aiohttp.ClientSession) -> None:
    await env.partners.set_mode("tax", "failing")
    answers = [await post_tax(session, env) for _ in range(4)]
    assert [status for status, _ in answers] == [503, 200, 503, 200]
    for _, body in answers[1::2]:
        with pytest.raises(json.JSONDecodeError):
            json.loads(body)

    await env.partners.set_mode("tax", "slow")
    started = time.monotonic()
    assert (await post_tax(session, env))[0] == 200
    assert time.monotonic() - started >= 0.5
    with pytest.raises(TimeoutError):
        await post_tax(session, env, timeout=0.2)

    await env.partners.set_mode("tax", "normal")
    assert (await post_tax(session, env))[0] == 200  # leaves a connection kept alive in the pool
    await env.partners.set_mode("tax", "down")
    with pytest.raises((aiohttp.ClientOSError, aiohttp.ServerDisconnectedError)) as reset:
        await post_tax(session, env)
    assert not isinstance(reset.value, aiohttp.ClientConnectorError)  # the kept-alive connection is reset
    async with aiohttp.ClientSession() as fresh:
        with pytest.raises(aiohttp.ClientConnectorError):  # and nothing listens any more
            await post_tax(fresh, env)

    await env.partners.set_mode("tax", "normal")
    status, body = await post_tax(session, env)
    assert status == 200 and json.loads(body)["match_status"] == "found"


async def test_admin_endpoint_switches_a_running_simulator(env: Env, session: aiohttp.ClientSession) -> None:
    admin = env.partners.base_urls["land"] + "/_sim/mode"
    url = env.partners.urls["LAND-REG"]
    async with session.post(admin, json={"mode": "sideways"}) as resp:
        assert resp.status == 400
    async with session.post(admin, json={"mode": "failing"}) as resp:
        assert (await resp.json())["mode"] == "failing"
    async with session.post(url, data=b"<x/>", headers=HEADERS) as resp:
        assert resp.status == 503
        assert "<faultcode>soap:Server</faultcode>" in await resp.text()
    async with session.post(admin, json={"mode": "down"}) as resp:
        assert resp.status == 200
    with pytest.raises(aiohttp.ClientConnectionError):
        async with session.get(url + "?wsdl") as resp:
            await resp.read()
    async with session.post(admin, json={"mode": "normal"}) as resp:
        assert (await resp.json())["mode"] == "normal"
    async with session.get(url + "?wsdl") as resp:
        assert resp.status == 200


async def test_a_kind_started_down_does_not_listen() -> None:
    partners = await start_partners(modes={"vehicle": "down"}, error_rate=0.0)
    try:
        url = partners.urls["POLICE-VEH"] + REST["POLICE-VEH"][1]
        async with aiohttp.ClientSession() as s:
            with pytest.raises(aiohttp.ClientConnectorError):
                async with s.post(url, json=inquiry(seed.RICH), headers=HEADERS):
                    pass
            await partners.set_mode("vehicle", "normal")
            async with s.post(url, json=inquiry(seed.RICH), headers=HEADERS) as resp:
                assert resp.status == 200
    finally:
        await partners.close()
