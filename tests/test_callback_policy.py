"""An asset inquiry's ``callback_url`` goes only where the outbound policy allows: a forbidden address is
refused when the inquiry is made (422 at ``$.callback_url``) and again when the results are sent (never
contacted, the refusal audited); a redirect is never followed; and a callback is audited as a read of the
results it carries (who received which inquiry's results: categories, never the data)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer
from sqlalchemy import select

from gateway.domain.errors import Refused
from gateway.security.clients import Client
from gateway.security.tokens import Principal
from gateway.settings import OutboundSettings
from gateway.storage.database import Database
from gateway.storage.tables import audit_log
from gateway.web.app import create_app
from gateway.worker.main import Worker
from tests.conftest import CASE_SYSTEM, EXAMPLES
from tests.support.databases import scratch_database
from tests.support.listeners import listening
from tests.support.lookup_world import LookupWorld, delete_lookup_topology, make_lookup_world
from tests.test_asset_inquiry_flow import inquiry
from tests.test_read_audit import inquiry_service

FORBIDDEN_CALLBACKS = [
    "https://169.254.169.254/latest/meta-data/",
    "https://[::ffff:169.254.169.254]/",
    "https://0.0.0.0:8443/hook",
    "https://10.0.0.8/hook",
    "https://192.168.1.20/hook",
    "https://100.64.0.1/hook",
    "https://224.0.0.1/hook",
    "https://240.0.0.1/hook",
    "https://[fe80::1]/hook",
    "https://127.0.0.1/hook",
    "https://localhost/hook",
    "https://2130706433/hook",  # a name that resolves to 127.0.0.1
    "http://case.example.gov.vn/hook",  # plain http
]


def principal(outbound_hosts: tuple[str, ...] | None = None) -> Principal:
    client = Client(
        id=CASE_SYSTEM,
        name=CASE_SYSTEM,
        grants=frozenset({"assets.inquire"}),
        keys=(),
        outbound_hosts=outbound_hosts,
    )
    return Principal(client=client, subject="officer-0042", token_id="t-1")


def example_inquiry(callback_url: str) -> dict[str, Any]:
    body: dict[str, Any] = json.loads((EXAMPLES / "asset-inquiry" / "valid-all-registers.json").read_text())
    body["callback_url"] = callback_url
    return body


@pytest.mark.parametrize("url", FORBIDDEN_CALLBACKS)
async def test_a_callback_to_a_forbidden_address_is_refused_at_registration(db: Database, url: str) -> None:
    with pytest.raises(Refused) as refused:
        await inquiry_service(db).create(principal(), example_inquiry(url), None)

    assert [v.path for v in refused.value.violations] == ["$.callback_url"]
    async with db.read() as conn:
        assert (await conn.execute(select(audit_log))).all() == [], "nothing stored"


async def test_a_callback_host_outside_the_clients_outbound_hosts_is_refused(db: Database) -> None:
    service = inquiry_service(db)
    mine = principal(outbound_hosts=("case.example.gov.vn",))

    with pytest.raises(Refused) as refused:
        await service.create(mine, example_inquiry("https://elsewhere.example.gov.vn/hook"), None)
    assert [v.path for v in refused.value.violations] == ["$.callback_url"]
    created, _ = await service.create(mine, example_inquiry("https://case.example.gov.vn/hook"), None)
    assert created["status"] == "pending"


@asynccontextmanager
async def gateway(
    home: Path, api_outbound: bool = True, worker_outbound: bool = True
) -> AsyncIterator[tuple[LookupWorld, TestClient[Any, Any]]]:
    """The api and a worker, each with its own ``allow_http_loopback`` (a registration made under one
    policy is sent under another), the simulators on loopback, the real broker."""
    with scratch_database(home) as database_url:
        lw = await make_lookup_world(
            home, database_url, settings={"outbound": {"allow_http_loopback": api_outbound}}
        )
        api: TestClient[Any, Any] = TestClient(TestServer(create_app(lw.settings), port=lw.api_port))
        await api.start_server()
        worker_settings = lw.settings.model_copy(
            update={"outbound": OutboundSettings(allow_http_loopback=worker_outbound)}
        )
        stop = asyncio.Event()
        task = asyncio.create_task(Worker(worker_settings).run(stop))
        try:
            yield lw, api
        finally:
            stop.set()
            await asyncio.wait_for(task, 30)
            await api.close()
            await lw.partners.close()
            await delete_lookup_topology(lw)


async def ask(lw: LookupWorld, api: TestClient[Any, Any], callback_url: str, expect: int = 202) -> Any:
    body = inquiry(sources=["tax", "vehicle"], callback_url=callback_url)
    resp = await api.post("/v1/asset-inquiries", json=body, headers=lw.world.case_headers())
    answer = await resp.json()
    assert resp.status == expect, answer
    return answer


async def audit_rows(lw: LookupWorld, action: str) -> list[Any]:
    db = Database(lw.settings.resolved_database_url)
    try:
        async with db.read() as conn:
            query = select(audit_log).where(audit_log.c.action == action).order_by(audit_log.c.id)
            return list((await conn.execute(query)).all())
    finally:
        await db.dispose()


async def eventually_audited(lw: LookupWorld, action: str, timeout: float = 30) -> list[Any]:
    deadline = asyncio.get_running_loop().time() + timeout
    while not (rows := await audit_rows(lw, action)):
        assert asyncio.get_running_loop().time() < deadline, f"no {action} record"
        await asyncio.sleep(0.1)
    return rows


@pytest.mark.rabbitmq
async def test_a_loopback_listener_is_never_called_back_without_the_development_setting(
    tmp_path: Path,
) -> None:
    # Accepted by an api that allows loopback, sent by a worker that does not: refused at send time.
    async with listening() as listener, gateway(tmp_path, worker_outbound=False) as (lw, api):
        created = await ask(lw, api, f"{listener.url}/results")

        (refused,) = await eventually_audited(lw, "assets.callback")
        assert (refused.outcome, refused.object_ref) == ("refused", created["inquiry_id"])
        assert "https" in refused.reason
        assert listener.requests == []
        assert await audit_rows(lw, "assets.read") == [], "nothing was sent, so nothing was read"


@pytest.mark.rabbitmq
async def test_a_loopback_callback_is_refused_at_registration_without_the_development_setting(
    tmp_path: Path,
) -> None:
    async with listening() as listener, gateway(tmp_path, api_outbound=False) as (lw, api):
        problem = await ask(lw, api, f"{listener.url}/results", expect=422)

        assert [e["path"] for e in problem["errors"]] == ["$.callback_url"]
        assert listener.requests == []


@pytest.mark.rabbitmq
async def test_a_redirect_is_not_followed(tmp_path: Path) -> None:
    async with (
        listening() as elsewhere,
        listening(redirect_to="") as redirecting,
        gateway(tmp_path) as (lw, api),
    ):
        redirecting.redirect_to = f"{elsewhere.url}/stolen"
        await ask(lw, api, f"{redirecting.url}/results")

        await redirecting.wait_for(2)  # the first attempt failed (a 3xx is a failure) and was retried
        assert all(method == "POST" for method, _path, _body in redirecting.requests)
        assert elsewhere.requests == []


@pytest.mark.rabbitmq
async def test_a_callback_is_audited_as_a_read_of_the_results_it_carries(tmp_path: Path) -> None:
    async with listening() as listener, gateway(tmp_path) as (lw, api):
        created = await ask(lw, api, f"{listener.url}/results")
        await listener.wait_for(1)

        (read,) = await audit_rows(lw, "assets.read")
        delivered = json.loads(listener.requests[0][2])
        assert (read.actor, read.outcome, read.object_ref) == (CASE_SYSTEM, "read", created["inquiry_id"])
        data = json.loads(read.data)
        assert data["channel"] == "callback" and data["host"] == "127.0.0.1"
        assert sorted(data["sources_shown"]) == sorted(
            s["source"] for s in delivered["sources"] if "rows" in s
        )
        assert set(data["categories"]) == set(data["sources_shown"]) and any(data["categories"].values())
        assert "001085012345" not in read.data, "categories, never the data"
