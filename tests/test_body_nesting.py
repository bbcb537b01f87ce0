"""Deeply nested JSON is refused with 400 before it can exhaust the parser's or the validator's
recursion, and the api keeps serving afterwards."""

from __future__ import annotations

import json
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from gateway.web.body import MAX_DEPTH, deeper_than
from tests.conftest import World, fresh_judgment

PROBLEM_JSON = "application/problem+json"


async def push_raw(api: TestClient[Any, Any], world: World, body: str) -> Any:
    return await api.post(
        "/v1/judgments",
        data=body.encode("utf-8"),
        headers={**world.court_headers(), "Content-Type": "application/json"},
    )


async def assert_too_deep(resp: Any) -> None:
    assert resp.status == 400, await resp.text()
    assert resp.content_type == PROBLEM_JSON
    problem = await resp.json()
    assert problem["status"] == 400
    assert "nested too deeply" in problem["detail"]
    assert str(MAX_DEPTH) in problem["detail"]


@pytest.mark.parametrize(
    "body",
    [
        pytest.param("[" * 100_000 + "]" * 100_000, id="arrays"),
        pytest.param('{"a":' * 100_000 + "1" + "}" * 100_000, id="objects"),
    ],
)
async def test_body_nested_100000_levels_is_400_and_the_api_keeps_serving(
    api: TestClient[Any, Any], world: World, body: str
) -> None:
    await assert_too_deep(await push_raw(api, world, body))

    resp = await api.post("/v1/judgments", json=fresh_judgment(), headers=world.court_headers())
    assert resp.status == 202, await resp.text()


async def test_body_that_parses_but_nests_500_levels_is_400_before_validation(
    api: TestClient[Any, Any], world: World
) -> None:
    # Deep enough to parse with the stdlib, and deep enough to make a recursive validator struggle.
    doc = fresh_judgment()
    doc["body"]["judgment"]["annex"] = "DEEP"
    body = json.dumps(doc).replace('"DEEP"', "[" * 500 + "]" * 500)
    assert json.loads(body)  # the parser alone copes with it
    await assert_too_deep(await push_raw(api, world, body))

    resp = await api.post("/v1/judgments", json=fresh_judgment(), headers=world.court_headers())
    assert resp.status == 202, await resp.text()


def test_depth_limit_counts_arrays_and_objects() -> None:
    assert not deeper_than(1, 0)
    assert deeper_than([], 0)
    assert not deeper_than([], 1)
    at_limit: object = {}
    for _ in range(MAX_DEPTH - 1):
        at_limit = [at_limit]
    assert not deeper_than(at_limit, MAX_DEPTH)
    assert deeper_than({"wide": [1, 2, {"x": [at_limit]}]}, MAX_DEPTH)
    assert not deeper_than(fresh_judgment(), MAX_DEPTH)
