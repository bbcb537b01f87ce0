"""No single request can stall an api process: XML counted against ``[limits]`` before the XSD sees it,
validation of large bodies off the event loop under a time budget, violation lists capped with the rest
counted, grants checked before a body is read, and numbers the JSON parser refuses answered 400."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient
from lxml import etree

from gateway.soap import COURTS_NS, xml_safety
from gateway.web.app import create_app
from tests.conftest import World, fresh_judgment, make_world
from tests.test_push_judgment import counts
from tests.test_soap_endpoint import fault, fresh_request, headers

C = f"{{{COURTS_NS}}}"


async def _soap_client(world: World, aiohttp_client: Callable[..., Any]) -> TestClient[Any, Any]:
    client: TestClient[Any, Any] = await aiohttp_client(create_app(world.settings))
    return client


@pytest.fixture
async def soap(world: World, aiohttp_client: Callable[..., Any]) -> TestClient[Any, Any]:
    return await _soap_client(world, aiohttp_client)


def _summary(payload: etree._Element) -> etree._Element:
    element = payload.find(f"{C}Body/{C}Judgment/{C}Summary")
    assert element is not None
    return element


def _gateway_fault(element: etree._Element) -> dict[str, Any]:
    info = element.find(f"detail/{C}GatewayFault")
    assert info is not None
    return {
        "type": info.findtext(C + "Type"),
        "violations": [v.get("path") for v in info.iter(C + "Violation")],
        "omitted": info.findtext(C + "ErrorsOmitted"),
        "faultstring": element.findtext("faultstring") or "",
    }


# -- XML limits, before the XSD --------------------------------------------------------------------------


async def test_many_attributes_are_refused_by_the_limit_before_the_xsd(
    soap: TestClient[Any, Any], world: World
) -> None:
    # 1,500 attributes kept every request of the process waiting 8 s while the XSD walked them.
    body = fresh_request(lambda p: _summary(p).attrib.update({f"a{i}": "x" for i in range(1_500)}))
    element = await fault(await soap.post("/soap/courts", data=body, headers=headers(world)), 413)
    detail = _gateway_fault(element)
    assert detail["type"].endswith("/too-complex")
    assert "xml_max_attributes" in detail["faultstring"]
    assert (await counts(world))["outbox"] == 0


async def test_a_deep_body_is_refused_by_the_depth_limit(soap: TestClient[Any, Any], world: World) -> None:
    def deepen(payload: etree._Element) -> None:
        node = _summary(payload)
        for _ in range(40):
            node = etree.SubElement(node, C + "Deeper")

    element = await fault(
        await soap.post("/soap/courts", data=fresh_request(deepen), headers=headers(world)), 413
    )
    assert "xml_max_depth" in _gateway_fault(element)["faultstring"]


async def test_a_wide_body_is_refused_by_the_element_limit(soap: TestClient[Any, Any], world: World) -> None:
    def widen(payload: etree._Element) -> None:
        summary = _summary(payload)
        for _ in range(25_000):
            etree.SubElement(summary, C + "W")

    element = await fault(
        await soap.post("/soap/courts", data=fresh_request(widen), headers=headers(world)), 413
    )
    assert "xml_max_elements" in _gateway_fault(element)["faultstring"]


@pytest.mark.parametrize(
    ("xml", "limit"),
    [
        (b"<a>" + b"<b>" * 5 + b"</b>" * 5 + b"</a>", "xml_max_depth"),
        (b"<a>" + b"<b/>" * 10 + b"</a>", "xml_max_elements"),
        (b'<a x="1" y="2"><b z="3" w="4"/></a>', "xml_max_attributes"),
    ],
)
def test_parse_bounded_names_the_limit_passed(xml: bytes, limit: str) -> None:
    with pytest.raises(xml_safety.XmlTooComplex) as caught:
        xml_safety.parse_bounded(xml, max_elements=5, max_attributes=3, max_depth=4)
    assert caught.value.limit == limit


def test_parse_bounded_takes_a_document_within_the_limits() -> None:
    xml = b'<a x="1"><b><c/></b></a>'
    root = xml_safety.parse_bounded(xml, max_elements=3, max_attributes=1, max_depth=3)
    assert root.tag == "a"


# -- capped violation lists --------------------------------------------------------------------------------


async def test_a_json_body_with_very_many_bad_items_gets_a_capped_list_and_the_count(
    api: TestClient[Any, Any], world: World
) -> None:
    resp = await api.post("/v1/judgments", json=_bad_items(400), headers=world.court_headers())
    assert resp.status == 422
    problem = await resp.json()
    # Two violations per item (the amount, the missing description), one per path and rule.
    assert len(problem["errors"]) == 100
    assert problem["errors_omitted"] == 400 * 2 - 100
    assert "700 more" in problem["detail"]
    assert (await counts(world))["outbox"] == 0


async def test_counting_the_violations_not_listed_stops_too(api: TestClient[Any, Any], world: World) -> None:
    # 150,000 bad items once took 25 s and answered 600,001 violations: past ten times the listed ones,
    # counting stops and the detail says "at least".
    resp = await api.post("/v1/judgments", json=_bad_items(1_000), headers=world.court_headers())
    assert resp.status == 422
    problem = await resp.json()
    assert len(problem["errors"]) == 100
    assert problem["errors_omitted"] == 1_000
    assert "at least 1000 more" in problem["detail"]


def _bad_items(count: int) -> dict[str, Any]:
    doc = fresh_judgment()
    item = {"kind": "pay_money", "amount_vnd": -1, "obligor": "P2", "beneficiary": "P1"}  # no description
    doc["body"]["items"] = [dict(item) for _ in range(count)]
    return doc


async def test_a_soap_body_with_very_many_bad_items_gets_a_capped_fault_and_the_count(
    soap: TestClient[Any, Any], world: World
) -> None:
    def many_bad_items(payload: etree._Element) -> None:
        items = payload.find(f"{C}Body/{C}Items")
        assert items is not None
        template = items[0]
        for _ in range(2_000):
            item = etree.fromstring(etree.tostring(template))
            amount = item.find(C + "AmountVnd")
            assert amount is not None
            amount.text = "lots"
            items.append(item)

    resp = await soap.post("/soap/courts", data=fresh_request(many_bad_items), headers=headers(world))
    detail = _gateway_fault(await fault(resp, 422))
    assert len(detail["violations"]) == 100
    assert detail["omitted"] == "1000"  # of 1,900 more: counting stops at ten times the listed ones
    assert detail["faultstring"].startswith("at least 1100 XSD violation(s)")


# -- off the event loop, under a budget --------------------------------------------------------------------


async def test_healthz_answers_while_a_slow_validation_runs_and_the_budget_ends_it(
    tmp_path: Path, fresh_database_url: str, aiohttp_client: Callable[..., Any]
) -> None:
    # Limits raised so that a body the XSD needs seconds for gets to it: the slow-but-legal case.
    world = make_world(
        tmp_path,
        fresh_database_url,
        limits={"xml_max_attributes": 5_000, "inline_validation_bytes": 0, "validation_budget_seconds": 3},
    )
    client = await _soap_client(world, aiohttp_client)
    body = fresh_request(lambda p: _summary(p).attrib.update({f"a{i}": "x" for i in range(1_500)}))
    push = asyncio.create_task(client.post("/soap/courts", data=body, headers=headers(world)))
    await asyncio.sleep(0.5)
    assert not push.done()
    started = time.monotonic()
    health = await client.get("/healthz")
    waited = time.monotonic() - started
    assert health.status == 200
    assert waited < 1.0, f"/healthz waited {waited:.2f} s behind a validation"  # the one timing assertion
    element = await fault(await push, 413)
    assert "validation_budget_seconds" in _gateway_fault(element)["faultstring"]
    assert (await counts(world))["outbox"] == 0


# -- grants before the body --------------------------------------------------------------------------------


async def test_soap_client_without_grants_is_refused_before_its_xml_is_parsed(
    soap: TestClient[Any, Any], world: World
) -> None:
    # Malformed XML would be a 400: a 403 proves the parser was never reached.
    resp = await soap.post("/soap/courts", data=b"<not-xml", headers=headers(world, **world.case_headers()))
    detail = _gateway_fault(await fault(resp, 403))
    assert detail["type"].endswith("/forbidden")


@pytest.mark.parametrize("path", ["/v1/judgments", "/v1/documents"])
async def test_rest_client_without_grants_is_refused_before_its_json_is_parsed(
    api: TestClient[Any, Any], world: World, path: str
) -> None:
    headers_ = {**world.case_headers(), "Content-Type": "application/json"}
    resp = await api.post(path, data=b"{not json", headers=headers_)
    assert resp.status == 403, await resp.text()


# -- numbers the parser refuses ----------------------------------------------------------------------------


@pytest.mark.parametrize("number", ["9" * 5_000, "1e999"])
async def test_a_number_the_json_parser_refuses_is_a_400(
    api: TestClient[Any, Any], world: World, number: str
) -> None:
    doc = fresh_judgment()
    doc["body"]["items"][0]["amount_vnd"] = 0
    text = json.dumps(doc).replace('"amount_vnd": 0', f'"amount_vnd": {number}', 1)
    resp = await api.post(
        "/v1/judgments", data=text, headers={**world.court_headers(), "Content-Type": "application/json"}
    )
    assert resp.status == 400, await resp.text()
    problem = await resp.json()
    assert problem["type"].endswith("/malformed-request")
    assert "number" in problem["detail"]
