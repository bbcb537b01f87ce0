"""Benchmark ``30-lookups``: asset inquiries through the real api and worker processes against partner
simulators answering at once, beside a bare aio-pika request/reply fan-out of the same shape measured in
the same run; and the latency the gateway adds to each partner call."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest

from tests.bench.results import Row, Section, record
from tests.support.bench_lookups import (
    CONCURRENCY,
    Load,
    drive_lookups,
    gateway_running,
    histogram_delta,
    histogram_quantile,
    lookup_sources,
    partner_call_histogram,
    partner_health_latency,
    percentile,
    raw_fanout,
    start_sims,
)

pytestmark = [pytest.mark.bench, pytest.mark.rabbitmq]
COMMAND = "make bench PYTEST_ARGS=tests/bench/test_bench_lookups.py"


def ratio(a: float, b: float) -> float:
    return round(a / b, 3) if b else float("nan")


async def test_lookups_beside_raw_fanout(tmp_path: Path) -> None:
    began = time.perf_counter()
    raw = {n: await raw_fanout(n) for n in (1, 6, 9)}
    for n, load in raw.items():
        print(f"\nBENCH raw fan-out x{n}: {load.summary('fan-outs')}")

    sims = await start_sims()
    gateway: dict[int, Load] = {}
    added: dict[str, float] = {}
    try:
        async with gateway_running(tmp_path, f"sqlite+aiosqlite:///{tmp_path}/gateway.db", sims, 5) as (
            install,
            procs,
        ):
            before, sum0, count0 = await partner_call_histogram(procs.metrics_port)
            sims.handling.clear()
            for n in (6, 9):
                gateway[n] = await drive_lookups(procs.url, install.world, lookup_sources(n))
                print(f"BENCH gateway lookups x{n}: {gateway[n].summary('inquiries')}")
            after, sum1, count1 = await partner_call_histogram(procs.metrics_port)
            await asyncio.sleep(2.5)  # the worker writes its partners' health every 2 s
            health = await partner_health_latency(install.world.settings.resolved_database_url)
        calls = histogram_delta(after, before)
        n_calls = count1 - count0
        handling = sorted(sims.handling)
        sim_p50, sim_p99 = percentile(handling, 50), percentile(handling, 99)
        gw_p50, gw_p99 = histogram_quantile(0.5, calls), histogram_quantile(0.99, calls)
        added = {
            "calls_gateway": n_calls,
            "calls_partner": len(handling),
            "gateway_mean_ms": (sum1 - sum0) / n_calls * 1000,
            "partner_mean_ms": sum(handling) / len(handling) * 1000,
            "gateway_p50_ms": gw_p50 * 1000,
            "gateway_p99_ms": gw_p99 * 1000,
            "partner_p50_ms": sim_p50 * 1000,
            "partner_p99_ms": sim_p99 * 1000,
            "gateway_calls_under_50ms_share": calls[0.05] / calls[float("inf")],
        }
        added |= health
        added["added_health_p50_ms"] = added["health_p50_ms"] - added["partner_p50_ms"]
        added["added_mean_ms"] = added["gateway_mean_ms"] - added["partner_mean_ms"]
        added["added_p50_ms"] = added["gateway_p50_ms"] - added["partner_p50_ms"]
        added["added_p99_ms"] = added["gateway_p99_ms"] - added["partner_p99_ms"]
        added = {k: round(v, 3) for k, v in added.items()}
    finally:
        await sims.close()
    print(
        f"BENCH added latency per partner call: mean {added['added_mean_ms']:.1f} ms, "
        f"p50 {added['added_health_p50_ms']:.1f} ms, p99 ~{added['added_p99_ms']:.1f} ms ({added})"
    )

    rows: list[Row] = [
        Row(
            name="Raw broker round trip (1 source)",
            figure=raw[1].summary("round trips"),
            values=raw[1].values(),
        )
    ]
    for n in (6, 9):
        gw, rf = gateway[n], raw[n]
        r = ratio(gw.rate, rf.rate)
        rows.append(
            Row(
                name=f"Lookups, {n} sources",
                figure=gw.summary("inquiries"),
                reference=f"raw aio-pika fan-out x{n}: {rf.summary('fan-outs')}",
                ratio=r,
                target="≥ 0.5× the raw fan-out",
                met=r >= 0.5,
                values={
                    "gateway": gw.values(),
                    "raw": rf.values(),
                    "p50_ratio_gateway_over_raw": ratio(gw.q(50), rf.q(50)),
                    "p99_ratio_gateway_over_raw": ratio(gw.q(99), rf.q(99)),
                },
            )
        )
    rows.append(
        Row(
            name="Added latency per partner call (p50)",
            figure=f"{added['added_health_p50_ms']:.1f} ms (mean {added['added_mean_ms']:.1f} ms)",
            reference=(
                f"partner handling p50 {added['partner_p50_ms']:.2f} ms; gateway call p50 "
                f"{added['health_p50_ms']:.1f} ms"
            ),
            target="≤ 5 ms",
            met=added["added_health_p50_ms"] <= 5,
            values=added,
        )
    )
    rows.append(
        Row(
            name="Added latency per partner call (p99)",
            figure=f"{added['added_p99_ms']:.1f} ms",
            reference=(
                f"partner handling p99 {added['partner_p99_ms']:.2f} ms; gateway call p99 "
                f"~{added['gateway_p99_ms']:.1f} ms"
            ),
            target="≤ 20 ms",
            met=added["added_p99_ms"] <= 20,
            values=added,
        )
    )
    elapsed = time.perf_counter() - began
    record(
        Section(
            key="30-lookups",
            title="Lookups against the raw broker fan-out",
            command=COMMAND,
            rows=rows,
            notes=[
                f"Closed loop at concurrency {CONCURRENCY} for both: each client starts its next request "
                "when the last one finished; a warm-up is not counted, then a fixed hold is (figures: "
                "completions in the hold / hold; p50/p99 of requests started in it).",
                "Raw reference: aio-pika only, the gateway's topology shape — one request published as N "
                "persistent messages (publisher confirms) to a topic exchange bound to N quorum queues, "
                "N consumers answering at once on a replies exchange into one quorum replies queue, the "
                "requester completing the fan-out when N replies with its correlation id are in.",
                "Gateway: real `run.py api` and `run.py worker` processes (SQLite), the land registry "
                "(SOAP), tax, vehicles, population and five banks simulated on loopback with no added "
                "latency and no injected errors; 6 sources = land, tax, vehicle, population and two "
                "banks, 9 = the same with five banks. Latency is from POST /v1/asset-inquiries "
                "(with `Prefer: wait=30`, "
                "which the api serves by polling its database every 100 ms) to the final `complete` "
                "answer; every inquiry must end complete with every source found/not_found.",
                "Added latency per partner call: the worker's `gateway_partner_call_seconds` histogram "
                "(its /metrics, difference over the run: every call of both runs) minus the partners' "
                "own handling time, timed by a middleware wrapped around each simulator application "
                "(from the request reaching the application to its response being built). The mean is "
                "exact (histogram sum / count). p50: the worker's own per-partner p50 (nearest rank over "
                "its rolling window, whole ms, as written to `partner_health`), weighted by calls. p99: "
                "interpolated inside the histogram's buckets (the first is 0–50 ms), an estimate at that "
                "resolution; the per-partner p95 from `partner_health` is kept in the values. The gateway "
                "side includes waiting for one of the partner's 8 connection slots.",
                f"Section duration: {elapsed:.0f} s.",
            ],
        )
    )
