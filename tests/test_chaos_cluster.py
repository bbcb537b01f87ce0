"""Promise: on a three-node RabbitMQ cluster, losing the node the gateway is connected to (SIGKILL) in the
middle of the load loses nothing: every inquiry completes with one answer per source, every order is executed
once by its bank and reported once to the case system. The api, the worker and the case system are
given the cluster's node list (broker_url with commas) and move to another node; the gateway's quorum
queues have a replica on every node and elect a new leader among the two left.

The cluster is started here from the installed rabbitmq-server (its own node names, ports, data and
cookie under a temporary directory) and removed at the end, whatever happens; the machine's broker is
not used. The broker's health readings are checked on it too: every node, then the lost one named."""

from __future__ import annotations

import asyncio
import collections
import json
import os
import subprocess
import sys
import tempfile
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aio_pika.abc import AbstractRobustConnection
from aiohttp.test_utils import TestClient
from sqlalchemy import func, select

from gateway.amqp.broker import connect
from gateway.ops import broker_health
from gateway.settings import Settings
from gateway.storage.database import Database
from gateway.storage.tables import audit_log, inquiries, inquiry_sources
from gateway.web.app import create_app
from tests.conftest import ROOT, World
from tests.support import rabbit_cluster
from tests.support.gateway_procs import GatewayProcesses
from tests.support.load import post_until_taken
from tests.support.lookup_world import PARTNER_CODES, LookupWorld, lookup_processes
from tests.test_asset_inquiry_flow import inquiry
from tests.test_chaos_lookups import IDS, wait_final
from tests.test_chaos_orders import BANKS, CaseSystem, CaseSystemClient, executions, read_books

pytestmark = [
    pytest.mark.chaos,
    pytest.mark.skipif(
        not rabbit_cluster.installed(),
        reason="rabbitmq-server is not installed (/usr/lib/rabbitmq/bin): no cluster can be started here",
    ),
]

ORDERS = 200
INQUIRIES = 40
STOP_AFTER = ORDERS // 4  # bank executions after which the worker's node is killed
SETTLE_SECONDS = 120


@pytest.fixture(scope="module")
def cluster() -> Iterator[rabbit_cluster.Cluster]:
    root = Path(tempfile.mkdtemp(prefix="gw-cluster-"))
    started = rabbit_cluster.Cluster(root, count=3, management=True)
    try:
        started.start()
        yield started
    finally:
        started.teardown()
    assert not root.exists()


def health_settings(node: rabbit_cluster.Node) -> Settings:
    return Settings(
        ops={"management_url": node.management_url},
        broker={"health_timeout_seconds": 5, "health_cache_seconds": 0},
    )


async def node_readings(node: rabbit_cluster.Node, running: int) -> broker_health.BrokerHealth:
    """The readings once ``running`` nodes report descriptors (the management agent needs a few seconds
    after a node starts, or a peer stops, to publish them)."""
    for _ in range(60):
        health = await broker_health.read(health_settings(node))
        up = [n for n in health.nodes if n.running and n.fd_total]
        if health.known and len(up) == running:
            return health
        await asyncio.sleep(1)
    raise AssertionError(f"the management API never reported {running} nodes: {health}")


class ClusterProcesses(GatewayProcesses):
    """The api and worker processes with the cluster's node list and its management API."""

    management_url: str = ""

    def env(self) -> dict[str, str]:
        return {**super().env(), "GATEWAY_OPS__MANAGEMENT_URL": self.management_url}


class ClusterCaseSystem(CaseSystem):
    """The case system consuming its queue through the gateway's own connect, node list and all."""

    def __init__(self, queue: str, urls: list[str]) -> None:
        super().__init__(queue)
        self.urls = urls

    async def connect(self) -> AbstractRobustConnection:
        return await connect(self.urls, "case-system-test")

    async def start(self, timeout: float = 60) -> None:
        await super().start(timeout)


@pytest.fixture
async def gateway(
    cluster: rabbit_cluster.Cluster, tmp_path: Path
) -> AsyncIterator[tuple[LookupWorld, ClusterProcesses]]:
    def on_the_cluster(lw: LookupWorld) -> ClusterProcesses:
        procs = ClusterProcesses(
            lw.world, tmp_path / "logs", port=lw.api_port, broker_url=",".join(cluster.urls)
        )
        procs.management_url = cluster.nodes[1].management_url
        return procs

    async with lookup_processes(tmp_path, on_the_cluster) as (lw, procs):
        assert isinstance(procs, ClusterProcesses)
        yield lw, procs


async def connections_on(cluster: rabbit_cluster.Cluster, node: rabbit_cluster.Node) -> list[str]:
    """What ``node`` itself holds of the cluster's client connections (their properties, which carry
    the connection name each process gives)."""
    out = await asyncio.to_thread(
        cluster.ctl, node, "list_connections", "pid", "client_properties", "--no-table-headers"
    )
    return [line for line in out.splitlines() if line.startswith(f"<{node.name}.")]


async def replicas(node: rabbit_cluster.Node, namespace: str) -> dict[str, int]:
    """Quorum queue of this installation -> how many nodes hold a replica of it."""
    url = f"{node.management_url}/api/queues"
    params = {"columns": "name,type,members", "name": f"^{namespace}\\.", "use_regex": "true"}
    async with (
        aiohttp.ClientSession(auth=None) as http,
        http.get(url, params=params, headers={"Authorization": "Basic Z3Vlc3Q6Z3Vlc3Q="}) as resp,
    ):
        listed = await resp.json()
    return {q["name"]: len(q.get("members") or []) for q in listed if q.get("type") == "quorum"}


async def check_inquiries(lw: LookupWorld, submitted: dict[str, str]) -> None:
    db = Database(lw.settings.resolved_database_url)
    try:
        async with db.read() as conn:
            statuses = collections.Counter((await conn.execute(select(inquiries.c.status))).scalars())
            sources = (await conn.execute(select(func.count()).select_from(inquiry_sources))).scalar_one()
            results = (
                (await conn.execute(select(audit_log.c.data).where(audit_log.c.action == "assets.result")))
                .scalars()
                .all()
            )
    finally:
        await db.dispose()
    assert statuses == {"complete": INQUIRIES}
    assert sources == INQUIRIES * len(PARTNER_CODES)
    # One recorded answer per source, whatever was redelivered or called twice around the failover.
    answered = collections.Counter(
        (json.loads(r)["source"], json.loads(r)["request_sha256"]) for r in results
    )
    assert max(answered.values()) == 1 and len(answered) == sources


async def test_health_readings_cover_every_node(cluster: rabbit_cluster.Cluster) -> None:
    health = await node_readings(cluster.nodes[0], running=3)
    assert sorted(n.name for n in health.nodes) == sorted(n.name for n in cluster.nodes)
    for node in health.nodes:
        assert node.fd_total and node.fd_used and node.mem_limit and node.disk_free_limit
    assert health.verdict.alarms == ()


async def test_a_memory_alarm_is_reported_and_keeps_the_api_ready(
    cluster: rabbit_cluster.Cluster,
    world: World,
    aiohttp_client: Callable[..., Any],
) -> None:
    """A real alarm (a node's high watermark set under what it uses): the api's /readyz stays 200 and
    names it, run.py status prints it; both clear once the watermark is back."""
    node = cluster.nodes[2]
    management = cluster.nodes[0].management_url
    ops = {**world.settings.ops.model_dump(), "management_url": management}
    broker = {"health_cache_seconds": 0, "health_timeout_seconds": 5}
    settings = Settings(**{**world.settings.model_dump(), "ops": ops, "broker": broker})
    api: TestClient[Any, Any] = await aiohttp_client(create_app(settings))
    env = {
        **os.environ,
        "GATEWAY_CONFIG_DIR": str(settings.config_dir),
        "GATEWAY_DATABASE_URL": settings.database_url,
        "GATEWAY_BROKER_NAMESPACE": settings.broker_namespace,
        "GATEWAY_BROKER_URL": ",".join(cluster.urls),
        "GATEWAY_OPS__MANAGEMENT_URL": management,
    }
    await asyncio.to_thread(cluster.ctl, node, "set_vm_memory_high_watermark", "absolute", "1MiB")
    try:
        for _ in range(60):  # the management API shows the alarm within a few seconds
            body = await (await api.get("/readyz")).json()
            if body["checks"]["broker_health"]["alarms"]:
                break
            await asyncio.sleep(1)
        resp = await api.get("/readyz")
        body = await resp.json()
        assert resp.status == 200 and body["status"] == "ready"
        assert body["checks"]["broker_health"]["status"] == "warn"
        assert any(node.name in w and "memory alarm" in w for w in body["warnings"]), body["warnings"]
        status = await asyncio.to_thread(
            subprocess.run,
            [sys.executable, str(ROOT / "run.py"), "status"],
            env=env,
            capture_output=True,
            text=True,
            timeout=90,
        )
        assert status.returncode == 0, status.stderr
        assert f"ALARM: {node.name}: memory alarm" in status.stdout, status.stdout
    finally:
        await asyncio.to_thread(cluster.ctl, node, "set_vm_memory_high_watermark", "0.4")
    for _ in range(60):
        body = await (await api.get("/readyz")).json()
        if not body["checks"]["broker_health"]["alarms"]:
            break
        await asyncio.sleep(1)
    assert body["checks"]["broker_health"]["alarms"] == []


@pytest.mark.timeout(240)
async def test_a_node_lost_mid_load_loses_nothing(
    cluster: rabbit_cluster.Cluster, gateway: tuple[LookupWorld, ClusterProcesses]
) -> None:
    lw, procs = gateway
    first = cluster.nodes[0]
    plan = [orders_for(i) for i in range(ORDERS)]
    order_ids = {d["message_id"] for d in plan}
    case_system = ClusterCaseSystem(lw.world.case_queue, cluster.urls)
    await case_system.start()
    # Every process connects to the first node that answers: the first of the list.
    held = await connections_on(cluster, first)
    assert any("gateway-worker-consume" in line for line in held), held
    # Quorum queues replicate over the three nodes: two are left to elect new leaders.
    members = await replicas(cluster.nodes[1], lw.settings.broker_namespace)
    assert members and set(members.values()) == {3}, members
    started = asyncio.get_running_loop().time()
    submitted: dict[str, str] = {}
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=40)) as http:
        client = CaseSystemClient(lw, procs, http)

        async def ask(i: int) -> None:
            url = f"{procs.url}/v1/asset-inquiries"
            answer = await post_until_taken(http, url, inquiry(IDS[i % len(IDS)]), lw.world.case_headers)
            submitted[answer["inquiry_id"]] = IDS[i % len(IDS)]

        async def executed() -> int:
            return sum(len(counts) for counts in (await executions(lw, http)).values())

        sending = asyncio.gather(*(client.send(d) for d in plan), *(ask(i) for i in range(INQUIRIES)))
        try:
            deadline = asyncio.get_running_loop().time() + 90
            while (done := await executed()) < STOP_AFTER:
                assert asyncio.get_running_loop().time() < deadline, f"only {done} orders executed"
                await asyncio.sleep(0.05)
            at_stop = await executed()
            # Killed, not stopped: a graceful stop takes seconds, in which the load would be over.
            cluster.kill_node(first)
            await asyncio.wait_for(sending, 90)
            books = await settle(lw, case_system, order_ids)
            await wait_final(lw, timeout=SETTLE_SECONDS)
            views = await asyncio.gather(*(client.view(m) for m in order_ids))
            executed_by_bank = await executions(lw, http)
        finally:
            sending.cancel()
            await asyncio.gather(sending, return_exceptions=True)
            await case_system.close()
        health = await node_readings(cluster.nodes[1], running=2)

    reports = case_system.reports_for()
    report_ids = {r for ids in reports.values() for r in ids}
    copies_seen_twice = {m for m, n in case_system.seen.items() if n > 1}
    print(
        f"\ncluster run after {asyncio.get_running_loop().time() - started:.1f}s: node {first.name} killed "
        f"after {at_stop} of {ORDERS} orders were executed; orders {dict(books.statuses)}, "
        f"{len(report_ids)} reports for {len(reports)} orders, {len(copies_seen_twice)} copies seen twice "
        f"({len(books.redelivered)} redelivered evidences), {INQUIRIES} inquiries"
    )
    assert at_stop < ORDERS, "the node was killed after the load was done"
    # Orders: each executed once by its bank; one report each, delivered once or recorded as repeated.
    by_bank = {bank: {d["message_id"] for d in plan if d["recipient"] == bank} for bank in BANKS}
    for bank in BANKS:
        assert executed_by_bank[bank] == dict.fromkeys(by_bank[bank], 1), bank
    assert {v["message_id"]: v["status"] for v in views} == dict.fromkeys(order_ids, "answered")
    assert set(reports) == order_ids
    assert {o: len(ids) for o, ids in reports.items() if len(ids) != 1} == {}
    assert copies_seen_twice <= books.redelivered, copies_seen_twice - books.redelivered
    assert books.outbox == 0
    # Inquiries: all complete, one answer per source.
    await check_inquiries(lw, submitted)
    # The readings name the lost node.
    assert any(first.name in w and "down" in w for w in health.verdict.warnings), health.verdict.warnings


def orders_for(i: int) -> dict[str, Any]:
    from tests.support import orders

    document = orders.blocking(BANKS[i % len(BANKS)], 1_000_000 * (i + 1))
    decision = document["body"]["decision"]
    document["body"]["decision"] = dict(decision, number=f"{i + 1}/QĐ-CCTHADS-CLUSTER")
    return document


async def settle(lw: LookupWorld, case_system: CaseSystem, order_ids: set[str]) -> Any:
    """Until every order is answered, its report delivered to the case system, the outbox empty."""
    deadline = asyncio.get_running_loop().time() + SETTLE_SECONDS
    while True:
        books = await read_books(lw)
        if (
            books.statuses == {"answered": ORDERS}
            and books.outbox == 0
            and books.reports_delivered == books.reports_stored
            and order_ids <= set(case_system.reports_for())
        ):
            await asyncio.sleep(1.5)  # stray copies, if any, arrive before counting
            return await read_books(lw)
        missing = len(order_ids - set(case_system.reports_for()))
        assert asyncio.get_running_loop().time() < deadline, (
            f"not settled after {SETTLE_SECONDS}s: orders {dict(books.statuses)}, outbox {books.outbox}, "
            f"reports {books.reports_delivered}/{books.reports_stored} delivered, {missing} without a report"
        )
        await asyncio.sleep(0.5)
