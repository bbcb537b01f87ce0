"""The api serves its series through prometheus-client's own handler: HTTP requests by route name (never
the raw path), method and status with their latency, and when the receipt-signing key is due for
rotation."""

from __future__ import annotations

import uuid
from typing import Any

from aiohttp.test_utils import TestClient
from prometheus_client.parser import text_string_to_metric_families

from tests.conftest import World

DAY = 86400


async def scrape(api: TestClient[Any, Any]) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    resp = await api.get("/metrics")
    assert resp.status == 200
    assert resp.content_type == "text/plain"
    samples = {}
    for family in text_string_to_metric_families(await resp.text()):
        for s in family.samples:
            samples[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return samples


def value(samples: dict[Any, float], name: str, **labels: str) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


async def test_requests_are_counted_and_timed_by_route_name(api: TestClient[Any, Any]) -> None:
    before = await scrape(api)
    assert (await api.get("/healthz")).status == 200
    message_id = str(uuid.uuid4())
    assert (await api.get(f"/v1/messages/{message_id}")).status == 401
    assert (await api.get(f"/no/such/{message_id}")).status == 404
    after = await scrape(api)

    def delta(name: str, **labels: str) -> float:
        return value(after, name, **labels) - value(before, name, **labels)

    requests = "gateway_http_requests_total"
    assert delta(requests, route="healthz", method="GET", status="200") == 1
    assert delta(requests, route="unmatched", method="GET", status="404") == 1
    assert (
        sum(
            v - value(before, n, **dict(labels))
            for (n, labels), v in after.items()
            if n == requests and dict(labels)["status"] == "401"
        )
        == 1
    )
    assert not any(message_id in str(labels) for _, labels in after)  # ids never become labels
    assert delta("gateway_http_request_duration_seconds_count", route="healthz", method="GET") == 1
    # The scrape itself is a request too, by its route's name.
    assert delta(requests, route="metrics", method="GET", status="200") >= 1


async def test_the_signing_keys_rotation_date(api: TestClient[Any, Any], world: World) -> None:
    await api.get("/v1/keys")  # the key exists once the app started
    key = world.settings.path(world.settings.signing.private_key_file)
    samples = await scrape(api)
    expiry = value(samples, "gateway_signing_key_expiry_timestamp_seconds")
    assert expiry == key.stat().st_mtime + world.settings.signing.rotate_after_days * DAY
