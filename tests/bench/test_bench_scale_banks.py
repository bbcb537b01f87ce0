"""Benchmark ``40-scale-banks``: what a lookup costs as the number of configured banks grows (1, 5, 20 and,
on request, 50 bank partners, every one asked), against one raw broker round trip per bank."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from tests.bench.results import Row, Section, record
from tests.support.bench_lookups import (
    CONCURRENCY,
    Load,
    broker_answers,
    drive_lookups,
    gateway_running,
    raw_fanout,
    results_of,
    start_sims,
)

pytestmark = [pytest.mark.bench, pytest.mark.rabbitmq]
COMMAND = "make bench PYTEST_ARGS=tests/bench/test_bench_scale_banks.py"
#: 50 banks is one installation with 300 quorum queues (each bank's request queue, delivery queue and
#: urgent lane, each with its parking queue); on the shared development broker both runs that declared
#: that many coincided with it wedging, so it is measured only on request: GATEWAY_BENCH_BANKS="1,5,20,50".
BANKS = tuple(int(n) for n in os.environ.get("GATEWAY_BENCH_BANKS", "1,5,20").split(","))


def slope(xs: list[float], ys: list[float]) -> float:
    """Least-squares slope of ys over xs."""
    mx, my = sum(xs) / len(xs), sum(ys) / len(ys)
    return sum((x - mx) * (y - my) for x, y in zip(xs, ys, strict=True)) / sum((x - mx) ** 2 for x in xs)


def linearity(xs: list[float], ys: list[float]) -> float:
    """R² of the least-squares line."""
    b = slope(xs, ys)
    mx, my = sum(xs) / len(xs), sum(ys) / len(ys)
    residual = sum((y - (my + b * (x - mx))) ** 2 for x, y in zip(xs, ys, strict=True))
    total = sum((y - my) ** 2 for y in ys)
    return 1 - residual / total if total else 1.0


async def raw_round_trip() -> tuple[float, float, str]:
    """One raw round trip (p50 ms, and ms of broker capacity per round trip) from ``30-lookups`` of this
    run when it is there, else measured now."""
    section = results_of("30-lookups")
    for row in (section or {}).get("rows", []):
        if row["name"].startswith("Raw broker round trip"):
            v = row["values"]
            return float(v["p50_ms"]), 1000 / float(v["per_second"]), "from section 30-lookups"
    load = await raw_fanout(1)
    return load.q(50) * 1000, 1000 / load.rate, "measured in this section"


async def test_lookup_cost_against_number_of_banks(tmp_path: Path) -> None:
    began = time.perf_counter()
    raw_p50_ms, raw_cost_ms, raw_from = await raw_round_trip()
    runs: dict[int, Load] = {}
    skipped: list[int] = []
    sims = await start_sims()
    try:
        for n in BANKS:
            if not await broker_answers():
                skipped.append(n)  # a wedged broker: keep what was measured, say what was not
                continue
            home = tmp_path / f"banks-{n}"
            url = f"sqlite+aiosqlite:///{home}/gateway.db"
            async with gateway_running(home, url, sims, n, others=False) as (install, procs):
                runs[n] = await drive_lookups(procs.url, install.world, ["bank"], warmup=1.5, hold=6.0)
            print(f"\nBENCH lookups, {n} bank(s): {runs[n].summary('inquiries')}")
    finally:
        await sims.close()
    measured = [n for n in BANKS if n in runs]
    runs_note = (
        ""
        if 50 in measured
        else (
            " 50 banks not measured: an installation with 50 bank partners declares 300 quorum queues, "
            "and both runs that did coincided with the shared development broker wedging; "
            "GATEWAY_BENCH_BANKS=1,5,20,50 includes it."
        )
    )
    assert len(measured) >= 2, f"the broker stopped answering; measured only {measured}"
    xs = [float(n) for n in measured]
    p50s = [runs[n].q(50) * 1000 for n in measured]
    costs = [1000 / runs[n].rate for n in measured]  # ms of the gateway's capacity per inquiry
    latency_slope, cost_slope = slope(xs, p50s), slope(xs, costs)
    r2_latency, r2_cost = linearity(xs, p50s), linearity(xs, costs)
    print(
        f"BENCH banks: p50 slope {latency_slope:.1f} ms/bank (R² {r2_latency:.3f}), cost slope "
        f"{cost_slope:.1f} ms/bank (R² {r2_cost:.3f}); raw round trip p50 {raw_p50_ms:.1f} ms, "
        f"{raw_cost_ms:.2f} ms of broker capacity"
    )
    rows = [
        Row(
            name=f"{n} bank(s)",
            figure=runs[n].summary("inquiries"),
            values=runs[n].values() | {"banks": n, "cost_ms_per_inquiry": round(1000 / runs[n].rate, 1)},
        )
        for n in measured
    ]
    rows.append(
        Row(
            name="Latency slope per added bank",
            figure=f"{latency_slope:.1f} ms/bank (p50; R² {r2_latency:.3f})",
            reference=f"one raw round trip p50 {raw_p50_ms:.1f} ms ({raw_from})",
            ratio=round(latency_slope / raw_p50_ms, 2),
            target="linear; ≤ one raw round trip per bank (ratio ≤ 1)",
            met=latency_slope <= raw_p50_ms and r2_latency >= 0.9,
            values={
                "slope_ms": round(latency_slope, 2),
                "r2": round(r2_latency, 4),
                "raw_p50_ms": raw_p50_ms,
            },
        )
    )
    rows.append(
        Row(
            name="Throughput cost slope per added bank",
            figure=f"{cost_slope:.1f} ms of capacity per inquiry per bank (R² {r2_cost:.3f})",
            reference=f"one raw round trip takes {raw_cost_ms:.2f} ms of broker capacity ({raw_from})",
            ratio=round(cost_slope / raw_cost_ms, 2),
            target="linear; ≤ one raw round trip per bank (ratio ≤ 1)",
            met=cost_slope <= raw_cost_ms and r2_cost >= 0.9,
            values={"slope_ms": round(cost_slope, 2), "r2": round(r2_cost, 4), "raw_cost_ms": raw_cost_ms},
        )
    )
    elapsed = time.perf_counter() - began
    record(
        Section(
            key="40-scale-banks",
            title="Lookup cost against the number of banks",
            command=COMMAND,
            rows=rows,
            notes=[
                "Each configuration is its own installation (real api and worker processes, SQLite) "
                "whose partners.toml holds only bank partners (1, 5, 20; 50 on request), every one a "
                "separate partner with its own queue, connector, breaker and 8 connection slots. One "
                "bank simulator process serves them: banks beyond its five are configured on its five "
                'synchronous paths. Inquiries ask `sources: ["bank"]` (every configured bank); the '
                "simulators answer at once.",
                f"Closed loop at concurrency {CONCURRENCY}, 1.5 s warm-up then a 6 s hold per "
                "configuration; latency from submission to the final `complete` answer.",
                "Latency slope: least-squares slope of p50 over the number of banks, against the p50 of "
                "one raw aio-pika request/reply round trip at the same concurrency (section 30-lookups). "
                "Cost slope: slope of (1 / inquiries per second) — the gateway's capacity one inquiry "
                "takes — against 1 / (raw round trips per second). R² says how linear each is.",
                f"Section duration: {elapsed:.0f} s."
                + runs_note
                + (f" Not measured (the broker stopped answering): {skipped} banks." if skipped else ""),
            ],
        )
    )
