"""An installation wired to the partner simulators: config with partners.toml pointing at them, the
async bank registered as a client, and the case system granted asset lookups."""

from __future__ import annotations

import asyncio
import os
import tomllib
from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import tomli_w
from aiohttp.test_utils import TestClient, TestServer

from gateway.amqp.names import Names
from gateway.security.clients import ClientStore
from gateway.security.keys import public_pem, write_keypair
from gateway.simulators.partners.servers import Partners, start_partners
from gateway.simulators.platforms import RunningPlatforms, start_platforms
from gateway.web.app import create_app
from gateway.worker.main import Worker
from tests.conftest import ROOT, World, make_world
from tests.support.databases import scratch_database
from tests.support.gateway_procs import GatewayProcesses, delete_topology, free_port

PARTNER_CODES = {
    "LAND-REG": ("land", "soap"),
    "BANK-VCB": ("bank", "rest"),
    "BANK-BIDV": ("bank", "rest"),
    "BANK-CTG": ("bank", "rest"),
    "BANK-AGR": ("bank", "rest"),
    "BANK-TCB": ("bank", "rest"),
    "TAX": ("tax", "rest"),
    "POLICE-VEH": ("vehicle", "rest"),
    "POP-REG": ("population", "rest"),
}


#: ``transport="platforms"``: who goes through which simulated platform (the rest: direct).
THROUGH_XROAD = {"LAND-REG": "", "TAX": "tax", "POLICE-VEH": "vehicles", "POP-REG": "population"}
XROAD_CLIENT = "XROADVN/GOV/000.00.00.G22/THADS-GW"
LGSP_SECRETS = {
    "GATEWAY_TEST_LGSP_SECRET": "lgsp-test-secret",
    "GATEWAY_TEST_LGSP_ACCESS": "lgsp-test-access",
}


@dataclass
class LookupWorld:
    world: World
    partners: Partners
    api_port: int
    #: The simulated exchange platforms in front of the partners (``transport="platforms"``).
    platforms: RunningPlatforms = field(default_factory=RunningPlatforms)

    @property
    def settings(self) -> Any:
        return self.world.settings


def write_partners(config: Path, urls: dict[str, str], transport: str = "direct", **policy: Any) -> None:
    """partners.toml for the simulators at ``urls``. ``transport="platforms"``: the land registry, tax,
    vehicles and population through a simulated X-Road security server, every bank through a simulated
    LGSP (the same partners behind them)."""
    blocks = []
    document: dict[str, Any] = {}
    if transport == "platforms":
        xroad_port, lgsp_port = free_port(), free_port()
        document["platforms"] = {
            "xroad": {"security_server": f"http://127.0.0.1:{xroad_port}", "client": XROAD_CLIENT},
            "lgsp": {
                "HN": {
                    "base_url": f"http://127.0.0.1:{lgsp_port}/gw",
                    "token_url": f"http://127.0.0.1:{lgsp_port}/oauth2/token",
                    "client_id": "thads-gateway",
                    "client_secret_env": "GATEWAY_TEST_LGSP_SECRET",
                    "access_token_env": "GATEWAY_TEST_LGSP_ACCESS",
                }
            },
        }
        os.environ.update(LGSP_SECRETS)
    elif transport != "direct":
        raise ValueError(f"transport {transport!r}: direct or platforms")
    for code, (kind, protocol) in PARTNER_CODES.items():
        block: dict[str, Any] = {
            "code": code,
            "kind": kind,
            "protocol": protocol,
            "endpoint": urls[code],
            "timeout_seconds": policy.get("timeout_seconds", 2),
            "retry": {"attempts": 2, "min_seconds": 0.05, "max_seconds": 0.2},
            "breaker": policy.get("breaker", {"failures": 5, "recovery_seconds": 10}),
            "deadline": policy.get("deadlines", {}).get(kind, "60s"),
            "credentials": f"GATEWAY_SECRET_{code.replace('-', '_')}",
        }
        if code in policy.get("batch_sizes", {}):
            block["batch_size"] = policy["batch_sizes"][code]
        if protocol == "soap":
            block["wsdl"] = str(ROOT / "config" / "wsdl" / "land-registry.wsdl")
        if transport == "platforms" and code in THROUGH_XROAD:
            block["transport"] = "xroad"
            block["xroad"] = {"subsystem": f"XROADVN/GOV/000.00.00.P01/{code}"}
            if protocol == "rest":
                block["xroad"]["service_code"] = THROUGH_XROAD[code]
        elif transport == "platforms" and kind == "bank":
            block["transport"] = "lgsp"
            block["lgsp"] = {"platform": "HN", "path": "/" + code.lower()}
        blocks.append(block)
        os.environ[block["credentials"]] = "simulator-token"
    (config / "partners.toml").write_text(tomli_w.dumps(document | {"partner": blocks}), "utf-8")
    for name in ("legal_bases.toml", "holidays.toml"):
        (config / name).write_text((ROOT / "config" / name).read_text("utf-8"), "utf-8")


def add_banks(config: Path, n: int, endpoints: Mapping[str, str] | None = None) -> list[str]:
    """``n`` banks in all, configured as ``run.py demo --banks N`` does it (:func:`gateway.demo.write_banks`:
    the banks beyond the five go one line each to ``banks.toml``, served by the bank simulator under
    ``/banks/<CODE>`` and inheriting ``[defaults.bank]``, here the five's own policy). ``endpoints`` points
    some of them elsewhere (a bank answering garbage). Returns every bank's code."""
    from gateway.demo import write_banks

    path = config / "partners.toml"
    data = tomllib.loads(path.read_text("utf-8"))
    first = next(p for p in data["partner"] if p["kind"] == "bank")
    shared = ("protocol", "timeout_seconds", "retry", "breaker", "deadline")
    defaults = {key: first[key] for key in shared if key in first}
    data.setdefault("defaults", {})["bank"] = defaults | {"credentials": "GATEWAY_SECRET_{CODE}"}
    path.write_text(tomli_w.dumps(data), "utf-8")
    codes = write_banks(config, n)
    banks_file = config / "banks.toml"
    if endpoints and banks_file.exists():
        listed = tomllib.loads(banks_file.read_text("utf-8"))
        for bank in listed["bank"]:
            bank["endpoint"] = endpoints.get(bank["code"], bank["endpoint"])
        banks_file.write_text(tomli_w.dumps(listed), "utf-8")
    for code in codes:
        os.environ.setdefault(f"GATEWAY_SECRET_{code.replace('-', '_')}", "simulator-token")
    return codes


async def make_lookup_world(
    home: Path,
    database_url: str,
    modes: dict[str, str] | None = None,
    settings: dict[str, Any] | None = None,
    silent_banks: frozenset[str] = frozenset(),
    transport: str = "direct",
    banks: int | None = None,
    bank_endpoints: Mapping[str, str] | None = None,
    **policy: Any,
) -> LookupWorld:
    """``banks``: that many banks in all (:func:`add_banks`), the five seeded ones first."""
    api_port = free_port()
    world = make_world(
        home,
        database_url,
        api={"public_url": f"http://127.0.0.1:{api_port}", "port": api_port, "max_wait_seconds": 30},
        **(settings or {}),
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
    partners = await start_partners(
        modes=modes,
        bank_callback_key=bank_key,
        audience=world.settings.auth.audience,
        callback_delay=policy.pop("callback_delay", 0.5),
        error_rate=0.0,
        slow_delay=policy.pop("slow_delay", 5.0),
        gateway_url=world.settings.api.public_url,
        silent_banks=silent_banks,
    )
    write_partners(world.settings.config_dir, partners.urls, transport, **policy)
    if banks is not None:
        add_banks(world.settings.config_dir, banks, bank_endpoints)
    try:
        platforms = await start_platforms(world.settings.config_dir)
    except BaseException:
        await partners.close()
        raise
    return LookupWorld(world, partners, api_port, platforms)


async def delete_lookup_topology(lw: LookupWorld) -> None:
    names = Names(lw.settings.broker_namespace)
    await delete_topology(lw.world, names.partner_queues(list(PARTNER_CODES)))


@asynccontextmanager
async def running_gateway(
    home: Path, **options: Any
) -> AsyncIterator[tuple[LookupWorld, TestClient[Any, Any]]]:
    """The api and a worker in this process, the simulators on loopback, the real broker."""
    with scratch_database(home) as database_url:
        lw = await make_lookup_world(home, database_url, **options)
        client: TestClient[Any, Any] = TestClient(TestServer(create_app(lw.settings), port=lw.api_port))
        await client.start_server()
        stop = asyncio.Event()
        task = asyncio.create_task(Worker(lw.settings).run(stop))
        try:
            yield lw, client
        finally:
            stop.set()
            await asyncio.wait_for(task, 30)
            await client.close()
            await lw.platforms.close()
            await lw.partners.close()
            await delete_lookup_topology(lw)


@asynccontextmanager
async def lookup_processes(
    home: Path,
    processes: Callable[[LookupWorld], GatewayProcesses] | None = None,
    transport: str = "direct",
) -> AsyncIterator[tuple[LookupWorld, GatewayProcesses]]:
    """The real api and worker processes against the simulators, with deadlines long enough that
    every source answers (for correctness and throughput runs, not deadline tests). ``processes`` makes
    them another way (a cluster's node list): their broker's topology is then its owner's to remove."""
    deadlines = dict.fromkeys(("land", "bank", "tax", "vehicle", "population"), "900s")
    with scratch_database(home) as database_url:
        lw = await make_lookup_world(
            home, database_url, callback_delay=1.0, deadlines=deadlines, transport=transport
        )
        procs = (processes or _local_processes(home))(lw)
        procs.start("api")
        procs.start("worker")
        try:
            await procs.wait_api()
            yield lw, procs
        finally:
            procs.stop_all()
            await lw.platforms.close()
            await lw.partners.close()
            if processes is None:
                await delete_lookup_topology(lw)


def _local_processes(home: Path) -> Callable[[LookupWorld], GatewayProcesses]:
    return lambda lw: GatewayProcesses(lw.world, home / "logs", port=lw.api_port)
