"""What the lookup, scale, backlog, worker and database benchmarks share.

- :func:`start_sims`: the partner simulators answering at once (no added latency, no injected errors),
  each wrapped in a timing middleware so the partner's own handling time of every call is known.
- :func:`lookup_install`: an isolated installation whose configuration points at those simulators, with
  any number of bank partners (the shipped five, then Vietnam's other banks, each one line of its
  ``banks.toml`` under ``[defaults.bank]``, served by the simulator under ``/banks/<CODE>``).
- :func:`drive_lookups`: closed-loop clients submitting asset inquiries for a fixed hold, each timed
  from submission to its final status.
- :func:`raw_fanout`: the broker reference, a bare aio-pika request/reply fan-out of a lookup's shape.
- :func:`broker_figures`: the broker's queue count, file descriptors and memory (``rabbitmqctl``), and
  :func:`delete_install_topology`, which leaves nothing of an installation on the broker.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import shutil
import statistics
import subprocess
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aio_pika
import aiohttp
import tomli_w
from aio_pika.abc import AbstractIncomingMessage
from aiohttp import web
from aiohttp.typedefs import Handler

from gateway.amqp.names import Names
from gateway.demo import bank_directory
from gateway.partners import BANKS_FILE
from gateway.security.clients import ClientStore
from gateway.security.keys import public_pem
from gateway.simulators.partners import banks, land, population, tax, vehicles
from gateway.simulators.partners.behaviour import ADMIN_PREFIX, Behaviour
from gateway.simulators.partners.servers import PATHS
from gateway.storage.migrate import upgrade
from tests.bench.support import BENCH_ENV
from tests.conftest import ROOT, World, fresh_namespace, make_world
from tests.support.gateway_procs import BROKER, GatewayProcesses, delete_topology, free_port
from tests.test_asset_inquiry_flow import inquiry

#: Debtors asked about, in turn (seeded: some hold assets, some not).
IDS = ["001085012345", "001090000000", "001079000001"] + [f"0010{n:08d}" for n in range(1, 40)]
#: The simulator's bank paths (every one answers synchronously here).
BANK_PATHS = list(banks.PATHS.items())
OTHERS = {"LAND-REG": "land", "TAX": "tax", "POLICE-VEH": "vehicle", "POP-REG": "population"}
#: Client-side concurrency of every lookup run (gateway and raw reference alike).
CONCURRENCY = 16


# -- simulators ------------------------------------------------------------------------------


@dataclass
class Sims:
    """The five lookup simulators on loopback; ``handling`` holds each call's own handling time (s)."""

    base_urls: dict[str, str]
    runners: list[web.AppRunner]
    handling: list[float] = field(default_factory=list)

    def endpoint(self, kind: str, code: str) -> str:
        return self.base_urls[kind] + PATHS[kind][code]

    async def close(self) -> None:
        for runner in self.runners:
            await runner.cleanup()


async def start_sims() -> Sims:
    factories: dict[str, Callable[[Behaviour], web.Application]] = {
        "land": land.make_app,
        "bank": lambda b: banks.make_app(b, async_banks=frozenset()),
        "tax": tax.make_app,
        "vehicle": vehicles.make_app,
        "population": population.make_app,
    }
    sims = Sims({}, [])

    @web.middleware
    async def timed(request: web.Request, handler: Handler) -> web.StreamResponse:
        if ADMIN_PREFIX in request.path:
            return await handler(request)
        t0 = time.perf_counter()
        try:
            return await handler(request)
        finally:
            sims.handling.append(time.perf_counter() - t0)

    try:
        for kind, factory in factories.items():
            app = factory(Behaviour(latency=(0.0, 0.0), error_rate=0.0))
            app.middlewares.insert(0, timed)  # outermost: the whole of the partner's handling
            runner = web.AppRunner(app, shutdown_timeout=1.0)
            await runner.setup()
            sims.runners.append(runner)
            site = web.TCPSite(runner, "127.0.0.1", 0)
            await site.start()
            sims.base_urls[kind] = f"http://127.0.0.1:{runner.addresses[-1][1]}"
    except BaseException:
        await sims.close()
        raise
    return sims


# -- installation ----------------------------------------------------------------------------


def bank_codes(n: int) -> list[str]:
    """The simulator's five banks first, then Vietnam's other banks (``config/bank_directory.toml``), then
    test banks: up to the demo's cap, each served by the simulator under its own code."""
    return [code for code, _ in bank_directory(n)]


#: What every partner of the benchmarks is given; banks take it as ``[defaults.bank]``.
POLICY: dict[str, Any] = {
    "timeout_seconds": 10,
    "concurrency": 8,
    "retry": {"attempts": 2, "min_seconds": 0.05, "max_seconds": 0.2},
    "breaker": {"failures": 5, "recovery_seconds": 10},
    "deadline": "900s",
}


def partner_blocks(sims: Sims, n_banks: int, others: bool = True) -> list[dict[str, Any]]:
    """Every partner as a full ``[[partner]]`` block (the other lookup sources, then ``n_banks`` banks)."""
    return [
        _with_policy(entry) | {"protocol": "soap" if entry["kind"] == "land" else "rest"}
        for entry in (_other_entries(sims) if others else []) + bank_entries(sims, n_banks)
    ]


def bank_entries(sims: Sims, n_banks: int) -> list[dict[str, Any]]:
    """``n_banks`` banks as ``banks.toml`` lines: code, kind and endpoint on the simulator."""
    out: list[dict[str, Any]] = []
    for code in bank_codes(n_banks):
        os.environ[f"GATEWAY_SECRET_{code.replace('-', '_')}"] = "simulator-token"
        out.append({"code": code, "kind": "bank", "endpoint": sims.base_urls["bank"] + banks.bank_path(code)})
    return out


def _other_entries(sims: Sims) -> list[dict[str, Any]]:
    entries: list[dict[str, Any]] = []
    for code, kind in OTHERS.items():
        entry: dict[str, Any] = {"code": code, "kind": kind, "endpoint": sims.endpoint(kind, code)}
        if kind == "land":
            entry["wsdl"] = str(ROOT / "config" / "wsdl" / "land-registry.wsdl")
        os.environ[f"GATEWAY_SECRET_{code.replace('-', '_')}"] = "simulator-token"
        entries.append(entry)
    return entries


def _with_policy(entry: dict[str, Any]) -> dict[str, Any]:
    return entry | POLICY | {"credentials": f"GATEWAY_SECRET_{entry['code'].replace('-', '_')}"}


@dataclass
class Install:
    world: World
    codes: list[str]
    api_port: int


def lookup_install(home: Path, database_url: str, sims: Sims, n_banks: int, others: bool = True) -> Install:
    api_port = free_port()
    world = make_world(
        home,
        database_url,
        api={"public_url": f"http://127.0.0.1:{api_port}", "port": api_port, "max_wait_seconds": 30},
    )
    case = world.case_system
    ClientStore(world.settings.clients_dir).add(
        case.id,
        public_pem(case.key.public_key()),
        ["messages.read", "messages.confirm", "assets.inquire", "documents.send"],
        deliver_to=f"amqp:{world.case_queue}",
    )
    # Banks as a real installation declares many: their shared settings once, then one line each.
    others_blocks = [
        _with_policy(e) | {"protocol": "soap" if e["kind"] == "land" else "rest"}
        for e in (_other_entries(sims) if others else [])
    ]
    bank_lines = [{k: v for k, v in e.items() if k != "kind"} for e in bank_entries(sims, n_banks)]
    defaults = {"bank": POLICY | {"protocol": "rest", "credentials": "GATEWAY_SECRET_{CODE}"}}
    config = world.settings.config_dir
    (config / "partners.toml").write_text(
        tomli_w.dumps({"defaults": defaults, "partner": others_blocks}), "utf-8"
    )
    (config / BANKS_FILE).write_text(tomli_w.dumps({"bank": bank_lines}), "utf-8")
    for name in ("legal_bases.toml", "holidays.toml"):
        (config / name).write_text((ROOT / "config" / name).read_text("utf-8"), "utf-8")
    codes = [b["code"] for b in others_blocks] + [b["code"] for b in bank_lines]
    return Install(world, codes, api_port)


@dataclass
class BenchProcesses(GatewayProcesses):
    """Several workers at once, each under its own name; a fixed /metrics port for the first worker."""

    metrics_port: int = 0

    def start_as(self, name: str, role: str, metrics_port: int = 0) -> None:
        self.logs.mkdir(parents=True, exist_ok=True)
        import subprocess
        import sys

        env = self.env() | BENCH_ENV | {"GATEWAY_WORKER__METRICS_PORT": str(metrics_port)}
        with (self.logs / f"{name}.log").open("ab") as out:
            self.procs[name] = subprocess.Popen(
                [sys.executable, str(ROOT / "run.py"), role], env=env, cwd=ROOT, stdout=out, stderr=out
            )

    def pid(self, name: str) -> int:
        return self.procs[name].pid


@asynccontextmanager
async def gateway_running(
    home: Path, database_url: str, sims: Sims, n_banks: int, others: bool = True, workers: int = 1
) -> AsyncIterator[tuple[Install, BenchProcesses]]:
    """api + ``workers`` workers (``worker``, ``worker2``…) over a migrated database; the first worker's
    /metrics on ``procs.metrics_port``. Waits until every partner queue has a consumer."""
    install = lookup_install(home, database_url, sims, n_banks, others)
    await upgrade(database_url)
    procs = BenchProcesses(install.world, home / "logs", port=install.api_port, metrics_port=free_port())
    try:
        procs.start_as("api", "api")
        for n in range(workers):
            procs.start_as(
                "worker" if n == 0 else f"worker{n + 1}", "worker", procs.metrics_port if n == 0 else 0
            )
        await procs.wait_api()
        await wait_consumers(install, workers)
        yield install, procs
    finally:
        procs.stop_all()
        await delete_install_topology(install)


async def wait_consumers(install: Install, workers: int, timeout: float = 60) -> None:
    """Until every partner's request queue has ``workers`` consumers (the worker is ready to look up)."""
    names = Names(install.world.settings.broker_namespace)
    deadline = time.monotonic() + timeout
    conn = await aio_pika.connect(BROKER)
    async with conn:
        while True:
            channel = await conn.channel()
            try:
                ready = True
                for code in install.codes:
                    queue = await channel.declare_queue(names.deliver(code), passive=True)
                    if (queue.declaration_result.consumer_count or 0) < workers:
                        ready = False
                        break
                if ready:
                    return
            except aio_pika.exceptions.ChannelClosed:
                pass
            finally:
                if not channel.is_closed:
                    await channel.close()
            assert time.monotonic() < deadline, "the worker never consumed every partner queue"
            await asyncio.sleep(0.2)


async def delete_install_topology(install: Install) -> None:
    """Every queue and exchange of the installation: those its names give, then, read from the broker
    itself (``rabbitmqctl``), whatever else carries its namespace (a topology that changed, a queue of a
    kind this list does not know yet)."""
    names = Names(install.world.settings.broker_namespace)
    try:
        await delete_topology(install.world, names.partner_queues(list(install.codes)))
    finally:
        await delete_namespace(install.world.settings.broker_namespace)


async def delete_namespace(namespace: str) -> None:
    """Every queue and exchange whose name starts with ``<namespace>.``, as rabbitmqctl lists them."""
    queues = await asyncio.to_thread(broker_names, "list_queues", namespace)
    exchanges = await asyncio.to_thread(broker_names, "list_exchanges", namespace)
    if not queues and not exchanges:
        return
    conn = await aio_pika.connect(BROKER)
    async with conn:
        channel = await conn.channel()
        for name in queues or []:
            await channel.queue_delete(name)
        for name in exchanges or []:
            await channel.exchange_delete(name)


async def install_leftovers(install: Install) -> list[str]:
    """Queues of the installation still on the broker: as rabbitmqctl lists them, else (no rabbitmqctl
    here) those of its names that a passive declaration still finds."""
    listed = await asyncio.to_thread(broker_names, "list_queues", install.world.settings.broker_namespace)
    if listed is not None:
        return listed
    names = Names(install.world.settings.broker_namespace)
    known = names.partner_queues(list(install.codes))
    found = []
    conn = await aio_pika.connect(BROKER)
    async with conn:
        for name in known:
            channel = await conn.channel()
            try:
                await channel.declare_queue(name, passive=True)
                found.append(name)
            except aio_pika.exceptions.ChannelClosed:
                continue  # gone, as it should be
            if not channel.is_closed:
                await channel.close()
    return found


# -- the broker's own figures ----------------------------------------------------------------

#: Queues each bank partner declares: its work queue (lookups and documents) and urgent lane, each with
#: its parking queue (all quorum queues); the estimate of a step's needs until one is measured.
QUEUES_PER_BANK = 4


def _ctl(*args: str) -> str | None:
    """``rabbitmqctl`` output, or None when it is not installed, not allowed or did not answer."""
    ctl = shutil.which("rabbitmqctl")
    if ctl is None:
        return None
    try:
        done = subprocess.run([ctl, *args], capture_output=True, text=True, timeout=60, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return done.stdout if done.returncode == 0 else None


def broker_names(listing: str, namespace: str | None = None) -> list[str] | None:
    """Names of ``list_queues`` or ``list_exchanges``, those of ``namespace`` only when given."""
    out = _ctl(listing, "name", "--quiet", "--no-table-headers")
    if out is None:
        return None
    names = [line.strip() for line in out.splitlines() if line.strip()]
    return [n for n in names if namespace is None or n.startswith(namespace + ".")]


@dataclass(frozen=True)
class BrokerFigures:
    """What the broker says of itself; a None is a figure it could not give (no rabbitmqctl, no rights)."""

    queues: int | None  # every queue on the broker (it is shared: other installations' too)
    install_queues: int | None  # those of one installation's namespace
    fds_used: int | None
    fds_limit: int | None
    memory_mib: float | None

    def describe(self) -> str:
        if self.fds_used is None and self.queues is None:
            return "broker figures unavailable (rabbitmqctl not usable here)"
        mine = f" ({self.install_queues} of this installation)" if self.install_queues is not None else ""
        memory = f"{self.memory_mib:.0f} MiB" if self.memory_mib is not None else "memory ?"
        return (
            f"broker: {self.queues} queues{mine}, {self.fds_used}/{self.fds_limit} file descriptors, {memory}"
        )

    def values(self) -> dict[str, Any]:
        return {
            "broker_queues": self.queues,
            "broker_install_queues": self.install_queues,
            "broker_fds_used": self.fds_used,
            "broker_fds_limit": self.fds_limit,
            "broker_memory_mib": None if self.memory_mib is None else round(self.memory_mib, 1),
        }


def broker_figures(namespace: str | None = None) -> BrokerFigures:
    """Queues (all, and ``namespace``'s), file descriptors used and allowed, and memory, from
    ``rabbitmqctl status --formatter json`` and ``rabbitmqctl list_queues``."""
    fds_used = fds_limit = None
    memory = None
    status = _ctl("status", "--formatter", "json")
    if status is not None:
        try:
            parsed = json.loads(status)
            fds = parsed.get("file_descriptors", {})
            fds_used, fds_limit = fds.get("total_used"), fds.get("total_limit")
            total = parsed.get("memory", {}).get("total", {})
            used = (
                total.get(parsed.get("memory", {}).get("strategy", "rss"))
                if isinstance(total, dict)
                else total
            )
            memory = used / 2**20 if isinstance(used, int | float) else None
        except (ValueError, AttributeError):
            pass
    every = broker_names("list_queues")
    mine = None if every is None or namespace is None else [n for n in every if n.startswith(namespace + ".")]
    return BrokerFigures(
        None if every is None else len(every),
        None if mine is None else len(mine),
        fds_used,
        fds_limit,
        memory,
    )


#: Queues an installation declares besides its banks' (callbacks, the case system's and other
#: recipients' delivery queues, with their parking queues), until a step measures it.
INSTALL_QUEUES = 15
#: File descriptors the broker is taken to need per quorum queue (its Raft log's open segment files, which
#: the file-handle cache cannot close for long): a rule of thumb that a 20-bank installation (about 135
#: queues) fits a broker limited to 1,024 descriptors beside other users' queues, and 300 queues do not.
#: While it has room the cache keeps many more open (8-13 a queue at 1 and 5 banks here), so the
#: descriptors in use are no measure of the need.
FDS_PER_QUEUE = float(os.environ.get("GATEWAY_BENCH_FDS_PER_QUEUE", "3"))


def step_queues(n_banks: int, seen: dict[int, int]) -> int:
    """Queues an installation of ``n_banks`` will declare: fitted on ``seen`` (banks -> queues of the
    installations measured), else :data:`QUEUES_PER_BANK` a bank and :data:`INSTALL_QUEUES`."""
    per_bank, base = float(QUEUES_PER_BANK), float(INSTALL_QUEUES)
    steps = sorted(seen.items())
    if len(steps) >= 2 and steps[-1][0] != steps[-2][0]:
        (n1, q1), (n2, q2) = steps[-2], steps[-1]
        per_bank = (q2 - q1) / (n2 - n1)
        base = q2 - per_bank * n2
    elif steps:
        base = steps[-1][1] - per_bank * steps[-1][0]
    return max(0, round(base + per_bank * n_banks))


def too_many_for_the_broker(
    new_queues: int, now: BrokerFigures, per_queue: float = FDS_PER_QUEUE, headroom: float = 0.9
) -> str | None:
    """Why ``new_queues`` more quorum queues would not fit the broker's file-descriptor limit (with
    ``headroom``: the broker is shared), or None when they fit or the broker does not say."""
    if now.queues is None or now.fds_limit is None:
        return None
    needed = (now.queues + new_queues) * per_queue
    if needed <= headroom * now.fds_limit:
        return None
    return (
        f"{now.queues} queues on the broker + {new_queues} more need about {needed:.0f} file descriptors "
        f"({per_queue:g} per quorum queue), over {headroom:.0%} of its limit of {now.fds_limit} "
        "(raise the broker's limit, e.g. LimitNOFILE of its service, to measure it)"
    )


# -- load ------------------------------------------------------------------------------------


@dataclass
class Load:
    """A closed-loop run: completions within the hold, and the latencies of requests started in it."""

    completed: int
    hold: float
    latencies: list[float]

    @property
    def rate(self) -> float:
        return self.completed / self.hold

    def q(self, p: int) -> float:
        return percentile(self.latencies, p)

    def summary(self, unit: str) -> str:
        return (
            f"{self.rate:.1f} {unit}/s, p50 {self.q(50) * 1000:.0f} ms, p99 {self.q(99) * 1000:.0f} ms "
            f"(concurrency {CONCURRENCY}, {self.completed} in {self.hold:.0f} s)"
        )

    def values(self) -> dict[str, Any]:
        return {
            "per_second": round(self.rate, 2),
            "p50_ms": round(self.q(50) * 1000, 1),
            "p99_ms": round(self.q(99) * 1000, 1),
            "completed": self.completed,
            "hold_seconds": self.hold,
            "concurrency": CONCURRENCY,
        }


def percentile(values: list[float], p: int) -> float:
    if not values:
        return float("nan")
    if len(values) == 1:
        return values[0]
    return statistics.quantiles(values, n=100, method="inclusive")[p - 1]


async def closed_loop(
    one: Callable[[int], Awaitable[None]], concurrency: int, warmup: float, hold: float
) -> Load:
    """``concurrency`` loops calling ``one`` back to back: warm-up, then ``hold`` seconds measured."""
    loop = asyncio.get_running_loop()
    start = loop.time()
    measure_from, measure_to = start + warmup, start + warmup + hold
    latencies: list[float] = []
    completed = 0
    counter = iter(range(10**9))

    async def client() -> None:
        nonlocal completed
        while loop.time() < measure_to:
            began = loop.time()
            await one(next(counter))
            ended = loop.time()
            if measure_from <= ended <= measure_to:
                completed += 1
            if began >= measure_from:
                latencies.append(ended - began)

    await asyncio.gather(*(client() for _ in range(concurrency)))
    return Load(completed, hold, latencies)


async def drive_lookups(
    url: str,
    world: World,
    sources: list[Any],
    warmup: float = 2.0,
    hold: float = 8.0,
    concurrency: int = CONCURRENCY,
) -> Load:
    """Asset inquiries back to back, each ``Prefer: wait=30`` (the api answers 200 once every source
    answered); a 202 is followed by polling. Every one must end ``complete``."""
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=concurrency)) as http:

        async def one(i: int) -> None:
            body = inquiry(IDS[i % len(IDS)], sources=sources)
            headers = world.case_headers() | {"Prefer": "wait=30"}
            async with http.post(f"{url}/v1/asset-inquiries", json=body, headers=headers) as resp:
                assert resp.status in (200, 202), await resp.text()
                view = await resp.json()
            give_up = time.monotonic() + 60
            while view["status"] in ("pending", "partial"):
                assert time.monotonic() < give_up, "an inquiry stayed open for a minute"
                await asyncio.sleep(0.05)
                async with http.get(
                    f"{url}/v1/asset-inquiries/{view['inquiry_id']}", headers=world.case_headers()
                ) as r:
                    assert r.status == 200, await r.text()
                    view = await r.json()
            assert view["status"] == "complete", view["status"]
            assert all(s["status"] in ("found", "not_found") for s in view["sources"]), view["sources"]

        return await closed_loop(one, concurrency, warmup, hold)


def lookup_sources(n_sources: int) -> list[Any]:
    """``n_sources`` from land, tax, vehicle, population and the five banks (6: two banks; 9: all)."""
    banks_asked = [code for code, _ in BANK_PATHS][: n_sources - len(OTHERS)]
    return ["land", "tax", "vehicle", "population", {"bank": banks_asked}]


# -- worker metrics --------------------------------------------------------------------------

_SAMPLE = re.compile(r"^(gateway_partner_call_seconds_(?:bucket|sum|count))\{([^}]*)\}\s+(\S+)$")


async def partner_call_histogram(port: int) -> tuple[dict[float, float], float, float]:
    """The worker's ``gateway_partner_call_seconds`` over every partner: cumulative buckets, sum, count."""
    async with aiohttp.ClientSession() as http, http.get(f"http://127.0.0.1:{port}/metrics") as resp:
        text = await resp.text()
    buckets: dict[float, float] = {}
    total = count = 0.0
    for line in text.splitlines():
        m = _SAMPLE.match(line)
        if not m:
            continue
        name, labels, value = m.group(1), m.group(2), float(m.group(3))
        if name.endswith("_bucket"):
            le = re.search(r'le="([^"]+)"', labels)
            assert le is not None
            bound = float("inf") if le.group(1) == "+Inf" else float(le.group(1))
            buckets[bound] = buckets.get(bound, 0.0) + value
        elif name.endswith("_sum"):
            total += value
        else:
            count += value
    return buckets, total, count


def histogram_quantile(q: float, buckets: dict[float, float]) -> float:
    """Prometheus-style: linear interpolation inside the bucket holding the q-th observation."""
    bounds = sorted(buckets)
    count = buckets[bounds[-1]]
    if count == 0:
        return float("nan")
    rank = q * count
    lower, below = 0.0, 0.0
    for bound in bounds:
        cumulative = buckets[bound]
        if cumulative >= rank:
            if bound == float("inf"):
                return lower
            inside = cumulative - below
            return lower + (bound - lower) * ((rank - below) / inside if inside else 0.0)
        lower, below = bound, cumulative
    return lower


def histogram_delta(after: dict[float, float], before: dict[float, float]) -> dict[float, float]:
    return {b: after[b] - before.get(b, 0.0) for b in after}


# -- process memory --------------------------------------------------------------------------


def rss_mib(pid: int) -> float:
    with open(f"/proc/{pid}/status", encoding="ascii") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


# -- the broker reference --------------------------------------------------------------------


def raw_request_body() -> bytes:
    """About the size of a queued lookup request."""
    body = inquiry(IDS[0]) | {"request_ref": str(uuid.uuid4()), "inquiry_id": str(uuid.uuid4())}
    return json.dumps(body, ensure_ascii=False).encode()


RAW_REPLY = json.dumps(
    {"status": "found", "match_status": "found", "rows": [{"account_number": "0011001234567"}] * 2}
).encode()


async def raw_fanout(
    n_sources: int, warmup: float = 1.0, hold: float = 4.0, concurrency: int = CONCURRENCY
) -> Load:
    """One request → ``n_sources`` quorum queues (a topic exchange, one routing key per source, persistent,
    publisher confirms) → each source's consumer answers at once on a replies exchange → one replies quorum
    queue → the requester matches the correlation id; a fan-out is done when all ``n_sources`` replied."""
    ns = fresh_namespace() + ".raw"
    requests_x, replies_x, replies_q = f"{ns}.requests", f"{ns}.replies", f"{ns}.replies.q"
    codes = [f"SRC{i}" for i in range(n_sources)]
    source_queues = [f"{ns}.req.{c}" for c in codes]
    quorum: dict[str, Any] = {"x-queue-type": "quorum"}
    requester = await aio_pika.connect(BROKER)
    answering = await aio_pika.connect(BROKER)
    waiting: dict[str, tuple[asyncio.Future[None], list[int]]] = {}
    try:
        ch = await requester.channel(publisher_confirms=True)
        await ch.set_qos(prefetch_count=100)
        x_req = await ch.declare_exchange(requests_x, aio_pika.ExchangeType.TOPIC, durable=True)
        x_rep = await ch.declare_exchange(replies_x, aio_pika.ExchangeType.TOPIC, durable=True)
        replies = await ch.declare_queue(replies_q, durable=True, arguments=quorum)
        await replies.bind(x_rep, routing_key="#")

        async def on_reply(message: AbstractIncomingMessage) -> None:
            entry = waiting.get(message.correlation_id or "")
            if entry is not None:
                entry[1][0] -= 1
                if entry[1][0] == 0 and not entry[0].done():
                    entry[0].set_result(None)
            await message.ack()

        await replies.consume(on_reply)
        for code, name in zip(codes, source_queues, strict=True):
            queue = await ch.declare_queue(name, durable=True, arguments=quorum)
            await queue.bind(x_req, routing_key=code)
            src = await answering.channel(publisher_confirms=True)
            await src.set_qos(prefetch_count=100)
            src_queue = await src.get_queue(name, ensure=False)
            src_replies = await src.get_exchange(replies_x, ensure=False)

            async def answer(
                message: AbstractIncomingMessage,
                x: aio_pika.abc.AbstractExchange = src_replies,
                c: str = code,
            ) -> None:
                reply = aio_pika.Message(
                    RAW_REPLY,
                    correlation_id=message.correlation_id,
                    message_id=message.message_id,
                    delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
                )
                await x.publish(reply, routing_key=c)
                await message.ack()

            await src_queue.consume(answer)
        body = raw_request_body()

        async def one(_i: int) -> None:
            corr = str(uuid.uuid4())
            done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
            waiting[corr] = (done, [n_sources])
            await asyncio.gather(
                *(
                    x_req.publish(
                        aio_pika.Message(
                            body,
                            correlation_id=corr,
                            message_id=str(uuid.uuid4()),
                            delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
                        ),
                        routing_key=code,
                    )
                    for code in codes
                )
            )
            await asyncio.wait_for(done, 30)
            del waiting[corr]

        return await closed_loop(one, concurrency, warmup, hold)
    finally:
        await answering.close()
        await requester.close()
        async with await aio_pika.connect(BROKER) as conn:
            ch2 = await conn.channel()
            for name in [*source_queues, replies_q]:
                await ch2.queue_delete(name)
            for name in (requests_x, replies_x):
                await ch2.exchange_delete(name)


def results_of(key: str) -> dict[str, Any] | None:
    """Another section's recorded JSON (from this run or an earlier one), if there is one."""
    from tests.bench.results import RESULTS

    path = RESULTS / f"{key}.json"
    return json.loads(path.read_text("utf-8")) if path.exists() else None


async def partner_health_latency(database_url: str) -> dict[str, float]:
    """What the workers last wrote of their partners' calls (exact nearest-rank p50/p95 per partner, in
    whole ms, over their rolling window): call-weighted means over partners, and the largest p95."""
    from sqlalchemy import select

    from gateway.storage.database import Database
    from gateway.storage.tables import partner_health

    db = Database(database_url)
    try:
        async with db.read() as conn:
            rows = (await conn.execute(select(partner_health))).all()
    finally:
        await db.dispose()
    rows = [r for r in rows if r.calls and r.p50_ms is not None]
    calls = sum(r.calls for r in rows)
    if not calls:
        return {}
    return {
        "health_calls": calls,
        "health_p50_ms": sum(r.p50_ms * r.calls for r in rows) / calls,
        "health_p95_ms": sum(r.p95_ms * r.calls for r in rows) / calls,
        "health_p95_max_ms": max(r.p95_ms for r in rows),
    }


async def broker_answers(timeout: float = 10) -> bool:
    """Whether the broker opens a connection and a channel within ``timeout`` seconds."""
    try:
        conn = await aio_pika.connect(BROKER, timeout=timeout)
        async with conn:
            await asyncio.wait_for(conn.channel(), timeout)
    except (OSError, TimeoutError, aio_pika.exceptions.AMQPError):
        return False
    return True
