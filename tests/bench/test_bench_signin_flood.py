"""Section 75: what unauthenticated work can take from intake — push latency while 24 clients send wrong
console passwords as fast as they are answered, against the same api idle; and what single-use tokens
(one jti write per request) add to a push."""

from __future__ import annotations

import asyncio
import json
import re
import statistics
import subprocess
import sys
import time
from pathlib import Path

import aiohttp
import pytest

from tests.bench.results import ROOT, Row, Section, record
from tests.bench.support import BenchProcesses, delete_topology_or_error, ms
from tests.conftest import World, fresh_judgment, make_world
from tests.support.console import add_operator

pytestmark = [pytest.mark.bench, pytest.mark.rabbitmq]

PUSHES = 100
FLOODERS = 24
TARGET_FACTOR = 10
_CSRF = re.compile(r'name="csrf" value="([^"]+)"')
#: The worst case for the password checks: the throttles lifted, as if every attempt came from
#: another address and named another account; only the bounded pool stands between them and intake.
NO_THROTTLE = {
    "GATEWAY_OPS__SIGNIN_RATE_PER_ADDRESS": "1000000/minute",
    "GATEWAY_OPS__SIGNIN_FAILURES_PER_ACCOUNT": "1000000/minute",
}


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


async def push_latencies(http: aiohttp.ClientSession, url: str, world: World, n: int) -> list[float]:
    """``n`` judgments one after the other, each with a token of its own; milliseconds each."""
    out = []
    for _ in range(n):
        started = time.perf_counter()
        async with http.post(
            f"{url}/v1/judgments", json=fresh_judgment(), headers=world.court_headers()
        ) as r:
            assert r.status == 202, await r.text()
        out.append((time.perf_counter() - started) * 1000)
    return out


async def flood(http: aiohttp.ClientSession, url: str, stop: Path, statuses: list[int]) -> None:
    """One client sending wrong passwords back to back until the file ``stop`` exists (the sign-in form
    fetched once: its CSRF token holds for an hour)."""
    async with http.get(f"{url}/ops/login") as page:
        match = _CSRF.search(await page.text())
    assert match, "no csrf on the sign-in page"
    form = {"csrf": match.group(1), "username": "olga", "password": "not the password at all"}
    while not stop.exists():
        async with http.post(f"{url}/ops/login", data=form, allow_redirects=False) as resp:
            statuses.append(resp.status)
            await resp.read()
        stop.with_suffix(".started").touch()  # the measuring side waits for this


async def _flood_all(url: str, stop: Path) -> list[int]:
    statuses: list[int] = []
    # Each flooder its own cookies (an unsafe jar: the api is reached by IP address).
    jars = [aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) for _ in range(FLOODERS)]
    try:
        await asyncio.gather(*(flood(j, url, stop, statuses) for j in jars))
    finally:
        for j in jars:
            await j.close()
    return statuses


def flood_main(url: str, stop: str, out: str) -> None:
    """The flood in a process of its own, so that its client work does not slow the measuring client."""
    statuses = asyncio.run(_flood_all(url, Path(stop)))
    Path(out).write_text(json.dumps(statuses))


async def measure(tmp_path: Path, single_use: bool, with_flood: bool) -> tuple[list[float], list[int]]:
    world = make_world(tmp_path, f"sqlite+aiosqlite:///{tmp_path}/gateway.db")
    add_operator(world.settings, "olga")
    env = NO_THROTTLE | {"GATEWAY_AUTH__SINGLE_USE_TOKENS": "true" if single_use else "false"}
    procs = BenchProcesses(world, tmp_path / "logs", extra_env=env)
    procs.start("api")
    statuses: list[int] = []
    try:
        await procs.wait_api()
        async with aiohttp.ClientSession() as http:
            await push_latencies(http, procs.url, world, 20)  # warm-up
            if not with_flood:
                return await push_latencies(http, procs.url, world, PUSHES), statuses
            out, stop = tmp_path / "flood.json", tmp_path / "flood.stop"
            code = (
                "from tests.bench.test_bench_signin_flood import flood_main; "
                f"flood_main({procs.url!r}, {str(stop)!r}, {str(out)!r})"
            )
            flooder = subprocess.Popen([sys.executable, "-c", code], cwd=ROOT)
            try:
                started = stop.with_suffix(".started")
                deadline = time.monotonic() + 120
                while not started.exists():
                    assert flooder.poll() is None and time.monotonic() < deadline, "the flood did not start"
                    await asyncio.sleep(0.1)
                await asyncio.sleep(3)  # the flood at full strength first
                latencies = await push_latencies(http, procs.url, world, PUSHES)
            finally:
                stop.touch()
                await asyncio.to_thread(flooder.wait, 60)
            statuses = json.loads(out.read_text())
            return latencies, statuses
    finally:
        procs.stop_all()
        await delete_topology_or_error(world)


@pytest.mark.timeout(1200)
async def test_push_latency_during_a_sign_in_flood(tmp_path: Path) -> None:
    plain, _ = await measure(tmp_path / "plain", single_use=False, with_flood=False)
    idle, _ = await measure(tmp_path / "idle", single_use=True, with_flood=False)
    flooded, statuses = await measure(tmp_path / "flood", single_use=True, with_flood=True)
    idle_p50, flood_p50 = statistics.median(idle), statistics.median(flooded)
    ratio = flood_p50 / idle_p50
    counts = {s: statuses.count(s) for s in sorted(set(statuses))}
    rows = [
        Row(
            "Push latency, idle api (one push at a time, a fresh single-use token each)",
            f"p50 {ms(idle_p50)}, p95 {ms(percentile(idle, 0.95))}",
            values={"p50_ms": round(idle_p50, 2), "p95_ms": round(percentile(idle, 0.95), 2)},
        ),
        Row(
            f"Push latency during {FLOODERS} parallel wrong console sign-ins (throttles lifted)",
            f"p50 {ms(flood_p50)}, p95 {ms(percentile(flooded, 0.95))}",
            reference=f"idle p50 {ms(idle_p50)}",
            ratio=round(ratio, 2),
            target=f"≤ {TARGET_FACTOR}× idle",
            met=ratio <= TARGET_FACTOR,
            values={
                "p50_ms": round(flood_p50, 2),
                "p95_ms": round(percentile(flooded, 0.95), 2),
                "sign_in_answers": counts,
            },
        ),
        Row(
            "Push latency, idle, single-use tokens off (what the jti write costs: the difference)",
            f"p50 {ms(statistics.median(plain))}, p95 {ms(percentile(plain, 0.95))}",
            values={"p50_ms": round(statistics.median(plain), 2)},
        ),
    ]
    record(
        Section(
            key="75-signin-flood",
            title="Unauthenticated load: console sign-in flood and single-use tokens",
            command="make bench PYTEST_ARGS=tests/bench/test_bench_signin_flood.py",
            rows=rows,
            notes=[
                f"One api process on SQLite; {PUSHES} judgments pushed one after the other by one "
                f"client minting a token per request. The flood: {FLOODERS} clients each fetching the "
                "sign-in form and posting a wrong password, back to back, "
                f"with the per-address and per-account throttles lifted; answers seen: {counts} "
                "(401 checked and refused; 503 refused without a check by the full password-check pool, "
                "answered after ops.signin_refusal_delay_seconds). The flood runs in a process of its own "
                "on the same machine.",
            ],
        )
    )
    print(
        f"\nBENCH sign-in flood: push p50 idle {ms(idle_p50)}, during flood {ms(flood_p50)} "
        f"({ratio:.2f}×); single-use off p50 {ms(statistics.median(plain))}; sign-in answers {counts}"
    )
    assert ratio <= TARGET_FACTOR
