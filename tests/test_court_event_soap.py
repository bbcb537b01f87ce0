"""Court events over the courts' SOAP endpoint (operation ``PushCourtEvent``): the same rules, receipt and
timeline evidence as a ``court.event`` pushed to ``POST /v1/documents``."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Any

import pytest
from aiohttp.test_utils import TestClient
from lxml import etree

from gateway.soap import COURTS_NS, body_payload
from gateway.soap.courts_mapping import EVENT_REQUEST, EVENT_RESPONSE, xml_to_message, xsd_violations
from gateway.soap.xml_safety import parse_untrusted
from gateway.web.app import create_app
from tests.conftest import ROOT, World, fresh_judgment
from tests.support import zeep_typed
from tests.test_soap_endpoint import answer, fault, violation_paths

C = f"{{{COURTS_NS}}}"
ACTION = f'"{COURTS_NS}#PushCourtEvent"'


@pytest.fixture
async def soap(world: World, aiohttp_client: Callable[..., Any]) -> TestClient[Any, Any]:
    client: TestClient[Any, Any] = await aiohttp_client(create_app(world.settings))
    return client


def event_xml(
    judgment: dict[str, Any], *, message_id: str | None = None, number: str = "7/2026/QĐ-TĐCTHA"
) -> bytes:
    ruling = judgment["body"]["judgment"]
    return f"""<?xml version="1.0" encoding="UTF-8"?>
<soapenv:Envelope xmlns:soapenv="http://schemas.xmlsoap.org/soap/envelope/" xmlns:c="{COURTS_NS}">
  <soapenv:Body>
    <c:PushCourtEventRequest>
      <c:MessageId>{message_id or uuid.uuid4()}</c:MessageId>
      <c:CreatedAt>2026-03-05T08:30:00+07:00</c:CreatedAt>
      <c:Sender>TAND-HN</c:Sender>
      <c:Recipient>THADS-HN</c:Recipient>
      <c:Body>
        <c:Event>enforcement_suspended</c:Event>
        <c:Judgment>
          <c:CourtCode>TAND-HN</c:CourtCode>
          <c:Number>{ruling["number"]}</c:Number>
          <c:Date> {ruling["date"]} </c:Date>
        </c:Judgment>
        <c:Decision><c:Number>{number}</c:Number><c:Date>2026-03-05</c:Date></c:Decision>
        <c:EffectiveFrom>2026-03-05</c:EffectiveFrom>
        <c:Reason>Tạm đình chỉ thi hành án để xem xét theo thủ tục giám đốc thẩm</c:Reason>
      </c:Body>
    </c:PushCourtEventRequest>
  </soapenv:Body>
</soapenv:Envelope>""".encode()


def headers(world: World, action: str = ACTION) -> dict[str, str]:
    return {**world.court_headers(), "Content-Type": "text/xml; charset=utf-8", "SOAPAction": action}


async def pushed_judgment(soap: TestClient[Any, Any], world: World) -> dict[str, Any]:
    ruling = fresh_judgment()
    resp = await soap.post("/v1/judgments", json=ruling, headers=world.court_headers())
    assert resp.status == 202, await resp.text()
    return ruling


async def test_an_event_pushed_over_soap_is_the_court_event_rest_would_accept(
    soap: TestClient[Any, Any], world: World
) -> None:
    ruling = await pushed_judgment(soap, world)
    body = event_xml(ruling)
    message = xml_to_message(body_payload(parse_untrusted(body)))
    assert message["message_type"] == "court.event"
    assert message["body"]["judgment"]["date"] == ruling["body"]["judgment"]["date"]  # xs:date trimmed

    first = await answer(await soap.post("/soap/courts", data=body, headers=headers(world)))
    assert first.tag == EVENT_RESPONSE and first.findtext(C + "Duplicate") == "false"
    assert xsd_violations(first) == []
    again = await answer(await soap.post("/soap/courts", data=body, headers=headers(world)))
    assert again.findtext(C + "Duplicate") == "true"
    assert again.findtext(C + "ReceiptId") == first.findtext(C + "ReceiptId")
    by_rest = await soap.post("/v1/documents", json=message, headers=world.court_headers())
    assert by_rest.status == 200  # the same event by REST: the original receipt

    view = await soap.get(f"/v1/messages/{message['message_id']}", headers=world.case_headers())
    assert (await view.json())["priority"] == "urgent"
    judgment_view = await (
        await soap.get(f"/v1/messages/{ruling['message_id']}", headers=world.case_headers())
    ).json()
    noted = [e for e in judgment_view["timeline"] if e["event"] == "court_event"]
    assert [e["detail"]["by"] for e in noted] == [message["message_id"]]


async def test_an_event_on_an_unknown_judgment_is_a_client_fault_naming_the_field(
    soap: TestClient[Any, Any], world: World
) -> None:
    ruling = fresh_judgment()  # never pushed
    element = await fault(
        await soap.post("/soap/courts", data=event_xml(ruling), headers=headers(world)), 422
    )
    assert violation_paths(element) == ["$.body.judgment"]


async def test_the_soap_action_must_name_the_operation_of_the_body(
    soap: TestClient[Any, Any], world: World
) -> None:
    ruling = await pushed_judgment(soap, world)
    wrong = headers(world, f'"{COURTS_NS}#PushJudgment"')
    await fault(await soap.post("/soap/courts", data=event_xml(ruling), headers=wrong), 400)


def test_the_wsdl_declares_push_court_event_for_zeep_clients() -> None:
    client = zeep_typed.client(str(ROOT / "gateway" / "soap" / "courts.wsdl"))
    binding = next(iter(client.wsdl.bindings.values()))
    operation = zeep_typed.operation(binding, "PushCourtEvent")
    assert operation.soapaction == f"{COURTS_NS}#PushCourtEvent"
    assert operation.input.body.qname == etree.QName(EVENT_REQUEST)
    assert operation.output.body.qname == etree.QName(EVENT_RESPONSE)


def test_a_court_event_request_is_valid_against_the_served_xsd() -> None:
    sample = event_xml(fresh_judgment())
    assert xsd_violations(body_payload(parse_untrusted(sample))) == []
