"""Section 20: intake end to end through the real ``run.py api`` and ``run.py worker`` processes (SQLite
under tmp, the local RabbitMQ): wrk at 64 connections for 20 s POSTs a new document per request, then the
case system's queue is watched until every accepted document is on it.

Judgments go to the case system; account-blocking orders go from the case system to a bank (the partner
simulator, REST) and end to end means the bank's report is on the case system's queue.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from tests.bench import documents
from tests.bench.references import bare_judgments
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
TARGET_RATIO = 0.5
TARGET_P99_MS = 100.0
TARGET = f"≥ {TARGET_RATIO}× and p99 ≤ {TARGET_P99_MS:.0f} ms"
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
    kind: str, result: WrkResult, reference: WrkResult, e2e_s: float, extra: int, dup: int
) -> list[Row]:
    lat, ref = result.latency_ms, reference.latency_ms
    ratio = result.ok_rate / reference.rate
    failures = result.describe_failures() or "none"
    accepted = len(result.accepted)
    return [
        Row(
            f"{kind} intake (wrk, 64 connections, {SECONDS} s)",
            f"{result.ok_rate:,.1f} accepted/s; p50 {ms(lat['p50'])}, p99 {ms(lat['p99'])}; "
            f"non-2xx/errors: {failures}",
            reference=f"bare handler {reference.rate:,.0f} req/s; p99 {ms(ref['p99'])}",
            ratio=ratio,
            target=TARGET,
            met=ratio >= TARGET_RATIO and lat["p99"] <= TARGET_P99_MS,
            values={"gateway": result.values(), "bare": reference.values()},
        ),
        Row(
            f"{kind} end to end: all {accepted:,} accepted on the case system's queue",
            f"{accepted / e2e_s:,.1f} delivered/s (last after {e2e_s:.1f} s)",
            reference=f"{result.ok_rate:,.1f} accepted/s",
            ratio=(accepted / e2e_s) / result.ok_rate if result.ok_rate else None,
            values={
                "accepted": accepted,
                "end_to_end_s": round(e2e_s, 2),
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
        rows = intake_rows("Judgment", result, reference, last - start, extra, queue.duplicates())
    finally:
        await queue.close()
        procs.stop_all()
        left = await delete_topology_or_error(world)
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
        rows = intake_rows(
            "Order (account blocking, to a bank)", result, reference, last - start, extra, queue.duplicates()
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
