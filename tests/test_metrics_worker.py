"""The worker's metrics port shows the relay, delivery and partner series moving as judgments are pushed
and lookups made, and the gauges it polls: queue depths and consumers, parking queues, inquiries by
status, breaker states, the signing key's rotation date."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp.test_utils import TestClient, TestServer
from prometheus_client.parser import text_string_to_metric_families

from gateway.amqp.names import Names
from gateway.web.app import create_app
from gateway.worker.main import Worker
from tests.conftest import fresh_judgment
from tests.support.lookup_world import LookupWorld, delete_lookup_topology, make_lookup_world
from tests.test_asset_inquiry_flow import inquiry

pytestmark = pytest.mark.rabbitmq

Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


@pytest.fixture
async def running(
    tmp_path: Path, fresh_database_url: str
) -> AsyncIterator[tuple[LookupWorld, TestClient[Any, Any], Worker]]:
    polls = {"metrics_port": 0, "queue_poll_seconds": 0.2, "database_poll_seconds": 0.2}
    lw = await make_lookup_world(tmp_path, fresh_database_url, settings={"worker": polls})
    client: TestClient[Any, Any] = TestClient(TestServer(create_app(lw.settings), port=lw.api_port))
    await client.start_server()
    stop = asyncio.Event()
    worker = Worker(lw.settings)
    task = asyncio.create_task(worker.run(stop))
    try:
        for _ in range(300):
            if worker.metrics_port is not None and worker._consuming:
                break
            await asyncio.sleep(0.05)
        assert worker.metrics_port is not None
        yield lw, client, worker
    finally:
        stop.set()
        await asyncio.wait_for(task, 30)
        await client.close()
        await lw.partners.close()
        await delete_lookup_topology(lw)


async def scrape(port: int) -> Samples:
    url = f"http://127.0.0.1:{port}/metrics"
    async with aiohttp.ClientSession() as http, http.get(url) as resp:
        assert resp.status == 200
        text = await resp.text()
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


def total(samples: Samples, name: str, **labels: str) -> float:
    """Sum over every series of ``name`` whose labels include ``labels``."""
    return sum(v for (n, ls), v in samples.items() if n == name and labels.items() <= dict(ls).items())


async def until(port: int, check: Any, timeout: float = 20) -> Samples:
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        samples = await scrape(port)
        if check(samples):
            return samples
        assert asyncio.get_running_loop().time() < deadline, "the series never moved"
        await asyncio.sleep(0.1)


async def test_the_workers_series_move_with_pushes_and_lookups(
    running: tuple[LookupWorld, TestClient[Any, Any], Worker],
) -> None:
    lw, api, worker = running
    port = worker.metrics_port
    assert port is not None
    names = Names(lw.settings.broker_namespace)
    case_system = lw.world.case_system.id
    before = await scrape(port)

    resp = await api.post("/v1/judgments", json=fresh_judgment(), headers=lw.world.court_headers())
    assert resp.status == 202, await resp.text()
    headers = {**lw.world.case_headers(), "Prefer": "wait=20"}
    resp = await api.post("/v1/asset-inquiries", json=inquiry(), headers=headers)
    assert resp.status == 200, await resp.text()

    deliver = names.deliver(case_system)

    def moved(s: Samples) -> bool:
        # The queue gauges are polled on their own clock: waited for too, not assumed polled by now.
        return (
            value(s, "gateway_deliveries_total", recipient=case_system, channel="amqp")
            > value(before, "gateway_deliveries_total", recipient=case_system, channel="amqp")
            and value(s, "gateway_inquiries", status="complete") >= 1
            and ("gateway_queue_messages", (("queue", deliver), ("state", "ready"))) in s
        )

    after = await until(port, moved)
    assert value(after, "gateway_outbox_published_total") > value(before, "gateway_outbox_published_total")
    for partner in ("LAND-REG", "BANK-VCB", "TAX", "POLICE-VEH", "POP-REG"):
        assert total(after, "gateway_partner_calls_total", partner=partner) > total(
            before, "gateway_partner_calls_total", partner=partner
        ), partner
        assert value(after, "gateway_partner_breaker_state", partner=partner) == 0
        assert ("gateway_partner_in_flight", (("partner", partner),)) in after
    assert total(after, "gateway_partner_call_seconds_count", partner="BANK-VCB") >= 1

    # Polled gauges: every queue the gateway consumes, its consumers and its parking queue.
    assert ("gateway_queue_messages", (("queue", deliver), ("state", "ready"))) in after
    assert value(after, "gateway_queue_consumers", queue=deliver) >= 1
    assert value(after, "gateway_queue_consumers", queue=names.deliver("TAX")) >= 1
    assert value(after, "gateway_parking_messages", queue=deliver) == 0
    assert not any(n == "gateway_parking_messages" and "parking" in dict(ls)["queue"] for n, ls in after)
    for status in ("pending", "partial", "expired"):
        assert ("gateway_inquiries", (("status", status),)) in after
    assert ("gateway_outbox_backlog", ()) in after
    assert ("gateway_outbox_oldest_age_seconds", ()) in after
    key = lw.settings.path(lw.settings.signing.private_key_file)
    assert value(after, "gateway_signing_key_expiry_timestamp_seconds") == (
        key.stat().st_mtime + lw.settings.signing.rotate_after_days * 86400
    )
