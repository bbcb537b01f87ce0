"""An installation for the procuracy and court flows: the api and a worker, the real broker, and the
simulated court (TAND-HN) and procuracy (VKS-HN) as real HTTP servers receiving on their webhooks. The
test plays the enforcement office (THADS-HN): it sends through the api and reads its own queue."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aio_pika
from aiohttp.test_utils import TestClient, TestServer

from gateway.amqp.names import Names
from gateway.security.clients import ClientStore
from gateway.security.keys import public_pem, write_keypair
from gateway.simulators.court import CourtSimulator
from gateway.simulators.gateway_client import GatewayClient
from gateway.simulators.procuracy import ProcuracySimulator
from gateway.web.app import create_app
from gateway.worker.main import Worker
from tests.conftest import World, make_world
from tests.support.databases import scratch_database
from tests.support.gateway_procs import BROKER, delete_topology, free_port

Client = TestClient[Any, Any]
ROUTING = '[procuracy]\n"THADS-HN" = "VKS-HN"\n'
PEERS = ("TAND-HN", "VKS-HN")


@dataclass
class FlowsWorld:
    world: World
    api: Client
    court: CourtSimulator
    procuracy: ProcuracySimulator

    def headers(self, client: str = "THADS-HN") -> dict[str, str]:
        if client == "THADS-HN":
            return self.world.case_headers()
        return (self.court.gateway if client == "TAND-HN" else self.procuracy.gateway).headers()

    async def view(self, message_id: str, client: str = "THADS-HN") -> dict[str, Any]:
        resp = await self.api.get(f"/v1/messages/{message_id}", headers=self.headers(client))
        assert resp.status == 200, await resp.text()
        result: dict[str, Any] = await resp.json()
        return result

    async def wait_for(
        self, message_id: str, status: str, client: str = "THADS-HN", timeout: float = 30
    ) -> dict[str, Any]:
        deadline = asyncio.get_running_loop().time() + timeout
        while True:
            resp = await self.api.get(f"/v1/messages/{message_id}", headers=self.headers(client))
            if resp.status == 404 and asyncio.get_running_loop().time() < deadline:
                # Not stored yet: a simulator's answer may still be on its way (a push it retries).
                await asyncio.sleep(0.1)
                continue
            assert resp.status == 200, await resp.text()
            current: dict[str, Any] = await resp.json()
            if current["status"] == status:
                return current
            assert asyncio.get_running_loop().time() < deadline, (
                f"still {current['status']}: {current['timeline']}"
            )
            await asyncio.sleep(0.1)

    async def send(
        self, document: dict[str, Any], client: str = "THADS-HN", expect: int = 202
    ) -> dict[str, Any]:
        resp = await self.api.post("/v1/documents", json=document, headers=self.headers(client))
        body: dict[str, Any] = await resp.json()
        assert resp.status == expect, body
        return body


def events(status_view: dict[str, Any]) -> list[str]:
    return [e["event"] for e in status_view["timeline"]]


async def _topology_declared(queue: str, timeout: float = 30) -> None:
    """Until the worker has declared the office's queue (a failed passive declare closes the channel)."""
    connection = await aio_pika.connect(BROKER)
    async with connection:
        deadline = asyncio.get_running_loop().time() + timeout
        while True:
            channel = await connection.channel()
            try:
                await channel.declare_queue(queue, passive=True)
                return
            except aio_pika.exceptions.ChannelClosed:
                assert asyncio.get_running_loop().time() < deadline, f"{queue} never declared"
                await asyncio.sleep(0.1)


@asynccontextmanager
async def flows_world(home: Path, recommend_every: int = 1) -> AsyncIterator[FlowsWorld]:
    with scratch_database(home) as database_url:
        async with _flows_world(home, database_url, recommend_every) as fw:
            yield fw


@asynccontextmanager
async def _flows_world(home: Path, database_url: str, recommend_every: int) -> AsyncIterator[FlowsWorld]:
    port = free_port()
    world = make_world(
        home,
        database_url,
        api={"public_url": f"http://127.0.0.1:{port}", "port": port},
    )
    settings = world.settings
    (settings.config_dir / "routing.toml").write_text(ROUTING, "utf-8")
    store = ClientStore(settings.clients_dir)
    store.add(
        "THADS-HN",
        public_pem(world.case_system.key.public_key()),
        ["messages.read", "messages.confirm", "documents.send"],
        deliver_to=f"amqp:{world.case_queue}",
    )
    keys = {peer: write_keypair(home / "keys", peer)[0] for peer in PEERS}
    audience = settings.auth.audience
    court = CourtSimulator(settings.api.public_url, "TAND-HN", "THADS-HN", keys["TAND-HN"], audience)
    procuracy = ProcuracySimulator(
        GatewayClient(settings.api.public_url, "VKS-HN", keys["VKS-HN"], audience), recommend_every
    )
    grants = ["documents.send", "messages.read", "messages.confirm"]
    court_url = await court.start_inbox()
    store.add("TAND-HN", (home / "keys" / "TAND-HN.pub").read_bytes(), ["judgments.push", *grants], court_url)
    procuracy_url = await procuracy.start()
    store.add("VKS-HN", (home / "keys" / "VKS-HN.pub").read_bytes(), grants, procuracy_url)

    api: Client = TestClient(TestServer(create_app(settings), port=port))
    await api.start_server()
    stop = asyncio.Event()
    task = asyncio.create_task(Worker(settings).run(stop))
    try:
        await _topology_declared(world.case_queue)
        yield FlowsWorld(world, api, court, procuracy)
    finally:
        stop.set()
        await asyncio.wait_for(task, 30)
        await api.close()
        await court.close()
        await procuracy.close()
        names = Names(settings.broker_namespace)
        await delete_topology(world, [q for peer in PEERS for q in names.recipient_queues(peer)])
