"""The courts' SOAP endpoint over HTTP: WSDL, receipts, duplicates across transports, and faults."""

from __future__ import annotations

import hashlib
import io
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient
from lxml import etree

from gateway.security.signing import canonical_json
from gateway.soap import COURTS_NS, SOAP_ENV, body_payload
from gateway.soap.courts_mapping import xml_to_message
from gateway.soap.xml_safety import parse_untrusted
from gateway.web import soap_courts
from gateway.web.app import create_app
from tests.conftest import World
from tests.support.elements import child, child_text
from tests.test_push_judgment import counts

SAMPLE = Path(__file__).resolve().parent / "data" / "soap" / "push-judgment.xml"
C = f"{{{COURTS_NS}}}"
ACTION = f'"{COURTS_NS}#PushJudgment"'


@pytest.fixture
async def soap(world: World, aiohttp_client: Callable[..., Any]) -> TestClient[Any, Any]:
    app = create_app(world.settings)
    assert soap_courts.ROUTE in app.router.named_resources()
    client: TestClient[Any, Any] = await aiohttp_client(app)
    return client


def fresh_request(edit: Callable[[etree._Element], None] | None = None) -> bytes:
    """The sample request with a new message_id and judgment number, so tests never collide."""
    root = etree.fromstring(SAMPLE.read_bytes())
    payload = body_payload(root)
    child(payload, C + "MessageId").text = str(uuid.uuid4())
    child(payload, f"{C}Body/{C}Judgment/{C}Number").text = f"{uuid.uuid4().int % 900000 + 1}/2026/DS-PT"
    if edit is not None:
        edit(payload)
    return bytes(etree.tostring(root, xml_declaration=True, encoding="UTF-8"))


def headers(world: World, **extra: str) -> dict[str, str]:
    return {**world.court_headers(), "Content-Type": "text/xml; charset=utf-8", "SOAPAction": ACTION, **extra}


async def answer(resp: Any) -> etree._Element:
    assert resp.content_type == "text/xml", await resp.text()
    return body_payload(parse_untrusted(await resp.read()))


async def fault(resp: Any, status: int) -> etree._Element:
    assert resp.status == status, await resp.text()
    element = await answer(resp)
    assert element.tag == f"{{{SOAP_ENV}}}Fault"
    return element


def violation_paths(element: etree._Element) -> list[str]:
    return [v.get("path", "") for v in element.iter(C + "Violation")]


async def test_wsdl_points_at_the_public_url_and_its_xsd(soap: TestClient[Any, Any], world: World) -> None:
    for query in ("wsdl", "WSDL"):
        resp = await soap.get(f"/soap/courts?{query}")
        assert resp.status == 200 and resp.content_type == "text/xml"
        wsdl = parse_untrusted(await resp.read())
        (address,) = wsdl.iter("{http://schemas.xmlsoap.org/wsdl/soap/}address")
        assert address.get("location") == world.settings.api.public_url.rstrip("/") + "/soap/courts"
        (schema_import,) = wsdl.iter("{http://www.w3.org/2001/XMLSchema}import")
        assert schema_import.get("schemaLocation") == "?xsd=courts.xsd"
    xsd = await soap.get("/soap/courts?xsd=courts.xsd")
    assert xsd.status == 200
    assert parse_untrusted(await xsd.read()).get("targetNamespace") == COURTS_NS
    bare = await soap.get("/soap/courts")
    assert bare.status == 400 and bare.content_type == "application/problem+json"


async def test_push_answers_a_receipt_then_the_same_one_as_duplicate(
    soap: TestClient[Any, Any], world: World
) -> None:
    body = fresh_request()
    first = await soap.post("/soap/courts", data=body, headers=headers(world))
    assert first.status == 200, await first.text()
    receipt = await answer(first)
    assert receipt.tag == f"{C}PushJudgmentResponse"
    assert receipt.findtext(C + "Duplicate") == "false"
    expected = hashlib.sha256(canonical_json(xml_to_message(body_payload(parse_untrusted(body))))).hexdigest()
    assert receipt.findtext(C + "Sha256") == expected

    again = await answer(await soap.post("/soap/courts", data=body, headers=headers(world)))
    assert again.findtext(C + "Duplicate") == "true"
    assert again.findtext(C + "ReceiptId") == receipt.findtext(C + "ReceiptId")
    assert (await counts(world))["outbox"] == 1


async def test_judgment_pushed_by_rest_is_a_duplicate_by_soap(
    soap: TestClient[Any, Any], world: World
) -> None:
    body = fresh_request()
    doc = xml_to_message(body_payload(parse_untrusted(body)))
    rest = await soap.post("/v1/judgments", json=doc, headers=world.court_headers())
    assert rest.status == 202, await rest.text()
    resp = await answer(await soap.post("/soap/courts", data=body, headers=headers(world)))
    assert resp.findtext(C + "Duplicate") == "true"
    assert resp.findtext(C + "ReceiptId") == (await rest.json())["receipt_id"]


async def test_schema_violations_become_a_client_fault_with_json_paths(
    soap: TestClient[Any, Any], world: World
) -> None:
    def break_rules(payload: etree._Element) -> None:
        child(payload, f"{C}Body/{C}Judgment/{C}Type").text = "judgement"
        child(payload, C + "Recipient").text = "THADS-XX"

    resp = await soap.post("/soap/courts", data=fresh_request(break_rules), headers=headers(world))
    element = await fault(resp, 422)
    assert element.findtext("faultcode") == "soap:Client"
    assert element.findtext(f"detail/{C}GatewayFault/{C}HttpStatus") == "422"
    assert "$.body.judgment.type" in violation_paths(element)
    c = await counts(world)
    assert c["messages"] == 0 and c["audit_log"] == 1  # the rejection is audited like a REST one


async def test_xsd_violations_are_all_reported(soap: TestClient[Any, Any], world: World) -> None:
    def break_types(payload: etree._Element) -> None:
        child(payload, C + "CreatedAt").text = "yesterday"
        child(payload, f"{C}Body/{C}Judgment/{C}Date").text = "10/02/2026"

    element = await fault(
        await soap.post("/soap/courts", data=fresh_request(break_types), headers=headers(world)), 422
    )
    assert violation_paths(element) == [
        "/PushJudgmentRequest/Body/Judgment/Date",
        "/PushJudgmentRequest/CreatedAt",
    ]


@pytest.mark.parametrize(
    ("change", "status"),
    [
        ({"Authorization": ""}, 401),
        ({"Content-Type": "application/soap+xml; charset=utf-8"}, 415),
        ({"SOAPAction": '"urn:other#Op"'}, 400),
    ],
)
async def test_transport_errors_are_faults_with_the_rest_status(
    soap: TestClient[Any, Any], world: World, change: dict[str, str], status: int
) -> None:
    resp = await soap.post("/soap/courts", data=fresh_request(), headers=headers(world, **change))
    element = await fault(resp, status)
    assert element.findtext(f"detail/{C}GatewayFault/{C}HttpStatus") == str(status)
    if status == 401:
        assert "Bearer" in resp.headers["WWW-Authenticate"]


async def test_missing_soap_action_and_empty_soap_action(soap: TestClient[Any, Any], world: World) -> None:
    no_action = {k: v for k, v in headers(world).items() if k != "SOAPAction"}
    await fault(await soap.post("/soap/courts", data=fresh_request(), headers=no_action), 400)
    # An empty SOAPAction leaves the choice to the Body element (SOAP 1.1 section 6.1.1).
    resp = await soap.post("/soap/courts", data=fresh_request(), headers=headers(world, SOAPAction='""'))
    assert resp.status == 200, await resp.text()


async def test_doctype_is_refused_before_anything_else(soap: TestClient[Any, Any], world: World) -> None:
    body = fresh_request().replace(b"?>", b'?>\n<!DOCTYPE x [<!ENTITY e SYSTEM "file:///etc/passwd">]>', 1)
    element = await fault(await soap.post("/soap/courts", data=body, headers=headers(world)), 400)
    assert "DOCTYPE" in child_text(element, "faultstring")


async def test_unknown_body_element_and_soap_12_are_refused(soap: TestClient[Any, Any], world: World) -> None:
    other = f'<s:Envelope xmlns:s="{SOAP_ENV}"><s:Body><c:Other xmlns:c="{COURTS_NS}"/></s:Body></s:Envelope>'
    await fault(await soap.post("/soap/courts", data=other.encode(), headers=headers(world)), 400)
    soap12 = fresh_request().replace(SOAP_ENV.encode(), b"http://www.w3.org/2003/05/soap-envelope")
    element = await fault(await soap.post("/soap/courts", data=soap12, headers=headers(world)), 400)
    assert element.findtext("faultcode") == "soap:VersionMismatch"


async def test_forbidden_conflict_and_too_large(soap: TestClient[Any, Any], world: World) -> None:
    body = fresh_request()
    await fault(
        await soap.post("/soap/courts", data=body, headers=headers(world, **world.case_headers())), 403
    )
    assert (await soap.post("/soap/courts", data=body, headers=headers(world))).status == 200
    changed = body.replace(b"Tranh ch", b"Tranh-ch", 1)
    element = await fault(await soap.post("/soap/courts", data=changed, headers=headers(world)), 409)
    assert child_text(element, f"detail/{C}GatewayFault/{C}Type").endswith("/conflict")
    limit = world.settings.api.max_body_bytes
    huge = io.BytesIO(b"<a>" + b" " * (limit + 10) + b"</a>")
    await fault(await soap.post("/soap/courts", data=huge, headers=headers(world)), 413)
