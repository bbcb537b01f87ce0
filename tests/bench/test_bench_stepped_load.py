"""Section 60: judgment intake under a constant offered rate, stepped up — 10, 50, 100, 200, 500, 1000
requests/s, each held for a fixed time — through the real api and worker. An open-loop generator (asyncio
+ aiohttp, this process) sends on schedule whatever the answers; latency counts from the scheduled send,
so a late send counts against the gateway. The knee is the first step whose p99 exceeds 100 ms or whose
achieved rate falls below 95% of the offered one. One unrecorded step at the lowest rate warms the gateway
first (connections, caches, SQLite's first pages): a knee is about steady load, not about the first
requests after a start."""

from __future__ import annotations

import asyncio
import statistics
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import aiohttp
import pytest

from tests.bench import documents
from tests.bench.references import bare_judgments
from tests.bench.results import Row, Section, record
from tests.bench.support import BareServer, BenchProcesses, delete_topology_or_error, ms
from tests.conftest import make_world

pytestmark = [pytest.mark.bench, pytest.mark.rabbitmq, pytest.mark.timeout(600)]

RATES = [10, 50, 100, 200, 500, 1000]
HOLD_S = 10
#: Requests awaiting an answer at once, at most; a send due while this many are out is counted as not
#: sent (the generator never queues: it would hide the server's limit behind its own).
MAX_IN_FLIGHT = 256
#: After a step's hold, answers still awaited get this long before the next step starts.
DRAIN_S = 10
KNEE_P99_MS = 100.0
KNEE_ACHIEVED = 0.95


@dataclass
class Step:
    offered: int
    achieved: float
    sent: int
    ok: int
    not_sent: int
    statuses: Counter[int]
    errors: int
    p50_ms: float
    p99_ms: float

    @property
    def knee(self) -> bool:
        return self.p99_ms > KNEE_P99_MS or self.achieved < KNEE_ACHIEVED * self.offered


async def step(
    http: aiohttp.ClientSession, url: str, headers: dict[str, str], template: str, rate: int
) -> Step:
    loop = asyncio.get_running_loop()
    nonce = documents.new_nonce()
    latencies: list[float] = []
    statuses: Counter[int] = Counter()
    errors = 0
    in_flight = 0
    not_sent = 0
    tasks: list[asyncio.Task[None]] = []

    async def one(n: int, scheduled: float) -> None:
        nonlocal in_flight, errors
        body = documents.fill(template, n, nonce).encode()
        try:
            async with http.post(url, data=body, headers=headers) as resp:
                await resp.read()
                statuses[resp.status] += 1
                if 200 <= resp.status < 300:
                    latencies.append(loop.time() - scheduled)
        except (aiohttp.ClientError, TimeoutError):
            errors += 1
        finally:
            in_flight -= 1

    start = loop.time()
    total = rate * HOLD_S
    for n in range(total):
        scheduled = start + n / rate
        delay = scheduled - loop.time()
        if delay > 0:
            await asyncio.sleep(delay)
        if in_flight >= MAX_IN_FLIGHT:
            not_sent += 1
            continue
        in_flight += 1
        tasks.append(asyncio.create_task(one(n, scheduled)))
    await asyncio.wait(tasks, timeout=DRAIN_S)
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    elapsed = max(loop.time() - start, HOLD_S)
    ok = len(latencies)
    q = (
        statistics.quantiles(latencies, n=100)
        if len(latencies) >= 2
        else [latencies[0] if latencies else 0.0] * 99
    )
    return Step(
        offered=rate,
        achieved=ok / elapsed,
        sent=len(tasks),
        ok=ok,
        not_sent=not_sent,
        statuses=statuses,
        errors=errors + sum(1 for t in tasks if t.cancelled()),
        p50_ms=q[49] * 1000,
        p99_ms=q[98] * 1000,
    )


async def test_stepped_load(bare: BareServer, tmp_path: Path) -> None:
    reference = await bare_judgments(bare, tmp_path)
    world = make_world(tmp_path, f"sqlite+aiosqlite:///{tmp_path}/gateway.db")
    procs = BenchProcesses(world, tmp_path / "logs")
    procs.start("api")
    procs.start("worker")
    template = documents.judgment_template()
    headers = {
        "Authorization": f"Bearer {world.court.token(world.settings)}",
        "Content-Type": "application/json",
    }
    steps: list[Step] = []
    try:
        await procs.wait_api()
        connector = aiohttp.TCPConnector(limit=MAX_IN_FLIGHT)
        timeout = aiohttp.ClientTimeout(total=DRAIN_S + HOLD_S)
        async with aiohttp.ClientSession(connector=connector, timeout=timeout) as http:
            warm = await step(http, f"{procs.url}/v1/judgments", headers, template, RATES[0])
            print(f"\nBENCH warm-up at {RATES[0]}/s (not recorded): p99 {ms(warm.p99_ms)}")
            for rate in RATES:
                steps.append(await step(http, f"{procs.url}/v1/judgments", headers, template, rate))
                s = steps[-1]
                print(
                    f"\nBENCH step {rate}/s: achieved {s.achieved:.1f}/s, p50 {ms(s.p50_ms)}, p99 "
                    f"{ms(s.p99_ms)}, "
                    f"not sent {s.not_sent}, statuses {dict(s.statuses)}, errors {s.errors}"
                )
    finally:
        procs.stop_all()
        left = await delete_topology_or_error(world)
    knee = next((s for s in steps if s.knee), None)
    rows = [
        Row(
            f"{s.offered:,} req/s offered for {HOLD_S} s",
            f"{s.achieved:,.1f} accepted/s; p50 {ms(s.p50_ms)}, p99 {ms(s.p99_ms)}; "
            f"{s.not_sent:,} not sent (over {MAX_IN_FLIGHT} in flight); non-2xx/errors: "
            + (", ".join(f"{n}× {c}" for c, n in sorted(s.statuses.items()) if not 200 <= c < 300) or "none")
            + (f", {s.errors} errors/timeouts" if s.errors else ""),
            reference=f"{s.offered:,} req/s offered",
            ratio=s.achieved / s.offered,
            target=f"p99 ≤ {KNEE_P99_MS:.0f} ms and ≥ {KNEE_ACHIEVED:.0%} of offered",
            met=not s.knee,
            values={
                "offered": s.offered,
                "achieved": round(s.achieved, 2),
                "sent": s.sent,
                "ok": s.ok,
                "not_sent": s.not_sent,
                "statuses": {str(k): v for k, v in s.statuses.items()},
                "errors": s.errors,
                "p50_ms": round(s.p50_ms, 1),
                "p99_ms": round(s.p99_ms, 1),
            },
        )
        for s in steps
    ]
    knee_text = f"{knee.offered:,} req/s" if knee else f"none up to {RATES[-1]:,} req/s"
    rows.append(
        Row(
            "Knee: first step over p99 100 ms or under 95% of offered",
            knee_text,
            reference=f"bare handler {reference.rate:,.0f} req/s at 64 connections (closed loop)",
            ratio=(knee.offered / reference.rate) if knee else None,
            values={"knee": knee.offered if knee else None, "bare_rate": round(reference.rate, 1)},
        )
    )
    record(
        Section(
            key="60-stepped-load",
            title="Stepped load: judgment intake at a constant offered rate",
            command="make bench PYTEST_ARGS=tests/bench/test_bench_stepped_load.py",
            rows=rows,
            notes=[
                "Open loop (`tests/bench/test_bench_stepped_load.py`, asyncio + aiohttp in the test "
                "process; "
                f"wrk2 is not in Debian): each step sends a new judgment every 1/rate s for {HOLD_S} s, "
                "whatever "
                f"the answers, then waits up to {DRAIN_S} s for the last answers. Latency is measured from "
                "the "
                f"scheduled send time (no coordinated omission). At most {MAX_IN_FLIGHT} requests are out at "
                "once; sends due beyond that are counted as not sent. Achieved = 2xx answers ÷ the step's "
                "time "
                "(hold + drain).",
                "One api, one worker, SQLite under tmp; steps follow each other without a pause, so a "
                "delivery "
                "backlog left by one step is still being worked off in the next. The generator shares the "
                "machine's cores with the gateway.",
            ],
        )
    )
    print(f"\nBENCH stepped load: knee at {knee_text}")
    assert any(s.ok for s in steps)
    assert left is None, f"queues and exchanges left on the broker: {left!r}"
