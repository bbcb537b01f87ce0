"""Where a violation points, the same over REST and SOAP: a missing member at its own path
(``$.body.items[0].amount_vnd``, not its parent's), and one violation per path and rule (a negative amount
breaks "minimum 0" and "minimum 1": it is listed once, with the minimum that applies)."""

from __future__ import annotations

from typing import Any

from aiohttp.test_utils import TestClient
from lxml import etree

from gateway.soap import COURTS_NS
from tests.conftest import World, fresh_judgment
from tests.test_bounded_input import soap  # noqa: F401  # the fixture
from tests.test_soap_endpoint import fault, fresh_request, headers

C = f"{{{COURTS_NS}}}"
AMOUNT = "$.body.items[0].amount_vnd"


def _first_amount(payload: etree._Element) -> etree._Element:
    amount = payload.find(f"{C}Body/{C}Items/{C}Item/{C}AmountVnd")
    assert amount is not None
    return amount


def _violations(element: etree._Element) -> list[tuple[str, str]]:
    return [(v.get("path", ""), v.text or "") for v in element.iter(C + "Violation")]


async def _rest_errors(api: TestClient[Any, Any], world: World, doc: dict[str, Any]) -> list[dict[str, str]]:
    resp = await api.post("/v1/judgments", json=doc, headers=world.court_headers())
    assert resp.status == 422, await resp.text()
    errors: list[dict[str, str]] = (await resp.json())["errors"]
    return errors


async def test_rest_missing_member_is_located_at_its_own_path(
    api: TestClient[Any, Any], world: World
) -> None:
    doc = fresh_judgment()
    del doc["body"]["items"][0]["amount_vnd"]
    errors = await _rest_errors(api, world, doc)
    assert [(e["path"], e["rule"]) for e in errors] == [(AMOUNT, "required")]


async def test_soap_missing_member_is_located_at_its_own_path(
    soap: TestClient[Any, Any],  # noqa: F811
    world: World,
) -> None:
    def drop_amount(payload: etree._Element) -> None:
        amount = _first_amount(payload)
        parent = amount.getparent()
        assert parent is not None
        parent.remove(amount)

    resp = await soap.post("/soap/courts", data=fresh_request(drop_amount), headers=headers(world))
    assert [path for path, _ in _violations(await fault(resp, 422))] == [AMOUNT]


async def test_rest_negative_amount_is_one_violation(api: TestClient[Any, Any], world: World) -> None:
    doc = fresh_judgment()
    doc["body"]["items"][0]["amount_vnd"] = -5
    errors = await _rest_errors(api, world, doc)
    assert [(e["path"], e["rule"]) for e in errors] == [(AMOUNT, "minimum")]
    assert "minimum of 1" in errors[0]["message"]


async def test_soap_negative_amount_is_one_violation(
    soap: TestClient[Any, Any],  # noqa: F811
    world: World,
) -> None:
    def negative(payload: etree._Element) -> None:
        _first_amount(payload).text = "-5"

    resp = await soap.post("/soap/courts", data=fresh_request(negative), headers=headers(world))
    violations = _violations(await fault(resp, 422))
    assert [path for path, _ in violations] == [AMOUNT]
    assert "minimum of 1" in violations[0][1]
