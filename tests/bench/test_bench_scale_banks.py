"""Benchmark ``40-scale-banks``: what a lookup to every bank costs as the number of configured banks grows
(1, 5, 20, 50 and 100 bank partners, every one asked), against a bare broker fan-out to as many queues and
one raw broker round trip; beside each step, what the broker holds (queues, file descriptors, memory)."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from tests.bench.results import Row, Section, record
from tests.support.bench_lookups import (
    CONCURRENCY,
    FDS_PER_QUEUE,
    BrokerFigures,
    Load,
    broker_answers,
    broker_figures,
    drive_lookups,
    gateway_running,
    install_leftovers,
    raw_fanout,
    results_of,
    start_sims,
    step_queues,
    too_many_for_the_broker,
)

pytestmark = [pytest.mark.bench, pytest.mark.rabbitmq]
COMMAND = "make bench PYTEST_ARGS=tests/bench/test_bench_scale_banks.py"
#: Steps of the curve. A step the broker's file-descriptor limit cannot hold is skipped, its reason
#: written in the results; GATEWAY_BENCH_BANKS="1,5,20" measures what a small broker can.
BANKS = tuple(int(n) for n in os.environ.get("GATEWAY_BENCH_BANKS", "1,5,20,50,100").split(","))
#: The fan-out the lookup to 100 banks is held against.
FANOUT = 100


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
    fanout_skip = too_many_for_the_broker(FANOUT + 1, broker_figures())  # its queues and its replies
    fanout = None if fanout_skip else await raw_fanout(FANOUT)
    runs: dict[int, Load] = {}
    figures: dict[int, BrokerFigures] = {}
    skipped: dict[int, str] = {}
    leftovers: dict[int, list[str]] = {}
    declared: dict[int, int] = {}  # banks -> queues the installation declared
    sims = await start_sims()
    try:
        for n in BANKS:
            before = broker_figures()
            reason = too_many_for_the_broker(step_queues(n, declared), before)
            if reason is None and not await broker_answers():
                reason = "the broker stopped answering"
            if reason is not None:
                skipped[n] = reason  # said in the results, not a wedged broker
                print(f"\nBENCH lookups, {n} bank(s): skipped: {reason}")
                continue
            home = tmp_path / f"banks-{n}"
            url = f"sqlite+aiosqlite:///{home}/gateway.db"
            async with gateway_running(home, url, sims, n, others=False) as (install, procs):
                runs[n] = await drive_lookups(procs.url, install.world, ["bank"], warmup=1.5, hold=6.0)
                figures[n] = broker_figures(install.world.settings.broker_namespace)
            leftovers[n] = await install_leftovers(install)
            queues = figures[n].install_queues
            if queues is not None:
                declared[n] = queues
            print(f"\nBENCH lookups, {n} bank(s): {runs[n].summary('inquiries')}; {figures[n].describe()}")
    finally:
        await sims.close()
    measured = [n for n in BANKS if n in runs]
    assert measured, f"no step measured: {skipped}"
    rows = [
        Row(
            name=f"{n} bank(s)",
            figure=f"{runs[n].summary('inquiries')}; {figures[n].describe()}",
            values=runs[n].values()
            | figures[n].values()
            | {"banks": n, "cost_ms_per_inquiry": round(1000 / runs[n].rate, 1), "queues_left": leftovers[n]},
        )
        if n in runs
        else Row(
            name=f"{n} bank(s)",
            figure=f"not measured: {skipped[n]}",
            values={"banks": n, "skipped": skipped[n]},
        )
        for n in BANKS
    ]
    if fanout is not None:
        rows.append(
            Row(
                name=f"Raw broker fan-out to {FANOUT} queues",
                figure=fanout.summary("fan-outs"),
                values=fanout.values() | {"queues": FANOUT},
            )
        )
    rows.append(hundred_banks_row(runs, fanout, fanout_skip or skipped.get(FANOUT)))
    rows += slope_rows(measured, runs, raw_p50_ms, raw_cost_ms, raw_from)
    elapsed = time.perf_counter() - began
    record(
        Section(
            key="40-scale-banks",
            title="Lookup cost against the number of banks",
            command=COMMAND,
            rows=rows,
            notes=notes(elapsed, skipped, fanout_skip),
        )
    )
    # Every step finished (drive_lookups asserts each inquiry ends complete) and left nothing behind.
    assert all(not left for left in leftovers.values()), f"queues left on the broker: {leftovers}"


def hundred_banks_row(runs: dict[int, Load], fanout: Load | None, why_not: str | None) -> Row:
    target = f"p50 ≤ 2× the raw fan-out to {FANOUT} queues (ratio ≤ 2)"
    name = f"Lookup to {FANOUT} banks against a raw fan-out to {FANOUT}"
    if FANOUT not in runs or fanout is None:
        reason = why_not or f"{FANOUT} banks not in GATEWAY_BENCH_BANKS"
        return Row(name=name, figure=f"not measured: {reason}", target=target, met=None)
    p50, raw = runs[FANOUT].q(50) * 1000, fanout.q(50) * 1000
    return Row(
        name=name,
        figure=f"p50 {p50:.0f} ms",
        reference=f"raw fan-out p50 {raw:.0f} ms (measured in this section)",
        ratio=round(p50 / raw, 2),
        target=target,
        met=p50 <= 2 * raw,
        values={"p50_ms": round(p50, 1), "raw_fanout_p50_ms": round(raw, 1)},
    )


def slope_rows(
    measured: list[int], runs: dict[int, Load], raw_p50_ms: float, raw_cost_ms: float, raw_from: str
) -> list[Row]:
    if len(measured) < 2:
        return [Row(name="Throughput cost slope per added bank", figure="not measured: fewer than two steps")]
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
    return [
        Row(
            name="Throughput cost slope per added bank",
            figure=f"{cost_slope:.1f} ms of capacity per inquiry per bank (R² {r2_cost:.3f})",
            reference=f"one raw round trip takes {raw_cost_ms:.2f} ms of broker capacity ({raw_from})",
            ratio=round(cost_slope / raw_cost_ms, 2),
            target="≤ 2× one raw round trip's broker capacity per added bank (ratio ≤ 2)",
            met=cost_slope <= 2 * raw_cost_ms,
            values={"slope_ms": round(cost_slope, 2), "r2": round(r2_cost, 4), "raw_cost_ms": raw_cost_ms},
        ),
        Row(
            name="Latency slope per added bank",
            figure=f"{latency_slope:.1f} ms/bank (p50; R² {r2_latency:.3f})",
            reference=f"one raw round trip p50 {raw_p50_ms:.1f} ms ({raw_from})",
            ratio=round(latency_slope / raw_p50_ms, 2),
            values={
                "slope_ms": round(latency_slope, 2),
                "r2": round(r2_latency, 4),
                "raw_p50_ms": raw_p50_ms,
            },
        ),
    ]


def notes(elapsed: float, skipped: dict[int, str], fanout_skip: str | None) -> list[str]:
    out = [
        "Each step is its own installation (one api and one worker process, SQLite) whose configuration "
        "holds only bank partners, declared as a real installation declares them: `[defaults.bank]` once "
        "and one `banks.toml` line per bank (the shipped five, then Vietnam's other banks). Every bank is "
        "a separate partner with its own queues, connector, breaker and 8 connection slots; one bank "
        "simulator serves them all (`/banks/<CODE>`), answering at once. Inquiries ask "
        '`sources: ["bank"]` (every configured bank).',
        f"Closed loop at concurrency {CONCURRENCY}, 1.5 s warm-up then a 6 s hold per step; latency from "
        "submission to the final `complete` answer. Every inquiry must end complete, and each step must "
        "leave no queue of its installation on the broker (`queues_left`).",
        "Broker figures are read during each step's load with `rabbitmqctl` (all queues on the shared "
        "broker, those of the step's installation, file descriptors used/limit, memory). A step is "
        "skipped, and the reason written here, when the queues on the broker plus those the step will "
        "declare (fitted on the steps measured) would need more than 90% of the broker's descriptor "
        f"limit at {FDS_PER_QUEUE:g} per quorum queue (GATEWAY_BENCH_FDS_PER_QUEUE): the file-handle "
        "cache keeps more open while it has room, so descriptors in use are no measure of the need.",
        f"Targets: the lookup to {FANOUT} banks at p50 ≤ 2× a bare aio-pika request/reply fan-out to "
        f"{FANOUT} quorum queues (same concurrency, measured in this section); the throughput cost "
        "slope — least-squares slope of (1 / inquiries per second) over the number of banks — ≤ 2× the "
        "broker capacity one raw round trip takes (1 / raw round trips per second). The latency slope is "
        "shown for comparison.",
        f"Section duration: {elapsed:.0f} s.",
    ]
    if fanout_skip:
        out.append(f"Raw fan-out to {FANOUT} not measured: {fanout_skip}.")
    out += [f"{n} banks not measured: {reason}." for n, reason in skipped.items()]
    return out
