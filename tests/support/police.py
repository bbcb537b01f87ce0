"""An installation with the police unit CA-HN: its simulator on loopback (answer modes, hold switch), its
partner entry and its client (for the answers it pushes later), documents the case system sends it."""

from __future__ import annotations

import asyncio
import json
import os
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import aio_pika
import aiohttp
import tomli_w
from aiohttp import web

from gateway.amqp.names import Names
from gateway.security.clients import ClientStore
from gateway.security.keys import public_pem, write_keypair
from gateway.simulators.partners import police
from gateway.simulators.partners.behaviour import Behaviour
from tests.conftest import EXAMPLES, ROOT, World, make_world
from tests.support.databases import Backend, scratch_database
from tests.support.gateway_procs import BROKER, delete_topology, free_port

CODE = police.CODE
CREDENTIALS = "GATEWAY_SECRET_CA_HN"
ANSWER_GRANTS = [
    "documents.send:police.protection_answer",
    "documents.send:police.assistance_ack",
    "messages.read",
]


@dataclass
class PoliceWorld:
    world: World
    sim_url: str  # the simulator's root: /ca-hn/... under it
    api_port: int
    runner: web.AppRunner

    @property
    def settings(self) -> Any:
        return self.world.settings

    @property
    def endpoint(self) -> str:
        return self.sim_url + police.PATH

    async def sim(self, method: str, path: str, body: Any = None) -> Any:
        async with (
            aiohttp.ClientSession() as http,
            http.request(method, f"{self.endpoint}/_sim/{path}", json=body) as resp,
        ):
            assert resp.status == 200, await resp.text()
            return await resp.json()

    async def received(self) -> list[dict[str, Any]]:
        seen: list[dict[str, Any]] = await self.sim("GET", "received")
        return seen


def write_config(config: Path, endpoint: str, **partner: Any) -> None:
    block = {
        "code": CODE,
        "name": "Công an thành phố Hà Nội",
        "kind": "police",
        "protocol": "rest",
        "endpoint": endpoint,
        "timeout_seconds": partner.get("timeout_seconds", 5),
        "concurrency": partner.get("concurrency", 8),
        "retry": {"attempts": 2, "min_seconds": 0.05, "max_seconds": 0.2},
        "deadline": "3wd",
        "credentials": CREDENTIALS,
    }
    (config / "partners.toml").write_text(tomli_w.dumps({"partner": [block]}), "utf-8")
    for name in ("legal_bases.toml", "holidays.toml", "documents.toml"):
        (config / name).write_text((ROOT / "config" / name).read_text("utf-8"), "utf-8")
    os.environ[CREDENTIALS] = "simulator-token"


@asynccontextmanager
async def police_world(
    home: Path,
    mode: str = "at_once",
    answer_delay: float = 0.3,
    backend: Backend | None = None,
    **partner: Any,
) -> AsyncIterator[PoliceWorld]:
    """``backend``: the installation's database, by default the session's (see tests/support/databases)."""
    with scratch_database(home, backend) as database_url:
        async with _police_world(home, mode, answer_delay, database_url, **partner) as pw:
            yield pw


@asynccontextmanager
async def _police_world(
    home: Path, mode: str, answer_delay: float, database_url: str, **partner: Any
) -> AsyncIterator[PoliceWorld]:
    api_port = free_port()
    public_url = f"http://127.0.0.1:{api_port}"
    world = make_world(
        home,
        database_url,
        api={"public_url": public_url, "port": api_port},
    )
    store = ClientStore(world.settings.clients_dir)
    case = world.case_system
    store.add(
        case.id,
        public_pem(case.key.public_key()),
        ["messages.read", "messages.confirm", "documents.send"],
        deliver_to=f"amqp:{world.case_queue}",
    )
    key, pub = write_keypair(home / "keys", CODE)
    store.add(CODE, pub.read_bytes(), ANSWER_GRANTS)
    app = police.make_app(
        Behaviour(latency=(0.0, 0.0), error_rate=0.0),
        key=key,
        audience=world.settings.auth.audience,
        answer_delay=answer_delay,
        gateway_url=public_url,
        mode=mode,
    )
    runner = web.AppRunner(app, shutdown_timeout=1.0)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    sim_url = f"http://127.0.0.1:{runner.addresses[0][1]}"
    write_config(world.settings.config_dir, sim_url + police.PATH, **partner)
    pw = PoliceWorld(world, sim_url, api_port, runner)
    try:
        yield pw
    finally:
        await pw.sim("POST", "hold", {"hold": False})
        await runner.cleanup()
        names = Names(world.settings.broker_namespace)
        extra = names.partner_queues([CODE])
        extra += names.recipient_queues(world.case_system.id)
        await delete_topology(world, extra)


def _example(message_type: str, name: str) -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads((EXAMPLES / message_type / name).read_text("utf-8"))
    return loaded


def protection_request(
    coercion_in_days: int = 20, officers: int = 15, priority: str = "normal", today: date | None = None
) -> dict[str, Any]:
    """A protection request of the case system to CA-HN, its coercion ``coercion_in_days`` after
    ``today`` (the real local date by default), with a plan number of its own."""
    doc = _example("police.protection_request", "valid-eviction-with-risks.json")
    doc["message_id"] = str(uuid.uuid4())
    day = (today or date.today()) + timedelta(days=coercion_in_days)
    plan = {
        "number": f"17/KH-{uuid.uuid4().hex[:16]}",
        "date": (day - timedelta(days=coercion_in_days + 1)).isoformat(),
        "coercion_date": day.isoformat(),
    }
    doc["body"]["coercion_plan"] = plan
    doc["body"]["window"] = {"from": day.isoformat(), "to": (day + timedelta(days=1)).isoformat()}
    doc["body"]["forces_requested"] = dict(doc["body"]["forces_requested"], officers=officers)
    doc["priority"] = priority
    if priority == "urgent":
        doc["body"]["urgent_reason"] = "Tài sản đang bị tẩu tán."
    return doc


def urgent_assistance(protection_request_id: str | None = None) -> dict[str, Any]:
    doc = _example("police.urgent_assistance", "valid-officers-threatened-on-site.json")
    doc["message_id"] = str(uuid.uuid4())
    # Its own obstruction: the same case and start time would be the same call for help.
    doc["case_ref"] = f"THA-HN-2026-{uuid.uuid4().int % 999999:06d}"
    doc["created_at"] = doc["body"]["since"] = "2026-01-05T08:30:00+07:00"
    if protection_request_id:
        doc["body"]["protection_request"] = protection_request_id
    return doc


async def wait_for_queues(*queues: str, timeout: float = 30) -> None:
    """Until the worker has declared ``queues`` (it does at start, before relaying anything)."""
    connection = await aio_pika.connect(BROKER)
    async with connection:

        async def declared() -> bool:
            channel = await connection.channel()
            try:
                for queue in queues:
                    await channel.declare_queue(queue, passive=True)
            except aio_pika.exceptions.ChannelClosed:
                return False
            await channel.close()
            return True

        await wait_until(declared, timeout, f"queues {queues}")


async def wait_until(predicate: Any, timeout: float = 30, what: str = "condition") -> Any:
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        value = await predicate()
        if value:
            return value
        assert asyncio.get_running_loop().time() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.05)
