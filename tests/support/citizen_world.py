"""An installation with the national e-ID notification service (VNeID) beside the other partners: its
simulator pushes delivery statuses and records consents as the gateway client ``VNEID``; ``DVCQG`` (the
service that answers citizens) may read data-access reports. The api and a worker run in this process
against the real broker, the simulators on loopback."""

from __future__ import annotations

import asyncio
import os
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import tomli_w
from aiohttp.test_utils import TestClient, TestServer

from gateway.amqp.names import Names
from gateway.security.clients import ClientStore
from gateway.security.keys import generate_keypair, load_private_key, public_pem, write_keypair
from gateway.simulators.partners.servers import Partners, start_partners
from gateway.web.app import create_app
from gateway.worker.main import Worker
from tests.conftest import Party, World, make_world
from tests.support.databases import scratch_database
from tests.support.gateway_procs import delete_topology, free_port
from tests.support.lookup_world import PARTNER_CODES, write_partners

Client = TestClient[Any, Any]
VNEID = "VNEID"
PORTAL = "DVCQG"
OFFICER_ID = "001088009911"


@dataclass
class CitizenWorld:
    world: World
    partners: Partners
    api: Client
    vneid: Party
    portal: Party

    @property
    def settings(self) -> Any:
        return self.world.settings

    def vneid_headers(self) -> dict[str, str]:
        return self.vneid.headers(self.settings)

    def portal_headers(self) -> dict[str, str]:
        return self.portal.headers(self.settings)

    def case_headers(self) -> dict[str, str]:
        return self.world.case_headers()

    async def sim(self, method: str, path: str, body: Any = None) -> Any:
        """Call the VNeID simulator's test switches (``/_sim/...``)."""
        url = self.partners.urls[VNEID] + path
        async with aiohttp.ClientSession() as http, http.request(method, url, json=body) as resp:
            assert resp.status == 200, await resp.text()
            return await resp.json()


def notice(person_id: str, **envelope: Any) -> dict[str, Any]:
    """A notice of an enforcement decision to ``person_id``, from the case system of the test world."""
    message_id = str(uuid.uuid4())
    document = {
        "message_id": message_id,
        "message_type": "notice.citizen",
        "schema_version": "1",
        "created_at": "2026-03-10T09:00:00+07:00",
        "sender": "THADS-HN",
        "recipient": VNEID,
        "case_ref": "THA-HN-2026-000456",
        "officer_id": OFFICER_ID,
        "legal_basis": "LTHADS-39",
        "purpose": "Thông báo quyết định thi hành án",
        "body": {
            "person": {"id_number": person_id},
            "document_type": "enforcement_decision",
            "summary": "Quyết định thi hành án số 512/QĐ-CTHADS",
            "document": {
                "number": "512/QĐ-CTHADS",
                "uri": f"https://thads.example.gov.vn/documents/{message_id}.pdf",
                "sha256": uuid.uuid4().hex * 2,
            },
        },
    }
    return document | envelope


@asynccontextmanager
async def citizen_gateway(home: Path, status_delay: float = 0.2) -> AsyncIterator[CitizenWorld]:
    with scratch_database(home) as database_url:
        async with _citizen_gateway(home, database_url, status_delay) as cw:
            yield cw


@asynccontextmanager
async def _citizen_gateway(home: Path, database_url: str, status_delay: float) -> AsyncIterator[CitizenWorld]:
    api_port = free_port()
    world = make_world(
        home,
        database_url,
        api={"public_url": f"http://127.0.0.1:{api_port}", "port": api_port, "max_wait_seconds": 30},
    )
    store = ClientStore(world.settings.clients_dir)
    case = world.case_system
    store.add(
        case.id,
        public_pem(case.key.public_key()),
        ["messages.read", "messages.confirm", "assets.inquire", "documents.send"],
        deliver_to=f"amqp:{world.case_queue}",
    )
    bank_key, bank_pub = write_keypair(home / "keys", "BANK-TCB")
    store.add("BANK-TCB", bank_pub.read_bytes(), ["assets.answer", "documents.send", "messages.read"])
    vneid_key_file, vneid_pub = write_keypair(home / "keys", VNEID)
    grants = ["consents.write", "documents.send:notice.delivery_status", "messages.read"]
    store.add(VNEID, vneid_pub.read_bytes(), grants)
    portal_key = generate_keypair()
    store.add(PORTAL, public_pem(portal_key.public_key()), ["data_access.read"])
    partners = await start_partners(
        bank_callback_key=bank_key,
        vneid_key=vneid_key_file,
        status_delay=status_delay,
        audience=world.settings.auth.audience,
        callback_delay=0.3,
        error_rate=0.0,
        gateway_url=world.settings.api.public_url,
    )
    config = world.settings.config_dir
    write_partners(config, partners.urls)
    block = {
        "code": VNEID,
        "kind": "vneid",
        "protocol": "rest",
        "endpoint": partners.urls[VNEID],
        "timeout_seconds": 2,
        "retry": {"attempts": 2, "min_seconds": 0.05, "max_seconds": 0.2},
        "credentials": "GATEWAY_SECRET_VNEID",
    }
    os.environ["GATEWAY_SECRET_VNEID"] = "simulator-token"
    with (config / "partners.toml").open("a", encoding="utf-8") as f:
        f.write("\n" + tomli_w.dumps({"partner": [block]}))
    api: Client = TestClient(TestServer(create_app(world.settings), port=api_port))
    await api.start_server()
    stop = asyncio.Event()
    task = asyncio.create_task(Worker(world.settings).run(stop))
    vneid = Party(VNEID, load_private_key(vneid_key_file.read_bytes()))
    try:
        yield CitizenWorld(world, partners, api, vneid, Party(PORTAL, portal_key))
    finally:
        stop.set()
        await asyncio.wait_for(task, 30)
        await api.close()
        await partners.close()
        names = Names(world.settings.broker_namespace)
        await delete_topology(world, names.partner_queues([*PARTNER_CODES, VNEID]))
