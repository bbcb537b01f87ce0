"""The X-Road transport against the simulated security server, with real simulated partners behind it:
the bank simulator over REST, the land registry over SOAP, and a recording backend for what reaches a
provider. Calls go through GuardedConnector, so retries and outcomes are those of any partner."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from lxml import etree

from gateway.connectors.base import LookupRequest, Subject
from gateway.connectors.registry import build_connector
from gateway.connectors.resilience import GuardedConnector, Outcome
from gateway.partners import Partner, Platforms, XRoadPlatform, load_partners, load_platforms
from gateway.simulators.partners import seed
from gateway.simulators.partners.servers import Partners, start_partners
from gateway.simulators.xroad import SecurityServerSim
from gateway.soap import XROAD_NS
from gateway.soap.xroad_header import IDENTIFIERS_NS
from gateway.transports.base import Call, PlatformError
from gateway.transports.context import CallContext, calling
from gateway.transports.registry import build_transport
from gateway.transports.xroad import (
    XRoadTransport,
    rest_request_hash,
    soap_request_hash,
)
from tests.support.lookup_requests import OFFICER_ID, STATED

ROOT = Path(__file__).resolve().parent.parent
WSDL = ROOT / "config" / "wsdl" / "land-registry.wsdl"
SOAP_ENV = "http://schemas.xmlsoap.org/soap/envelope/"

GATEWAY = "VN/GOV/THADS/GATEWAY"
STRANGER = "VN/COM/ELSEWHERE/APP"
BANK = "VN/COM/VCB/INQUIRIES"
BANK_SERVICE = f"{BANK}/accounts"
LAND = "VN/GOV/LAND/REGISTRY"
ECHO = "VN/GOV/ECHO/BACKEND"
ECHO_SERVICE = f"{ECHO}/echo"
CASE = "THA-2026-001"
# The partner simulators want a bearer token; behind X-Road the provider side would authenticate
# by its own means, which this header stands for.
BACKEND_AUTH = {"Authorization": "Bearer provider-side"}
RETRY = {"attempts": 2, "min_seconds": 0.01, "max_seconds": 0.02}


@dataclass
class Recorder:
    """A provider's backend that keeps what reached it and answers 200 (REST) or an envelope (SOAP)."""

    seen: list[tuple[str, dict[str, str], bytes]] = field(default_factory=list)

    async def rest(self, request: web.Request) -> web.Response:
        self.seen.append((request.path_qs, dict(request.headers), await request.read()))
        return web.json_response({"ok": True}, headers={"X-Road-Id": "set-by-the-backend"})

    async def soap(self, request: web.Request) -> web.Response:
        self.seen.append((request.path_qs, dict(request.headers), await request.read()))
        body = (
            f'<?xml version="1.0" encoding="UTF-8"?><s:Envelope xmlns:s="{SOAP_ENV}"><s:Body>'
            '<r:EchoResponse xmlns:r="urn:echo"/></s:Body></s:Envelope>'
        )
        return web.Response(body=body.encode(), content_type="text/xml", charset="utf-8")


@dataclass
class World:
    partners: Partners
    recorder: Recorder
    ss: SecurityServerSim
    session: aiohttp.ClientSession

    def platform(self, **overrides: Any) -> XRoadPlatform:
        values: dict[str, Any] = {"security_server": self.ss.url, "client": GATEWAY} | overrides
        return XRoadPlatform(**values)

    async def call(self, partner: Partner, **platform: Any) -> Outcome:
        """One guarded lookup to ``partner`` through the security server."""
        guarded = await self.guarded(partner, **platform)
        try:
            return await guarded.call(lookup(partner))
        finally:
            await guarded.close()

    async def guarded(self, partner: Partner, **platform: Any) -> GuardedConnector:
        connector = await build_connector(
            partner, self.session, platforms=Platforms(xroad=self.platform(**platform))
        )
        return GuardedConnector(partner, connector)


@pytest.fixture
async def world(aiohttp_server: Callable[..., Any]) -> AsyncIterator[World]:
    partners = await start_partners(error_rate=0.0, latency=(0.0, 0.0))
    recorder = Recorder()
    app = web.Application()
    app.router.add_post("/svc/echo", recorder.rest)
    app.router.add_post("/soap", recorder.soap)
    backend = await aiohttp_server(app)
    ss = SecurityServerSim(
        services={
            BANK_SERVICE: partners.urls["BANK-VCB"],
            LAND: partners.urls["LAND-REG"],
            ECHO_SERVICE: str(backend.make_url("/svc")),
            ECHO: str(backend.make_url("/soap")),
        },
        access={GATEWAY: {BANK_SERVICE, LAND, ECHO}},
        backend_headers={BANK: BACKEND_AUTH, LAND: BACKEND_AUTH},
    )
    await ss.start()
    try:
        async with aiohttp.ClientSession() as session:
            yield World(partners, recorder, ss, session)
    finally:
        await ss.close()
        await partners.close()


def bank_partner(**overrides: Any) -> Partner:
    values: dict[str, Any] = {
        "code": "BANK-VCB",
        "kind": "bank",
        "protocol": "rest",
        "transport": "xroad",
        "xroad": {"subsystem": BANK, "service_code": "accounts"},
        "timeout_seconds": 2,
        "retry": RETRY,
    } | overrides
    return Partner(**values)


def land_partner(**overrides: Any) -> Partner:
    values: dict[str, Any] = {
        "code": "LAND-REG",
        "kind": "land",
        "protocol": "soap",
        "wsdl": str(WSDL),
        "transport": "xroad",
        "xroad": {"subsystem": LAND},
        "timeout_seconds": 2,
        "retry": RETRY,
    } | overrides
    return Partner(**values)


def lookup(partner: Partner, ref: str = "req-x-1", subject: str = seed.RICH) -> LookupRequest:
    return LookupRequest(
        request_ref=ref,
        inquiry_id="inq-1",
        source_id=partner.source_id,
        partner_code=partner.code,
        kind=partner.kind,
        subject=Subject(id_number=subject),
        case_ref=CASE,
        purpose="civil_judgment_enforcement",
        **STATED,
    )


# -- through the security server to real simulated partners ------------------------------------------


async def test_a_bank_lookup_through_x_road_rest_keeps_the_verified_hash(world: World) -> None:
    guarded = await world.guarded(bank_partner())
    try:
        outcome = await guarded.call(lookup(guarded.partner, "req-bank-1"))
    finally:
        await guarded.close()

    assert outcome.status == "found", outcome.reason
    assert outcome.answer is not None and outcome.answer.rows
    evidence = outcome.evidence
    assert evidence is not None
    assert evidence["platform"] == "xroad"
    assert evidence["protocol"] == "rest"
    assert evidence["x_road_id"] == "req-bank-1"
    assert evidence["client"] == GATEWAY
    assert evidence["service"] == BANK_SERVICE
    assert evidence["hash_algorithm"] == "SHA-512"
    assert evidence["verified"] is True
    assert evidence["request_id"]
    assert len(evidence["request_hash"]) == 88  # base64 of 64 bytes


async def test_a_land_lookup_through_x_road_soap(world: World) -> None:
    guarded = await world.guarded(land_partner())
    try:
        outcome = await guarded.call(lookup(guarded.partner, "req-land-1"))
    finally:
        await guarded.close()

    assert outcome.status == "found", outcome.reason
    assert outcome.answer is not None and outcome.answer.rows
    evidence = outcome.evidence
    assert evidence is not None
    assert evidence["protocol"] == "soap"
    assert evidence["x_road_id"] == "req-land-1"
    assert evidence["service"] == f"{LAND}/QueryLandRights"
    assert evidence["hash_algorithm"] == "SHA-512"
    assert evidence["verified"] is True


@pytest.mark.parametrize("make", [bank_partner, land_partner])
async def test_a_platform_error_is_unavailable_naming_x_road_and_retried(
    world: World, make: Callable[..., Partner]
) -> None:
    world.ss.error = True
    outcome = await world.call(make())

    assert outcome.status == "unavailable"
    assert outcome.reason == "X-Road: Server.ServerProxy.ServiceFailed"
    assert outcome.attempts == RETRY["attempts"]
    assert outcome.evidence is None


@pytest.mark.parametrize("make", [bank_partner, land_partner])
async def test_a_wrong_request_hash_is_an_error(world: World, make: Callable[..., Partner]) -> None:
    world.ss.wrong_hash = True
    outcome = await world.call(make())

    assert outcome.status == "error"
    assert outcome.reason == "X-Road: request hash does not match"
    assert outcome.attempts == 1
    assert outcome.evidence is None


@pytest.mark.parametrize("make", [bank_partner, land_partner])
async def test_headers_not_echoed_is_an_error(world: World, make: Callable[..., Partner]) -> None:
    world.ss.no_echo = True
    outcome = await world.call(make())

    assert outcome.status == "error"
    assert outcome.reason == "X-Road: headers not echoed"


@pytest.mark.parametrize("make", [bank_partner, land_partner])
async def test_a_client_without_the_access_right_is_refused(
    world: World, make: Callable[..., Partner]
) -> None:
    outcome = await world.call(make(), client=STRANGER)

    assert outcome.status == "error"
    assert outcome.reason == "X-Road: Server.ServerProxy.AccessDenied"
    assert outcome.attempts == 1  # no retry will grant the right


async def test_the_partners_own_soap_fault_passes_through_x_road(world: World) -> None:
    await world.partners.set_mode("land", "failing")  # a soap:Server fault first, then a broken answer
    outcome = await world.call(land_partner(retry=RETRY | {"attempts": 1}))

    # The land connector's own classification: the registry, not X-Road, failed.
    assert outcome.status == "unavailable"
    assert outcome.reason == "SOAP fault Server"


async def test_the_partners_own_error_status_passes_through_x_road(world: World) -> None:
    await world.partners.set_mode("bank", "failing")  # a 503 first, then a broken answer
    outcome = await world.call(bank_partner(retry=RETRY | {"attempts": 1}))

    assert outcome.status == "unavailable"
    assert outcome.reason is not None and outcome.reason.startswith("partner answered HTTP 5")


async def test_the_faults_can_be_switched_over_http(world: World) -> None:
    async with world.session.post(world.ss.url + "/_sim/faults", json={"wrong_hash": True}) as response:
        assert response.status == 200
        assert await response.json() == {"error": False, "wrong_hash": True, "no_echo": False}
    assert world.ss.wrong_hash
    async with world.session.post(world.ss.url + "/_sim/faults", json={"nothing": 1}) as response:
        assert response.status == 400


# -- what reaches the provider ------------------------------------------------------------------------


def echo_partner(protocol: str) -> Partner:
    xroad = {"subsystem": ECHO} | ({"service_code": "echo"} if protocol == "rest" else {})
    extra = {"wsdl": str(WSDL)} if protocol == "soap" else {}
    kind = "land" if protocol == "soap" else "bank"
    return Partner(
        code="ECHO", kind=kind, protocol=protocol, transport="xroad", xroad=xroad, retry=RETRY, **extra
    )


async def test_user_and_issue_reach_the_rest_backend(world: World) -> None:
    transport = build_transport(echo_partner("rest"), world.session, Platforms(xroad=world.platform()))
    call = Call(
        "POST",
        "/echo?page=1",
        b'{"q":1}',
        {"Content-Type": "application/json", "X-Request-Ref": "msg-1", "X-Road-Client": "forged"},
    )
    with calling(CallContext("msg-1", OFFICER_ID, CASE)) as ctx:
        reply = await transport.send(call, 2)

    assert reply.status == 200
    path, headers, body = world.recorder.seen[-1]
    assert path == "/svc/echo?page=1"
    assert body == b'{"q":1}'
    assert headers["X-Road-Client"] == GATEWAY  # the connector cannot choose it
    assert headers["X-Road-Id"] == "msg-1"
    assert headers["X-Road-UserId"] == OFFICER_ID
    assert headers["X-Road-Issue"] == CASE
    assert headers["X-Road-Service"] == ECHO_SERVICE
    assert headers["X-Request-Ref"] == "msg-1"
    assert "Authorization" not in headers  # no partner token: the security server authenticates
    assert ctx.evidence is not None
    # The hash the security server returned is the agreed form over what was sent.
    expected = rest_request_hash("POST", f"{ECHO_SERVICE}/echo?page=1", "msg-1", GATEWAY, b'{"q":1}')
    assert ctx.evidence["request_hash"] == expected
    # The backend's own X-Road-Id never reaches the client: the security server sets it.
    assert reply.headers["X-Road-Id"] == "msg-1"


async def test_without_officer_or_case_no_user_or_issue_header_and_a_fresh_id(world: World) -> None:
    transport = build_transport(echo_partner("rest"), world.session, Platforms(xroad=world.platform()))
    with calling(CallContext()) as ctx:
        await transport.send(Call("POST", "/echo", b"{}"), 2)

    _, headers, _ = world.recorder.seen[-1]
    assert "X-Road-UserId" not in headers
    assert "X-Road-Issue" not in headers
    assert len(headers["X-Road-Id"]) == 36  # a UUID
    assert ctx.evidence is not None and ctx.evidence["x_road_id"] == headers["X-Road-Id"]


async def test_user_and_issue_reach_the_soap_backend_in_the_envelope(world: World) -> None:
    transport = build_transport(echo_partner("soap"), world.session, Platforms(xroad=world.platform()))
    envelope = (
        f'<?xml version="1.0" encoding="UTF-8"?><soap-env:Envelope xmlns:soap-env="{SOAP_ENV}">'
        '<soap-env:Body><e:Echo xmlns:e="urn:echo"/></soap-env:Body></soap-env:Envelope>'
    ).encode()
    call = Call(
        "POST",
        "",
        envelope,
        {"Content-Type": "text/xml; charset=utf-8", "SOAPAction": '"urn:echo#Echo"'},
        soap=True,
        operation="Echo",
    )
    with calling(CallContext("msg-2", OFFICER_ID, CASE)) as ctx:
        reply = await transport.send(call, 2)

    _, headers, sent = world.recorder.seen[-1]
    assert headers["SOAPAction"] == '"urn:echo#Echo"'
    header = etree.fromstring(sent).find(f"{{{SOAP_ENV}}}Header")
    assert header is not None
    fields = {etree.QName(child).localname: child for child in header}
    assert list(fields) == ["client", "service", "id", "userId", "issue", "protocolVersion"]
    assert fields["client"].get(f"{{{IDENTIFIERS_NS}}}objectType") == "SUBSYSTEM"
    assert [c.text for c in fields["client"]] == GATEWAY.split("/")
    assert fields["service"].get(f"{{{IDENTIFIERS_NS}}}objectType") == "SERVICE"
    assert [c.text for c in fields["service"]] == [*ECHO.split("/"), "Echo"]
    assert fields["id"].text == "msg-2"
    assert fields["userId"].text == OFFICER_ID
    assert fields["issue"].text == CASE
    assert fields["protocolVersion"].text == "4.0"
    assert ctx.evidence is not None
    assert ctx.evidence["request_hash"] == soap_request_hash(sent)
    # What the connector gets has no X-Road header left (zeep reads the partner's WSDL alone).
    assert XROAD_NS.encode() not in reply.body
    assert etree.fromstring(reply.body).find(f"{{{SOAP_ENV}}}Body/{{urn:echo}}EchoResponse") is not None


# -- configuration and the hash ------------------------------------------------------------------------


async def test_record_mode_keeps_the_hash_the_security_server_checked(world: World) -> None:
    world.ss.wrong_hash = True  # a form the gateway cannot recompute, as with a real security server
    outcome = await world.call(bank_partner(), rest_request_hash="record")

    assert outcome.status == "found", outcome.reason
    assert outcome.evidence is not None and outcome.evidence["verified"] is False


async def test_an_x_road_partner_needs_the_platform(world: World) -> None:
    with pytest.raises(ValueError, match=r"BANK-VCB: transport xroad needs a \[platforms\.xroad\]"):
        build_transport(bank_partner(), world.session, Platforms())


async def test_a_rest_service_has_no_version(world: World) -> None:
    partner = bank_partner(xroad={"subsystem": BANK, "service_code": "accounts", "service_version": "v1"})
    with pytest.raises(ValueError, match="service_version is for SOAP"):
        XRoadTransport(partner, world.platform(), world.session)


def test_the_rest_request_hash_covers_every_part() -> None:
    base = ("POST", "VN/COM/VCB/INQUIRIES/accounts/api", "id-1", GATEWAY, b"{}")
    digest = rest_request_hash(*base)
    assert digest == rest_request_hash(*base)
    for index, other in enumerate(("GET", "VN/COM/VCB/INQUIRIES/accounts/apx", "id-2", STRANGER, b"[]")):
        changed = list(base)
        changed[index] = other
        assert rest_request_hash(*changed) != digest  # type: ignore[arg-type]


async def test_a_request_hash_of_a_weak_algorithm_is_refused(world: World) -> None:
    """An answer whose requestHash names SHA-1 proves too little to keep."""

    async def weak(request: web.Request) -> web.Response:
        sent = etree.fromstring(await request.read())
        header = sent.find(f"{{{SOAP_ENV}}}Header")
        assert header is not None
        weak_hash = etree.SubElement(
            header, f"{{{XROAD_NS}}}requestHash", algorithmId="http://www.w3.org/2000/09/xmldsig#sha1"
        )
        weak_hash.text = "AAAA"
        return web.Response(body=etree.tostring(sent), content_type="text/xml")

    app = web.Application()
    app.router.add_post("/", weak)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    url = f"http://127.0.0.1:{runner.addresses[-1][1]}"
    try:
        transport = XRoadTransport(echo_partner("soap"), world.platform(security_server=url), world.session)
        envelope = (
            f'<s:Envelope xmlns:s="{SOAP_ENV}"><s:Body><e:Echo xmlns:e="urn:echo"/></s:Body></s:Envelope>'
        )
        with pytest.raises(PlatformError, match="algorithm not accepted"):
            await transport.send(Call("POST", "", envelope.encode(), soap=True, operation="Echo"), 2)
    finally:
        await runner.cleanup()


async def test_the_documented_configuration_loads_and_builds(
    world: World, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "partners.toml").write_text(
        f"""
[platforms.xroad]
security_server = "https://ss.thads.example.gov.vn"
client = "{GATEWAY}"
protocol_version = "4.0"
rest_request_hash = "verify"

[[partner]]
code = "BANK-VCB"
kind = "bank"
protocol = "rest"
transport = "xroad"
xroad = {{ subsystem = "{BANK}", service_code = "accounts" }}
retry = {{ attempts = 1 }}
""",
        "utf-8",
    )
    monkeypatch.setenv("GATEWAY_XROAD_SECURITY_SERVER", world.ss.url)
    (partner,) = load_partners(tmp_path)
    platforms = load_platforms(tmp_path)
    assert platforms.xroad is not None and platforms.xroad.security_server == world.ss.url

    connector = await build_connector(partner, world.session, platforms=platforms)
    guarded = GuardedConnector(partner, connector)
    try:
        outcome = await guarded.call(lookup(partner))
    finally:
        await guarded.close()
    assert outcome.status == "found", outcome.reason
    assert outcome.evidence is not None and outcome.evidence["verified"] is True


async def test_the_security_server_refuses_a_call_that_names_no_client(world: World) -> None:
    async with world.session.post(world.ss.url + f"/r1/{BANK_SERVICE}/api/v1/account-inquiries") as response:
        assert response.status == 400
        assert response.headers["X-Road-Error"] == "Client.BadRequest"
        assert (await response.json())["type"] == "Client.BadRequest"
    unknown = {"X-Road-Client": GATEWAY}
    async with world.session.post(world.ss.url + f"/r1/{BANK}/nothing/x", headers=unknown) as response:
        assert response.status == 500
        assert response.headers["X-Road-Error"] == "Server.ServerProxy.UnknownService"
