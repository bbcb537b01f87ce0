"""Benchmark ``35-transports``: what a partner call costs the gateway on each transport — directly, through
an X-Road security server (REST and SOAP), through an LGSP — measured in the worker's own terms: calls per
second through the partner's guard, latency, and the gateway process's CPU time per call.

The partners and the simulated platforms run in their own process (``run.py simulate --partners-only`` on a
configuration with ``[platforms]``, as ``run.py demo --platforms`` writes it), so this process's CPU time
is the gateway's side alone: the connector, the transport (X-Road headers, request hashes, the SOAP
envelope rewritten and read twice; the LGSP token), the guard, HTTP."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
from pathlib import Path

import aiohttp
import pytest

from gateway.connectors.base import LookupRequest, Subject
from gateway.connectors.registry import build_connectors
from gateway.connectors.resilience import GuardedConnector
from gateway.demo import LGSP_SECRETS, copy_config, write_platforms
from gateway.partners import Partner, load_partners, load_platforms
from tests.bench.results import Row, Section, record
from tests.conftest import ROOT
from tests.support.bench_lookups import Load, closed_loop
from tests.support.lookup_requests import STATED

pytestmark = [pytest.mark.bench]
COMMAND = "make bench PYTEST_ARGS=tests/bench/test_bench_transports.py"
CONCURRENCY = 8
HOLD = 6.0
#: (row, partner code, transport it is measured on).
VARIANTS = [
    ("Bank, REST, direct", "BANK-VCB", "direct"),
    ("Bank, REST, through the LGSP", "BANK-VCB", "lgsp"),
    ("Land registry, SOAP, direct", "LAND-REG", "direct"),
    ("Land registry, SOAP, through X-Road", "LAND-REG", "xroad"),
]


def request(partner: Partner, n: int) -> LookupRequest:
    return LookupRequest(
        request_ref=f"bench-{partner.code}-{n}",
        inquiry_id=f"inq-{n}",
        source_id=partner.source_id,
        partner_code=partner.code,
        kind=partner.kind,
        subject=Subject(id_number="001085012345", full_name="Nguyễn Văn An"),
        case_ref="THA-HN-2026-000123",
        purpose="civil_judgment_enforcement",
        **STATED,
    )


def as_direct(partner: Partner) -> Partner:
    return partner.model_copy(update={"transport": "direct", "xroad": None, "lgsp": None})


async def measure(guard: GuardedConnector) -> tuple[Load, float]:
    """Closed loop through the guard; the CPU time this process spent per completed call (µs)."""

    async def one(n: int) -> None:
        outcome = await guard.call(request(guard.partner, n))
        assert outcome.status in ("found", "not_found"), outcome

    cpu0 = time.process_time()
    load = await closed_loop(one, CONCURRENCY, warmup=1.0, hold=HOLD)
    cpu = time.process_time() - cpu0
    # Calls made during the warm-up and the hold alike cost CPU: count them all.
    calls = len(load.latencies) + round(load.rate * 1.0)
    return load, cpu / max(calls, 1) * 1e6


async def test_what_each_transport_costs_a_call(tmp_path: Path) -> None:
    began = time.perf_counter()
    config = tmp_path / "config"
    copy_config(config)
    write_platforms(config)
    env = {
        **os.environ,
        **LGSP_SECRETS,
        "GATEWAY_CONFIG_DIR": str(config),
        "GATEWAY_DEMO_KEYS": str(tmp_path / "keys"),
        "GATEWAY_LOG_LEVEL": "WARNING",
    }
    os.environ.update(LGSP_SECRETS)
    for p in load_partners(config):
        if p.credentials:
            env[p.credentials] = os.environ[p.credentials] = "bench-token"
    log = (tmp_path / "simulate.log").open("wb")
    sims = subprocess.Popen(
        [sys.executable, str(ROOT / "run.py"), "simulate", "--partners-only"],
        env=env,
        cwd=ROOT,
        stdout=log,
        stderr=log,
    )
    results: dict[str, tuple[Load, float]] = {}
    try:
        partners = {p.code: p for p in load_partners(config)}
        async with aiohttp.ClientSession() as session:
            for _ in range(100):  # the simulators and platforms listening
                try:
                    async with session.get("http://127.0.0.1:9120/_sim/stats") as resp:
                        if resp.status == 200:
                            break
                except aiohttp.ClientError:
                    pass
                await asyncio.sleep(0.2)
            for name, code, transport in VARIANTS:
                partner = partners[code] if transport != "direct" else as_direct(partners[code])
                connectors = await build_connectors([partner], session, platforms=load_platforms(config))
                guard = GuardedConnector(partner, connectors[code])
                results[name] = await measure(guard)
                await guard.close()
                load, cpu = results[name]
                print(f"\nBENCH {name}: {load.summary('calls')}, gateway CPU {cpu:.0f} µs/call")
    finally:
        sims.terminate()
        sims.wait(10)
        log.close()

    rows = []
    for name, _code, transport in VARIANTS:
        load, cpu = results[name]
        base_name = next(n for n, c, t in VARIANTS if c == _code and t == "direct")
        base_load, base_cpu = results[base_name]
        rows.append(
            Row(
                name=name,
                figure=f"{load.summary('calls').replace(f'concurrency {16}', f'concurrency {CONCURRENCY}')}; "
                f"gateway CPU {cpu:.0f} µs/call",
                reference=""
                if transport == "direct"
                else f"direct: {base_load.rate:.0f} calls/s, {base_cpu:.0f} µs/call",
                ratio=None if transport == "direct" else round(cpu / base_cpu, 2),
                values={**load.values(), "cpu_us_per_call": round(cpu, 1), "concurrency": CONCURRENCY},
            )
        )
    record(
        Section(
            key="35-transports",
            title="What a partner call costs on each transport",
            command=COMMAND,
            rows=rows,
            notes=[
                f"Closed loop at concurrency {CONCURRENCY} through the partner's guard (GuardedConnector: "
                f"breaker, retry policy, slots, timeout) for {HOLD:.0f} s after a 1 s warm-up, one partner "
                "at a time.",
                "The partner simulators and the simulated platforms (X-Road security server, LGSP) run in "
                "their own process (`run.py simulate --partners-only` on the configuration `run.py demo "
                "--platforms` writes): latency includes their hop, the CPU figure is this process's alone "
                "(time.process_time over every call of the run, warm-up included). Ratio: CPU per call "
                "against the same partner called directly.",
                "Through X-Road the transport parses the connector's envelope, inserts six headers, "
                "hashes the bytes sent (SHA-512), then parses the answer, checks the echoed headers and "
                "the request hash and strips the headers before zeep reads it; through the LGSP it adds "
                "the cached OAuth2 token and the lgspaccesstoken and reads the platform's transaction id.",
                f"Section duration: {time.perf_counter() - began:.0f} s.",
            ],
        )
    )
