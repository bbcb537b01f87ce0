"""The gateway as an X-Road service provider: calls a trusted security server forwards are taken for the
registered client their X-Road client is mapped to, over REST and SOAP; X-Road headers from anyone else
are refused; what the audit keeps of the call; the WSDL and OpenAPI a security server registers the
service from; the configuration's own refusals.

Requests are shaped as a provider-side security server forwards them, sent over real loopback
connections: from 127.0.0.1 (the TLS-terminating proxy's address, with the certificate headers it sets),
from 127.0.0.2 (a security server trusted by its address) and from 127.0.0.3 (no one trusted)."""

from __future__ import annotations

import json
import re
import shutil
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp.test_utils import TestServer
from lxml import etree
from multidict import CIMultiDict, CIMultiDictProxy
from openapi_spec_validator import validate
from sqlalchemy import select

from gateway.security.clients import ClientStore
from gateway.security.keys import generate_keypair, public_pem
from gateway.security.xroad_inbound import (
    ProxySettings,
    XRoadInbound,
    XRoadSettings,
    claim_from_headers,
    load_xroad_inbound,
    parse_client_id,
)
from gateway.soap import SOAP_ENV, XROAD_NS, body_payload
from gateway.soap.xml_safety import parse_untrusted
from gateway.soap.xroad_header import FIELDS, IDENTIFIERS_NS
from gateway.storage.audit import record
from gateway.storage.database import Database
from gateway.storage.tables import audit_log
from gateway.web.app import create_app
from tests.conftest import COURT, ROOT, World, fresh_judgment, make_world
from tests.support import zeep_typed
from tests.test_soap_endpoint import ACTION, C, fresh_request

PROXY = "127.0.0.1"
DIRECT_SS = "127.0.0.2"
STRANGER = "127.0.0.3"
SS_SUBJECT = "C=VN,O=THADS,CN=ss1.gateway.thads.gov.vn"
SS_FINGERPRINT = "4B:98:AA:2D:C5:08:E1:B8:54:49:E5:AB:0D:44:35:1D:61:F9:EB:94"
COURT_XROAD = "XROADVN/GOV/TAND-HN/CASES"
CASE_XROAD = "XROADVN/GOV/THADS-HN/CASES"
GHOST_XROAD = "XROADVN/GOV/GHOST/CASES"
REVOKED_XROAD = "XROADVN/GOV/TAND-OLD/CASES"
REVOKED = "TAND-OLD"
SERVICE_URL = "https://gateway.internal.thads.gov.vn:8443"
#: The officer's X-Road user id: a country prefix and their personal ID, which the audit never holds.
OFFICER_ID = "001085012345"
OFFICER = f"VN{OFFICER_ID}"
ISSUE = "THA-HN-2026-000123"
X = f"{{{XROAD_NS}}}"
ID = f"{{{IDENTIFIERS_NS}}}"

XROAD_TOML = f"""
[provider]
enabled = true
service_url = "{SERVICE_URL}"

[provider.proxy]
addresses = ["{PROXY}"]

[[security_server]]
name = "ss-proxied"
subjects = ["{SS_SUBJECT}"]
fingerprints = ["{SS_FINGERPRINT}"]

[[security_server]]
name = "ss-direct"
addresses = ["{DIRECT_SS}"]

[[client]]
xroad_id = "{COURT_XROAD}"
client = "TAND-HN"

[[client]]
xroad_id = "{CASE_XROAD}"
client = "THADS-HN"

[[client]]
xroad_id = "{GHOST_XROAD}"
client = "GHOST"

[[client]]
xroad_id = "{REVOKED_XROAD}"
client = "{REVOKED}"
"""


@dataclass
class Answer:
    status: int
    content_type: str
    headers: CIMultiDictProxy[str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


@dataclass
class Gateway:
    world: World
    server: TestServer

    async def send(self, method: str, path: str, *, source: str = PROXY, **kw: Any) -> Answer:
        """One request over a real connection from ``source`` (any 127/8 address is this host's)."""
        connector = aiohttp.TCPConnector(local_addr=(source, 0), force_close=True)
        async with (
            aiohttp.ClientSession(connector=connector) as session,
            session.request(method, self.server.make_url(path), allow_redirects=False, **kw) as resp,
        ):
            return Answer(resp.status, resp.content_type, resp.headers, await resp.read())


def certificate(**changes: str) -> dict[str, str]:
    """The headers the TLS-terminating proxy sets for the security server's verified certificate."""
    headers = {
        "X-Client-Cert-Verified": "SUCCESS",
        "X-Client-Cert-Subject": SS_SUBJECT,
        "X-Client-Cert-Fingerprint": SS_FINGERPRINT.replace(":", "").lower(),
    }
    return {**headers, **changes}


def xroad(client: str = COURT_XROAD, message_id: str | None = None, **more: str) -> dict[str, str]:
    """The X-Road headers a provider-side security server forwards with a REST call."""
    return {
        "X-Road-Client": client,
        "X-Road-Id": message_id or str(uuid.uuid4()),
        "X-Road-UserId": OFFICER,
        "X-Road-Issue": ISSUE,
        "X-Road-Service": "XROADVN/GOV/THADS/GATEWAY/judgments",
        **more,
    }


async def start(world: World, aiohttp_server: Callable[..., Any]) -> Gateway:
    server: TestServer = await aiohttp_server(create_app(world.settings), host=PROXY)
    return Gateway(world, server)


@pytest.fixture
async def gateway(tmp_path: Path, fresh_database_url: str, aiohttp_server: Callable[..., Any]) -> Gateway:
    world = make_world(tmp_path, fresh_database_url)
    (world.settings.config_dir / "xroad.toml").write_text(XROAD_TOML, "utf-8")
    # A court whose registration was revoked; its X-Road client is still mapped to it.
    store = ClientStore(world.settings.clients_dir)
    store.add(REVOKED, public_pem(generate_keypair("ed25519").public_key()), ["judgments.push"])
    store.revoke(REVOKED)
    return await start(world, aiohttp_server)


async def audit_records(world: World) -> list[dict[str, Any]]:
    db = Database(world.settings.resolved_database_url)
    try:
        async with db.read() as conn:
            return [record(row) for row in (await conn.execute(select(audit_log).order_by(audit_log.c.id)))]
    finally:
        await db.dispose()


def in_clear(records: list[dict[str, Any]]) -> bool:
    return OFFICER_ID in repr(records)


# -- REST ------------------------------------------------------------------------------------------


async def test_a_judgment_pushed_through_a_trusted_security_server_gets_its_receipt_and_audit(
    gateway: Gateway,
) -> None:
    doc = fresh_judgment()
    headers = {**certificate(), **xroad()}
    answer = await gateway.send("POST", "/v1/judgments", json=doc, headers=headers)
    assert answer.status == 202, answer.body
    receipt = answer.json()
    assert receipt["message_id"] == doc["message_id"] and receipt["sender"] == COURT

    records = await audit_records(gateway.world)
    (accepted,) = [r for r in records if r["message_id"] == doc["message_id"] and r["outcome"] == "accepted"]
    assert accepted["actor"] == COURT
    masked = "VN001*******45"
    assert accepted["subject"] == masked  # the officer is the request's subject, as a token's sub is
    assert accepted["data"]["xroad"] == {
        "client": COURT_XROAD,
        "id": headers["X-Road-Id"],
        "user_id": masked,
        "issue": ISSUE,
        "service": headers["X-Road-Service"],
        "security_server": "ss-proxied",
    }
    assert not in_clear(records)

    # A read through X-Road is audited with its call too.
    read = await gateway.send(
        "GET", f"/v1/messages/{doc['message_id']}", headers={**certificate(), **xroad()}
    )
    assert read.status == 200, read.body
    (shown,) = [r for r in await audit_records(gateway.world) if r["action"] == "messages.read"]
    assert shown["data"]["xroad"]["client"] == COURT_XROAD and shown["subject"] == masked


async def test_a_security_server_trusted_by_its_address_needs_no_certificate(gateway: Gateway) -> None:
    answer = await gateway.send(
        "POST", "/v1/judgments", json=fresh_judgment(), headers=xroad(), source=DIRECT_SS
    )
    assert answer.status == 202, answer.body
    (accepted,) = [r for r in await audit_records(gateway.world) if r["outcome"] == "accepted"]
    assert accepted["data"]["xroad"]["security_server"] == "ss-direct"


async def test_an_x_road_client_mapped_to_no_registered_client_is_forbidden(gateway: Gateway) -> None:
    answer = await gateway.send(
        "POST",
        "/v1/judgments",
        json=fresh_judgment(),
        headers={**certificate(), **xroad("XROADVN/GOV/UNKNOWN/SYS")},
    )
    assert answer.status == 403 and answer.content_type == "application/problem+json"
    assert "XROADVN/GOV/UNKNOWN/SYS" in answer.json()["detail"]


async def test_a_client_mapped_to_but_unknown_or_revoked_is_unauthorized(gateway: Gateway) -> None:
    ghost = await gateway.send(
        "POST", "/v1/judgments", json=fresh_judgment(), headers={**certificate(), **xroad(GHOST_XROAD)}
    )
    assert ghost.status == 401 and ghost.content_type == "application/problem+json"
    revoked = await gateway.send(
        "POST", "/v1/judgments", json=fresh_judgment(), headers={**certificate(), **xroad(REVOKED_XROAD)}
    )
    assert revoked.status == 401 and revoked.content_type == "application/problem+json"


async def test_the_mapped_clients_grants_apply_and_its_refusal_is_audited_with_the_call(
    gateway: Gateway,
) -> None:
    # The case system may read and confirm, not push judgments.
    headers = {**certificate(), **xroad(CASE_XROAD)}
    answer = await gateway.send("POST", "/v1/judgments", json=fresh_judgment(), headers=headers)
    assert answer.status == 403 and answer.content_type == "application/problem+json"
    (refused,) = [r for r in await audit_records(gateway.world) if r["outcome"] == "rejected"]
    assert refused["actor"] == "THADS-HN"
    assert refused["data"]["xroad"]["id"] == headers["X-Road-Id"]


@pytest.mark.parametrize(
    ("source", "proof"),
    [
        (STRANGER, certificate()),  # certificate headers from an address that is not the proxy's
        (STRANGER, {}),
        (PROXY, {}),  # the proxy, but no certificate verified
        (PROXY, certificate(**{"X-Client-Cert-Verified": "FAILED:certificate has expired"})),
        (
            PROXY,
            certificate(
                **{"X-Client-Cert-Subject": "C=VN,O=Elsewhere,CN=ss9", "X-Client-Cert-Fingerprint": "ab" * 20}
            ),
        ),
    ],
    ids=["stranger-with-headers", "stranger", "proxy-no-cert", "proxy-cert-failed", "proxy-unknown-cert"],
)
async def test_x_road_headers_from_an_untrusted_source_are_refused(
    gateway: Gateway, source: str, proof: dict[str, str]
) -> None:
    answer = await gateway.send(
        "POST", "/v1/judgments", json=fresh_judgment(), headers={**proof, **xroad()}, source=source
    )
    assert answer.status == 401 and answer.content_type == "application/problem+json"
    assert "trusted security server" in answer.json()["detail"]


async def test_a_token_keeps_working_and_does_not_carry_untrusted_x_road_headers(gateway: Gateway) -> None:
    world = gateway.world
    plain = await gateway.send("POST", "/v1/judgments", json=fresh_judgment(), headers=world.court_headers())
    assert plain.status == 202, plain.body
    # A token with X-Road headers is not taken as a token alone: the headers are refused, not ignored.
    with_claims = await gateway.send(
        "POST",
        "/v1/judgments",
        json=fresh_judgment(),
        headers={**world.court_headers(), **xroad()},
        source=STRANGER,
    )
    assert with_claims.status == 401


async def test_a_token_through_a_trusted_server_must_be_the_x_road_clients(gateway: Gateway) -> None:
    world = gateway.world
    same = await gateway.send(
        "POST",
        "/v1/judgments",
        json=fresh_judgment(),
        headers={**world.court_headers(), **certificate(), **xroad()},
    )
    assert same.status == 202, same.body
    other = await gateway.send(
        "POST",
        "/v1/judgments",
        json=fresh_judgment(),
        headers={**world.court_headers(), **certificate(), **xroad(CASE_XROAD)},
    )
    assert other.status == 401


async def test_an_x_road_message_id_is_accepted_once(gateway: Gateway) -> None:
    headers = {**certificate(), **xroad()}
    first = await gateway.send("GET", "/v1/services", headers=headers)
    assert first.status == 200, first.body
    again = await gateway.send("GET", "/v1/services", headers=headers)
    assert again.status == 401 and "already used" in again.json()["detail"]
    # Another X-Road client may use the same id: ids are remembered per client.
    other = await gateway.send("GET", "/v1/services", headers={**headers, "X-Road-Client": CASE_XROAD})
    assert other.status == 200


@pytest.mark.parametrize(
    ("headers", "status"),
    [
        ({"X-Road-Id": str(uuid.uuid4())}, 400),  # X-Road headers without X-Road-Client
        ({"X-Road-Client": "XROADVN/GOV"}, 400),
        ({"X-Road-Client": "XROADVN/GOV/TAND HN/CASES"}, 400),
        ({"X-Road-Client": COURT_XROAD}, 400),  # no X-Road-Id
        ({"X-Road-Client": COURT_XROAD, "X-Road-Id": "x", "X-Road-Issue": "A" * 256}, 400),
    ],
    ids=["no-client", "short-client", "bad-characters", "no-id", "overlong-issue"],
)
async def test_malformed_x_road_headers_from_a_trusted_server_are_bad_requests(
    gateway: Gateway, headers: dict[str, str], status: int
) -> None:
    answer = await gateway.send("GET", "/v1/services", headers={**certificate(), **headers})
    assert answer.status == status and answer.content_type == "application/problem+json"


async def test_without_xroad_toml_x_road_headers_are_refused(
    tmp_path: Path, fresh_database_url: str, aiohttp_server: Callable[..., Any]
) -> None:
    world = make_world(tmp_path, fresh_database_url)
    gateway = await start(world, aiohttp_server)
    for source in (PROXY, DIRECT_SS):
        answer = await gateway.send(
            "POST",
            "/v1/judgments",
            json=fresh_judgment(),
            headers={**certificate(), **xroad()},
            source=source,
        )
        assert answer.status == 401
    plain = await gateway.send("POST", "/v1/judgments", json=fresh_judgment(), headers=world.court_headers())
    assert plain.status == 202


# -- SOAP ------------------------------------------------------------------------------------------


def identifier(tag: str, kind: str, parts: dict[str, str]) -> etree._Element:
    element = etree.Element(
        f"{X}{tag}", {f"{ID}objectType": kind}, nsmap={"xrd": XROAD_NS, "id": IDENTIFIERS_NS}
    )
    for name, value in parts.items():
        etree.SubElement(element, f"{ID}{name}").text = value
    return element


def xroad_blocks(
    client: str = COURT_XROAD, operation: str = "PushJudgment", message_id: str | None = None
) -> list[etree._Element]:
    """The X-Road SOAP header of a call, as the consumer's information system writes it."""
    instance, member_class, member, *subsystem = client.split("/")
    client_parts = {"xRoadInstance": instance, "memberClass": member_class, "memberCode": member}
    if subsystem:
        client_parts["subsystemCode"] = subsystem[0]
    blocks = [
        identifier("client", "SUBSYSTEM" if subsystem else "MEMBER", client_parts),
        identifier(
            "service",
            "SERVICE",
            {
                "xRoadInstance": "XROADVN",
                "memberClass": "GOV",
                "memberCode": "THADS",
                "subsystemCode": "GATEWAY",
                "serviceCode": operation,
                "serviceVersion": "v1",
            },
        ),
    ]
    for name, value in (
        ("id", message_id or str(uuid.uuid4())),
        ("userId", OFFICER),
        ("issue", ISSUE),
        ("protocolVersion", "4.0"),
    ):
        element = etree.Element(f"{X}{name}", nsmap={"xrd": XROAD_NS})
        element.text = value
        blocks.append(element)
    return blocks


def with_header(request: bytes, blocks: list[etree._Element]) -> bytes:
    root = etree.fromstring(request)
    header = root.find(f"{{{SOAP_ENV}}}Header")
    assert header is not None
    for block in blocks:
        header.append(block)
    return bytes(etree.tostring(root, xml_declaration=True, encoding="UTF-8"))


def shape(element: etree._Element) -> tuple[Any, ...]:
    """An element as the security server compares it: name, attributes, text, children."""
    return (
        element.tag,
        dict(element.attrib),
        (element.text or "").strip(),
        tuple(shape(child) for child in element if isinstance(child.tag, str)),
    )


def echoed(answer: Answer) -> list[tuple[Any, ...]]:
    root = parse_untrusted(answer.body)
    header = root.find(f"{{{SOAP_ENV}}}Header")
    return [] if header is None else [shape(block) for block in header]


SOAP = {"Content-Type": "text/xml; charset=utf-8", "SOAPAction": ACTION}


async def test_a_soap_push_through_a_trusted_server_echoes_the_x_road_header(gateway: Gateway) -> None:
    blocks = xroad_blocks()
    body = with_header(fresh_request(), blocks)
    answer = await gateway.send("POST", "/soap/courts", data=body, headers={**certificate(), **SOAP})
    assert answer.status == 200, answer.body
    payload = body_payload(parse_untrusted(answer.body))
    assert payload.tag == f"{C}PushJudgmentResponse" and payload.findtext(f"{C}Duplicate") == "false"
    assert echoed(answer) == [shape(block) for block in blocks]  # every field, in order, same values

    records = await audit_records(gateway.world)
    (accepted,) = [r for r in records if r["outcome"] == "accepted"]
    message_id = blocks[2].text
    assert accepted["actor"] == COURT and accepted["data"]["xroad"]["id"] == message_id
    assert accepted["data"]["xroad"]["protocol_version"] == "4.0"
    assert accepted["data"]["xroad"]["service"] == "XROADVN/GOV/THADS/GATEWAY/PushJudgment/v1"
    assert not in_clear(records)

    # The same envelope again: the same message id, refused as a replay (a fault echoing the header).
    again = await gateway.send("POST", "/soap/courts", data=body, headers={**certificate(), **SOAP})
    assert again.status == 401 and echoed(again) == [shape(block) for block in blocks]


async def test_a_soap_x_road_header_from_an_untrusted_source_is_a_fault(gateway: Gateway) -> None:
    body = with_header(fresh_request(), xroad_blocks())
    # Without a token, from no trusted server: refused before the envelope is read.
    anonymous = await gateway.send("POST", "/soap/courts", data=body, headers=SOAP, source=STRANGER)
    assert (
        anonymous.status == 401
        and body_payload(parse_untrusted(anonymous.body)).tag == f"{{{SOAP_ENV}}}Fault"
    )
    # With a token: the token is good, the X-Road header it carries is still not believed.
    tokened = await gateway.send(
        "POST", "/soap/courts", data=body, headers={**gateway.world.court_headers(), **SOAP}, source=STRANGER
    )
    assert tokened.status == 401
    assert b"trusted security server" in tokened.body


async def test_the_soap_header_must_agree_with_the_http_x_road_client(gateway: Gateway) -> None:
    blocks = xroad_blocks()
    body = with_header(fresh_request(), blocks)
    headers = {**certificate(), **SOAP, "X-Road-Client": CASE_XROAD, "X-Road-Id": str(blocks[2].text)}
    answer = await gateway.send("POST", "/soap/courts", data=body, headers=headers)
    assert answer.status == 401, answer.body
    agreeing = {**headers, "X-Road-Client": COURT_XROAD}
    accepted = await gateway.send("POST", "/soap/courts", data=body, headers=agreeing)
    assert accepted.status == 200, accepted.body


async def test_the_x_road_service_must_be_the_bodys_operation(gateway: Gateway) -> None:
    blocks = xroad_blocks(operation="PushCourtEvent")
    answer = await gateway.send(
        "POST", "/soap/courts", data=with_header(fresh_request(), blocks), headers={**certificate(), **SOAP}
    )
    assert answer.status == 400 and b"PushCourtEvent" in answer.body
    assert echoed(answer) == [shape(block) for block in blocks]


async def test_an_incomplete_x_road_header_is_a_client_fault(gateway: Gateway) -> None:
    blocks = [b for b in xroad_blocks() if etree.QName(b).localname != "protocolVersion"]
    answer = await gateway.send(
        "POST", "/soap/courts", data=with_header(fresh_request(), blocks), headers={**certificate(), **SOAP}
    )
    assert answer.status == 400 and b"protocolVersion" in answer.body


async def test_an_unmapped_soap_client_is_a_forbidden_fault(gateway: Gateway) -> None:
    blocks = xroad_blocks("XROADVN/GOV/UNKNOWN")  # a MEMBER, no subsystem
    answer = await gateway.send(
        "POST", "/soap/courts", data=with_header(fresh_request(), blocks), headers={**certificate(), **SOAP}
    )
    assert answer.status == 403 and b"XROADVN/GOV/UNKNOWN" in answer.body


# -- descriptions ----------------------------------------------------------------------------------

WSDL = "http://schemas.xmlsoap.org/wsdl/"
WSDL_SOAP = "http://schemas.xmlsoap.org/wsdl/soap/"


async def test_the_x_road_wsdl_declares_the_header_on_every_operation(
    gateway: Gateway, tmp_path: Path
) -> None:
    answer = await gateway.send("GET", "/soap/courts?wsdl=xroad", source=STRANGER)
    assert answer.status == 200 and answer.content_type == "text/xml"
    wsdl = parse_untrusted(answer.body)
    (address,) = wsdl.iter(f"{{{WSDL_SOAP}}}address")
    assert address.get("location") == SERVICE_URL + "/soap/courts"
    (message,) = [m for m in wsdl.iter(f"{{{WSDL}}}message") if m.get("name") == "XRoadHeader"]
    assert [(p.get("name"), p.get("element")) for p in message] == [(f, f"xrd:{f}") for f in FIELDS]
    operations = list(wsdl.iterfind(f"{{{WSDL}}}binding/{{{WSDL}}}operation"))
    assert {o.get("name") for o in operations} == {"PushJudgment", "PushCourtEvent"}
    for operation in operations:
        assert operation.findtext(f"{X}version") == "v1"
        for direction in ("input", "output"):
            headers = operation.findall(f"{{{WSDL}}}{direction}/{{{WSDL_SOAP}}}header")
            assert [h.get("part") for h in headers] == list(FIELDS)
    schemas = {s.get("targetNamespace") for s in wsdl.iter("{http://www.w3.org/2001/XMLSchema}schema")}
    assert {XROAD_NS, IDENTIFIERS_NS} <= schemas

    # A SOAP toolkit reads it: zeep, with the courts' XSD beside it.
    text = answer.body.replace(b'schemaLocation="?xsd=courts.xsd"', b'schemaLocation="courts.xsd"')
    (tmp_path / "courts-xroad.wsdl").write_bytes(text)
    (tmp_path / "courts.xsd").write_bytes((ROOT / "gateway" / "soap" / "courts.xsd").read_bytes())
    client = zeep_typed.client(str(tmp_path / "courts-xroad.wsdl"))
    binding = next(iter(client.wsdl.bindings.values()))
    operation = zeep_typed.operation(binding, "PushJudgment")
    declared = [element.name for element in operation.input.header.type.elements_nested[0][1]]
    assert declared == list(FIELDS)

    # The plain WSDL is unchanged: no X-Road header.
    plain = await gateway.send("GET", "/soap/courts?wsdl")
    assert XROAD_NS.encode() not in plain.body


async def test_the_x_road_openapi_lists_the_rest_operations_with_their_x_road_headers(
    gateway: Gateway,
) -> None:
    answer = await gateway.send("GET", "/openapi-xroad.json", source=STRANGER)
    assert answer.status == 200 and answer.content_type == "application/json"
    document = answer.json()
    validate(document)
    assert document["servers"] == [{"url": SERVICE_URL}]
    paths = document["paths"]
    assert "/v1/judgments" in paths and "/v1/keys" in paths
    assert not {"/soap/courts", "/healthz", "/metrics", "/openapi.json"} & set(paths)
    parameters = document["components"]["parameters"]
    assert parameters["XRoadClient"] == parameters["XRoadClient"] | {"name": "X-Road-Client", "in": "header"}
    assert parameters["XRoadClient"]["required"] is True
    push = paths["/v1/judgments"]["post"]
    named = [parameters[p["$ref"].rpartition("/")[2]]["name"] for p in push["parameters"] if "$ref" in p]
    assert {"X-Road-Client", "X-Road-Id", "X-Road-UserId", "X-Road-Issue"} <= set(named)
    assert "X-Road-Id" in push["responses"]["202"]["headers"]
    assert {} in push["security"]  # the security server authenticates; a token is optional

    listed = (await gateway.send("GET", "/openapi.json")).json()
    assert "/openapi-xroad.json" in listed["paths"]


# -- configuration ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "complaint"),
    [
        ('[[security_server]]\nname = "a"\nsubjects = ["CN=a"]\n', "no addresses"),
        (
            '[provider.proxy]\naddresses = ["10.0.0.0/8"]\n[[security_server]]\nname = "a"\n'
            'addresses = ["10.1.2.3"]\n',
            "the proxy's",
        ),
        ('[[security_server]]\nname = "a"\n', "subjects, fingerprints or addresses"),
        (
            '[[client]]\nxroad_id = "A/B/C"\nclient = "X1"\n[[client]]\nxroad_id = "A/B/C"\nclient = "X2"\n',
            "each xroad_id once",
        ),
        ('[[client]]\nxroad_id = "A/B"\nclient = "X1"\n', "INSTANCE/CLASS/MEMBER"),
        (
            '[[security_server]]\nname = "a"\nfingerprints = ["not-hex"]\naddresses = ["10.0.0.1"]\n',
            "not a hex digest",
        ),
        ("[provider]\nenable = true\n", "enable"),
    ],
    ids=[
        "subjects-without-proxy",
        "proxy-address-as-server",
        "unidentified",
        "repeated-client",
        "short-client",
        "bad-fingerprint",
        "misspelt-key",
    ],
)
def test_a_configuration_that_would_be_misread_is_refused(tmp_path: Path, text: str, complaint: str) -> None:
    (tmp_path / "xroad.toml").write_text(text, "utf-8")
    with pytest.raises(ValueError, match=re.escape(complaint)):
        load_xroad_inbound(tmp_path)


def test_nothing_is_trusted_unless_configured(tmp_path: Path) -> None:
    absent = load_xroad_inbound(tmp_path)
    assert not absent.enabled
    assert absent.security_server("127.0.0.1", certificate()) is None
    disabled = XRoadInbound(
        XRoadSettings.model_validate(
            {"provider": {"enabled": False}, "security_server": [{"name": "a", "addresses": ["127.0.0.1"]}]}
        )
    )
    assert disabled.security_server("127.0.0.1", {}) is None
    # Loopback is trusted only when listed.
    listed = XRoadInbound(
        XRoadSettings.model_validate(
            {"provider": {"enabled": True}, "security_server": [{"name": "a", "addresses": ["127.0.0.2"]}]}
        )
    )
    assert listed.security_server("127.0.0.2", {}) == "a"
    assert listed.security_server("::ffff:127.0.0.2", {}) == "a"
    assert listed.security_server("127.0.0.1", {}) is None
    assert listed.security_server(None, {}) is None


def test_certificates_are_matched_by_subject_or_fingerprint() -> None:
    inbound = XRoadInbound(
        XRoadSettings.model_validate(
            {
                "provider": {"enabled": True, "proxy": {"addresses": ["10.0.0.5"]}},
                "security_server": [
                    {"name": "ss", "subjects": [SS_SUBJECT]},
                    {"name": "ss2", "fingerprints": ["AB" * 32]},
                ],
            }
        )
    )
    assert inbound.security_server("10.0.0.5", certificate(**{"X-Client-Cert-Fingerprint": ""})) == "ss"
    by_print = certificate(**{"X-Client-Cert-Subject": "CN=other", "X-Client-Cert-Fingerprint": "ab" * 32})
    assert inbound.security_server("10.0.0.5", by_print) == "ss2"
    assert inbound.security_server("10.0.0.5", certificate(**{"X-Client-Cert-Subject": "not a DN"})) is None
    assert inbound.security_server("10.0.0.6", certificate()) is None


def test_the_rest_headers_are_read_as_the_protocol_writes_them() -> None:
    headers = CIMultiDict({"x-road-client": "XROADVN/GOV/T%C3%81ND/CASES", "X-Road-Id": "abc"})
    with pytest.raises(ValueError, match="does not allow"):  # decoded, "Á" is no identifier character
        claim_from_headers(headers)
    claim = claim_from_headers(
        CIMultiDict({"x-road-client": "XROADVN/GOV/TAND%2DHN/CASES", "x-road-id": "1"})
    )
    assert claim is not None and claim.client == ("XROADVN", "GOV", "TAND-HN", "CASES")
    assert claim_from_headers(CIMultiDict({"Accept": "application/json"})) is None
    assert parse_client_id("XROADVN/COM/0102030405") == ("XROADVN", "COM", "0102030405")


def test_the_served_nginx_config_sets_the_headers_the_gateway_reads() -> None:
    """The mTLS door verifies client certificates and sets exactly the headers ``[provider.proxy]``
    reads by default; the plain door drops them."""
    mtls = (ROOT / "deploy" / "nginx" / "xroad-mtls.conf").read_text("utf-8")
    plain = (ROOT / "deploy" / "nginx" / "gateway.conf").read_text("utf-8")
    proxy = ProxySettings()
    assert re.search(r"^\s*ssl_verify_client on;", mtls, re.MULTILINE)
    assert re.search(r"^\s*ssl_client_certificate \S+;", mtls, re.MULTILINE)
    for header, variable in (
        (proxy.verified_header, "$ssl_client_verify"),
        (proxy.subject_header, "$ssl_client_s_dn"),
        (proxy.fingerprint_header, "$ssl_client_fingerprint"),
    ):
        assert f"proxy_set_header {header} {variable};" in mtls
        assert f'proxy_set_header {header} "";' in plain


def test_the_example_configuration_reads_and_the_shipped_one_trusts_nobody(tmp_path: Path) -> None:
    shutil.copy(ROOT / "config" / "xroad.example.toml", tmp_path / "xroad.toml")
    example = load_xroad_inbound(tmp_path)
    assert example.enabled and example.provider.service_url
    assert not (ROOT / "config" / "xroad.toml").exists()  # deny by default: nothing ships enabled
    assert not load_xroad_inbound(ROOT / "config").enabled
