"""Section 20: intake end to end through the real ``run.py api`` and ``run.py worker`` processes (SQLite
under tmp, the local RabbitMQ): wrk at 64 connections for 20 s POSTs a new document per request, then the
case system's queue is watched until every accepted document is on it.

Judgments go to the case system; account-blocking orders go from the case system to a bank (the partner
simulator, REST) and end to end means the bank's report is on the case system's queue.

The floor every document must pass is the broker: judgments end to end are compared with the broker's
own limit measured in the same run (persistent 1 KiB messages to a quorum queue, publisher confirms,
256 in flight, one connection); orders end to end with judgments end to end; and at a light offered load
(10 judgments/s) the time from a push to the case system's queue shows whether anything polls.
"""

from __future__ import annotations

import asyncio
import statistics
import time
from pathlib import Path

import aiohttp
import pytest

from tests.bench import documents
from tests.bench.references import BrokerFigures, bare_judgments, broker_limit
from tests.bench.results import Row, Section, record
from tests.bench.support import (
    BareServer,
    BenchProcesses,
    TimedQueue,
    delete_topology_or_error,
    in_reply_to,
    ms,
)
from tests.bench.wrk import WrkResult, run_wrk
from tests.conftest import make_world
from tests.support.lookup_world import delete_lookup_topology, make_lookup_world

pytestmark = [pytest.mark.bench, pytest.mark.rabbitmq, pytest.mark.timeout(600)]

SECONDS = 20
ORDER_REFERENCE_SECONDS = 6
TARGET_BROKER_RATIO = 0.1
TARGET_P99_MS = 100.0
TARGET = f"≥ {TARGET_BROKER_RATIO}× the broker's limit and p99 ≤ {TARGET_P99_MS:.0f} ms"
TARGET_ORDER_RATIO = 0.5
LIGHT_RATE = 10.0
LIGHT_SECONDS = 15
TARGET_LIGHT_P50_MS = 20.0
#: Figures of this run that later rows compare with.
MEASURED: dict[str, float] = {}
#: Rows recorded so far: each test of this module adds its own and records the section again.
ROWS: list[Row] = []
NOTES: list[str] = [
    f"wrk: 2 threads, 64 connections, {SECONDS} s, a new document per request "
    "(`tests/bench/new_document.lua`: "
    "new message_id and natural key each time), one court (or case-system) token for all requests. One api "
    "and one worker process, SQLite under tmp, the local RabbitMQ; the api's per-client rate limit is "
    "raised out of the way (`tests/bench/support.py: BENCH_ENV`).",
    "End to end: from wrk's start until the last document wrk saw accepted (202) is on the case system's "
    "queue (for an order: until the bank's report on it is); delivered/s = accepted documents ÷ that time.",
]


def intake_rows(
    kind: str,
    result: WrkResult,
    reference: WrkResult,
    e2e_s: float,
    extra: int,
    dup: int,
    floor: tuple[str, float, str, float],
) -> list[Row]:
    """The intake row (against the bare handler: information) and the end-to-end row, judged against
    ``floor``: (its name, its rate per second, the target's text, the target ratio)."""
    lat, ref = result.latency_ms, reference.latency_ms
    failures = result.describe_failures() or "none"
    accepted = len(result.accepted)
    delivered = accepted / e2e_s if e2e_s else 0.0
    floor_name, floor_rate, floor_target, floor_ratio = floor
    ratio = delivered / floor_rate if floor_rate else None
    return [
        Row(
            f"{kind} intake (wrk, 64 connections, {SECONDS} s)",
            f"{result.ok_rate:,.1f} accepted/s; p50 {ms(lat['p50'])}, p99 {ms(lat['p99'])}; "
            f"non-2xx/errors: {failures}",
            reference=f"bare handler {reference.rate:,.0f} req/s; p99 {ms(ref['p99'])}",
            ratio=result.ok_rate / reference.rate,
            values={"gateway": result.values(), "bare": reference.values()},
        ),
        Row(
            f"{kind} end to end: all {accepted:,} accepted on the case system's queue",
            f"{delivered:,.1f} delivered/s (last after {e2e_s:.1f} s); intake p99 {ms(lat['p99'])}",
            reference=f"{floor_name} {floor_rate:,.1f}/s",
            ratio=ratio,
            target=floor_target,
            met=ratio is not None and ratio >= floor_ratio and lat["p99"] <= TARGET_P99_MS,
            values={
                "accepted": accepted,
                "end_to_end_s": round(e2e_s, 2),
                "delivered_per_s": round(delivered, 1),
                "floor_per_s": round(floor_rate, 1),
                "also_delivered_unseen_by_wrk": extra,
                "duplicates": dup,
            },
        ),
    ]


def record_section() -> None:
    record(
        Section(
            key="20-intake",
            title="Intake end to end: judgments and orders through the real api and worker",
            command="make bench PYTEST_ARGS=tests/bench/test_bench_intake.py",
            rows=list(ROWS),
            notes=list(NOTES),
        )
    )


async def test_judgment_intake(bare: BareServer, tmp_path: Path) -> None:
    reference = await bare_judgments(bare, tmp_path)
    world = make_world(tmp_path, f"sqlite+aiosqlite:///{tmp_path}/gateway.db")
    procs = BenchProcesses(world, tmp_path / "logs")
    procs.start("api")
    procs.start("worker")
    queue = TimedQueue(world.case_queue)
    try:
        await procs.wait_api()
        await queue.start()
        template = documents.write(documents.judgment_template(), tmp_path / "judgment.json")
        start = time.perf_counter()
        result = await run_wrk(
            f"{procs.url}/v1/judgments", world.court.token(world.settings), template, SECONDS
        )
        accepted = set(result.accepted)
        last = await queue.wait_all(accepted, timeout=300)
        extra = len(queue.first_seen.keys() - accepted)
    finally:
        await queue.close()
        procs.stop_all()
        left = await delete_topology_or_error(world)
    broker: BrokerFigures = await broker_limit(1024)
    MEASURED["broker"] = broker.published_per_s
    MEASURED["judgments"] = len(accepted) / (last - start)
    floor = (
        "broker, 1 KiB persistent to a quorum queue, confirms",
        broker.published_per_s,
        TARGET,
        TARGET_BROKER_RATIO,
    )
    rows = intake_rows("Judgment", result, reference, last - start, extra, queue.duplicates(), floor)
    ROWS[:] = [r for r in ROWS if not r.name.startswith("Judgment")] + rows
    record_section()
    print(f"\nBENCH intake judgments: {rows[0].figure} ({rows[0].ratio:.3f}× bare); {rows[1].figure}")
    assert accepted, result.describe_failures()
    assert left is None, f"queues and exchanges left on the broker: {left!r}"


async def test_order_intake(bare: BareServer, tmp_path: Path) -> None:
    template = documents.write(documents.order_template("BANK-VCB"), tmp_path / "order.json")
    lw = await make_lookup_world(tmp_path, f"sqlite+aiosqlite:///{tmp_path}/gateway.db", callback_delay=0.5)
    world = lw.world
    case_token = world.case_system.token(world.settings)
    reference = await run_wrk(
        f"{bare.url}/v1/documents", bare.token, template, ORDER_REFERENCE_SECONDS, connections=64
    )
    procs = BenchProcesses(world, tmp_path / "logs", port=lw.api_port)
    procs.start("api")
    procs.start("worker")
    queue = TimedQueue(world.case_queue, key=in_reply_to)
    try:
        await procs.wait_api()
        await queue.start()
        start = time.perf_counter()
        result = await run_wrk(f"{procs.url}/v1/documents", case_token, template, SECONDS)
        accepted = set(result.accepted)
        last = await queue.wait_all(accepted, timeout=300)
        extra = len(queue.first_seen.keys() - accepted)
        judgments = MEASURED.get("judgments", 0.0)
        floor = (
            "judgments end to end (this run)",
            judgments,
            f"≥ {TARGET_ORDER_RATIO}× judgments end to end, intake p99 ≤ {TARGET_P99_MS:.0f} ms",
            TARGET_ORDER_RATIO,
        )
        rows = intake_rows(
            "Order (account blocking, to a bank)",
            result,
            reference,
            last - start,
            extra,
            queue.duplicates(),
            floor,
        )
    finally:
        await queue.close()
        procs.stop_all()
        await lw.partners.close()
        left = await delete_topology_or_error(world, lambda: delete_lookup_topology(lw))
    ROWS[:] = [r for r in ROWS if not r.name.startswith("Order")] + rows
    note = (
        "Orders: `order.account_blocking` from the case system to BANK-VCB (the bank simulator, in the test "
        "process, answers at once); the bare-handler reference for them is the same order template through "
        f"`bare_server.py` ({ORDER_REFERENCE_SECONDS} s of wrk, the bare handler's token being the court's — "
        "it checks the signature, not the grant)."
    )
    if note not in NOTES:
        NOTES.append(note)
    record_section()
    print(f"\nBENCH intake orders: {rows[0].figure} ({rows[0].ratio:.3f}× bare); {rows[1].figure}")
    assert accepted, result.describe_failures()
    assert left is None, f"queues and exchanges left on the broker: {left!r}"


async def test_judgment_latency_at_a_light_load(tmp_path: Path) -> None:
    """10 judgments a second, one at a time as a court would send them: from each push to the moment it
    is on the case system's queue. A polling relay shows here as its interval (half of it at p50)."""
    world = make_world(tmp_path, f"sqlite+aiosqlite:///{tmp_path}/gateway.db")
    procs = BenchProcesses(world, tmp_path / "logs")
    procs.start("api")
    procs.start("worker")
    queue = TimedQueue(world.case_queue)
    template = documents.judgment_template()
    nonce = documents.new_nonce()
    sent: dict[str, float] = {}
    answered: dict[str, float] = {}
    try:
        await procs.wait_api()
        await queue.start()
        headers = {**world.court_headers(), "Content-Type": "application/json"}
        async with aiohttp.ClientSession() as http:

            async def push(n: int) -> None:
                body = documents.fill(template, n, nonce)
                message_id = f"{nonce}-ffff-4000-8000-{n:012x}"
                sent[message_id] = time.perf_counter()
                async with http.post(f"{procs.url}/v1/judgments", data=body, headers=headers) as response:
                    assert response.status == 202, await response.text()
                answered[message_id] = time.perf_counter()

            start = time.perf_counter()
            tasks = []
            for n in range(int(LIGHT_RATE * LIGHT_SECONDS)):
                await asyncio.sleep(max(0.0, start + n / LIGHT_RATE - time.perf_counter()))
                tasks.append(asyncio.create_task(push(n)))
            await asyncio.gather(*tasks)
        await queue.wait_all(set(sent), timeout=60)
    finally:
        await queue.close()
        procs.stop_all()
        left = await delete_topology_or_error(world)
    to_queue = sorted((queue.first_seen[m] - sent[m]) * 1000 for m in sent)
    to_answer = sorted((answered[m] - sent[m]) * 1000 for m in sent)
    p50 = statistics.median(to_queue)
    p99 = to_queue[int(len(to_queue) * 0.99) - 1]
    row = Row(
        f"Judgment latency at {LIGHT_RATE:.0f}/s offered ({len(sent)} pushes, one connection each)",
        f"push → case system's queue p50 {ms(p50)}, p99 {ms(p99)}; push → 202 p50 "
        f"{ms(statistics.median(to_answer))}",
        reference="no polling floor",
        target=f"p50 ≤ {TARGET_LIGHT_P50_MS:.0f} ms",
        met=p50 <= TARGET_LIGHT_P50_MS,
        values={"p50_ms": round(p50, 2), "p99_ms": round(p99, 2), "n": len(sent)},
    )
    ROWS[:] = [r for r in ROWS if not r.name.startswith("Judgment latency")] + [row]
    record_section()
    print(f"\nBENCH judgment latency at {LIGHT_RATE:.0f}/s: {row.figure}")
    assert left is None, f"queues and exchanges left on the broker: {left!r}"
