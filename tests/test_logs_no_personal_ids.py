"""No personal ID number in clear in any log line: a judgment, a lookup for a person, orders to a bank
that answers at once and to one that pushes its report later, and a push rejected for a bad ID, all
through the real api and worker processes logging at DEBUG, with the partner simulators; then every
line of every process is searched for a 12-digit number."""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path

import aiohttp
import pytest

from tests.conftest import fresh_judgment
from tests.support import orders
from tests.support.gateway_procs import GatewayProcesses
from tests.support.lookup_world import LookupWorld, delete_lookup_topology, make_lookup_world
from tests.support.order_flow import fresh
from tests.test_asset_inquiry_flow import inquiry

pytestmark = pytest.mark.rabbitmq

TWELVE_DIGITS = re.compile(r"\b\d{12}\b")
# A UUID's last group may be twelve decimal digits: that is an id of ours, not a person's.
UUID_TAIL = re.compile(r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-$")


@dataclass
class VerboseProcesses(GatewayProcesses):
    level: str = "DEBUG"

    def env(self) -> dict[str, str]:
        return {**super().env(), "GATEWAY_LOG_LEVEL": self.level}


@pytest.fixture
async def gateway(
    tmp_path: Path, fresh_database_url: str
) -> AsyncIterator[tuple[LookupWorld, VerboseProcesses]]:
    deadlines = dict.fromkeys(("land", "bank", "tax", "vehicle", "population"), "900s")
    lw = await make_lookup_world(tmp_path, fresh_database_url, callback_delay=0.2, deadlines=deadlines)
    procs = VerboseProcesses(lw.world, tmp_path / "logs", port=lw.api_port)
    procs.start("api")
    procs.start("worker")
    try:
        await procs.wait_api()
        yield lw, procs
    finally:
        procs.stop_all()
        await lw.partners.close()
        await delete_lookup_topology(lw)


def leaks(lines: list[str]) -> list[str]:
    found = []
    for line in lines:
        for match in TWELVE_DIGITS.finditer(line):
            if not UUID_TAIL.search(line[: match.start()]):
                found.append(line)
                break
    return found


async def status_of(http: aiohttp.ClientSession, url: str, headers: Callable[[], dict[str, str]]) -> str:
    async with http.get(url, headers=headers()) as resp:
        assert resp.status == 200, await resp.text()
        return str((await resp.json())["status"])


async def wait_status(
    http: aiohttp.ClientSession,
    url: str,
    headers: Callable[[], dict[str, str]],
    *wanted: str,
    timeout: float = 30,
) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while (status := await status_of(http, url, headers)) not in wanted:
        assert asyncio.get_running_loop().time() < deadline, f"{url} still {status}"
        await asyncio.sleep(0.1)


async def test_no_log_line_of_a_full_run_shows_a_personal_id(
    gateway: tuple[LookupWorld, VerboseProcesses], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)  # the simulators run in this process
    lw, procs = gateway
    world = lw.world
    async with aiohttp.ClientSession() as http:
        judgment = fresh_judgment()
        async with http.post(
            f"{procs.url}/v1/judgments", json=judgment, headers=world.court_headers()
        ) as resp:
            assert resp.status == 202, await resp.text()
        bad = fresh_judgment()
        bad["body"]["parties"][1]["person"]["id_number"] = "999085012345"  # no such province
        async with http.post(f"{procs.url}/v1/judgments", json=bad, headers=world.court_headers()) as resp:
            assert resp.status == 422, await resp.text()

        headers = {**world.case_headers(), "Prefer": "wait=20"}
        async with http.post(f"{procs.url}/v1/asset-inquiries", json=inquiry(), headers=headers) as resp:
            assert resp.status == 200, await resp.text()
            assert (await resp.json())["status"] == "complete"

        sent = [fresh(orders.blocking(bank, 5_000_000)) for bank in ("BANK-VCB", "BANK-TCB")]
        for document in sent:
            async with http.post(
                f"{procs.url}/v1/documents", json=document, headers=world.case_headers()
            ) as resp:
                assert resp.status == 202, await resp.text()
        for document in sent:
            url = f"{procs.url}/v1/messages/{document['message_id']}"
            await wait_status(http, url, world.case_headers, "answered")
        url = f"{procs.url}/v1/messages/{judgment['message_id']}"
        await wait_status(http, url, world.court_headers, "delivered")
    procs.stop_all()

    lines = {role: (procs.logs / f"{role}.log").read_text("utf-8").splitlines() for role in ("api", "worker")}
    lines["simulators"] = caplog.text.splitlines()
    # The scan means something only if the processes did log what they did, with their ids bound.
    assert any('"request_id"' in line for line in lines["api"]), lines["api"][:20]
    assert any('"message_id"' in line for line in lines["worker"]), lines["worker"][:20]
    for role, logged in lines.items():
        leaked = leaks(logged)
        assert not leaked, f"{role} logged a 12-digit number:\n" + "\n".join(leaked[:10])


def test_the_scan_finds_an_id_and_spares_uuids() -> None:
    assert leaks(['{"event": "lookup for 001085012345"}']) == ['{"event": "lookup for 001085012345"}']
    assert leaks(['{"message_id": "6f1c2a52-3f0e-4a4b-9d7e-012345678901"}']) == []
    assert leaks(['{"event": "account 0011000123999, at 1767225600.123"}']) == []
