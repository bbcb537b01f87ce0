"""Section 75: how long the event loop stalls while one heavy XSD validation runs — on the loop, in a
validation thread (as shipped, long-lived objects frozen out of the collector), or in a process that gets the
body as bytes and parses it again; and the per-body costs behind ``[limits] inline_validation_bytes``.

The figures behind docs/architecture.md, "Bounded work per request"."""

from __future__ import annotations

import asyncio
import copy
import gc
import time
from collections.abc import Callable
from concurrent.futures import Executor, ProcessPoolExecutor, ThreadPoolExecutor
from pathlib import Path

import pytest
from lxml import etree

from gateway.soap import COURTS_NS, body_payload
from gateway.soap.courts_mapping import schema, xsd_violations
from gateway.soap.xml_safety import parse_untrusted
from gateway.validation import catalog
from tests.bench.results import Row, Section, record
from tests.conftest import fresh_judgment

pytestmark = [pytest.mark.bench, pytest.mark.timeout(600)]

C = f"{{{COURTS_NS}}}"
SAMPLE = Path(__file__).resolve().parents[1] / "data" / "soap" / "push-judgment.xml"
BAD_ITEMS = 3_000
HEARTBEAT = 0.01


def _body(bad_items: int) -> bytes:
    root = parse_untrusted(SAMPLE.read_bytes())
    items = body_payload(root).find(f"{C}Body/{C}Items")
    assert items is not None
    for _ in range(bad_items):
        item = copy.deepcopy(items[0])
        amount = item.find(C + "AmountVnd")
        assert amount is not None
        amount.text = "lots"
        items.append(item)
    return bytes(etree.tostring(root))


def _validate(raw: bytes) -> int:
    return len(xsd_violations(body_payload(parse_untrusted(raw)), limit=100))


async def _lag(pool: Executor | None, raw: bytes) -> tuple[float, float, float]:
    """(validation seconds, worst heartbeat lag, p99 lag) while ``raw`` is validated inline or in ``pool``."""
    lags: list[float] = []
    stop = asyncio.Event()

    async def heartbeat() -> None:
        while not stop.is_set():
            started = time.perf_counter()
            await asyncio.sleep(HEARTBEAT)
            lags.append(time.perf_counter() - started - HEARTBEAT)

    beating = asyncio.create_task(heartbeat())
    await asyncio.sleep(0.05)
    started = time.perf_counter()
    if pool is None:
        _validate(raw)
    else:
        await asyncio.get_running_loop().run_in_executor(pool, _validate, raw)
    took = time.perf_counter() - started
    stop.set()
    await beating
    lags.sort()
    return took, lags[-1], lags[max(0, int(len(lags) * 0.99) - 1)]


def _per_call(work: Callable[[], object], times: int) -> float:
    started = time.perf_counter()
    for _ in range(times):
        work()
    return (time.perf_counter() - started) / times


async def test_validation_keeps_the_loop_answering() -> None:
    raw, small = _body(BAD_ITEMS), _body(0)
    schema()
    _validate(small)
    # Per-body costs first, while nothing else runs in the process.
    doc = fresh_judgment()
    catalog().violations(doc["message_type"], doc)  # the catalog is built on first use
    payload = body_payload(parse_untrusted(small))
    hop_pool = ThreadPoolExecutor(1)

    async def hops(times: int) -> float:
        loop = asyncio.get_running_loop()
        started = time.perf_counter()
        for _ in range(times):
            await loop.run_in_executor(hop_pool, int)
        return (time.perf_counter() - started) / times

    small_rows = [
        Row(
            "JSON Schema, 2.6 kB judgment, inline",
            f"{_per_call(lambda: catalog().violations(doc['message_type'], doc), 200) * 1e6:.0f} µs",
        ),
        Row(
            "XSD, 6.8 kB SOAP sample, inline",
            f"{_per_call(lambda: xsd_violations(payload), 50) * 1e3:.1f} ms",
        ),
        Row("thread hop alone", f"{await hops(500) * 1e6:.0f} µs"),
    ]
    hop_pool.shutdown()
    rows: list[Row] = []
    with ThreadPoolExecutor(2) as threads, ProcessPoolExecutor(2) as processes:
        await asyncio.get_running_loop().run_in_executor(processes, _validate, small)  # schema compiled there
        for name, pool in (("on the event loop", None), ("validation thread", threads)):
            took, worst, p99 = await _lag(pool, raw)
            rows.append(Row(name, f"{worst * 1000:.0f} ms worst lag", values={"s": took, "p99": p99}))
        gc.collect()
        gc.freeze()
        try:
            took, worst, p99 = await _lag(threads, raw)
        finally:
            gc.unfreeze()
        rows.append(
            Row("validation thread, gc.freeze()", f"{worst * 1000:.0f} ms worst lag", values={"s": took})
        )
        took, worst, p99 = await _lag(processes, raw)
        rows.append(Row("process pool", f"{worst * 1000:.0f} ms worst lag", values={"s": took, "p99": p99}))

    rows += small_rows
    record(
        Section(
            key="75-validation-loop",
            title=f"Event-loop lag during one XSD validation ({BAD_ITEMS:,} bad items)",
            command="make bench PYTEST_ARGS=tests/bench/test_bench_validation_loop.py",
            rows=rows,
            notes=[f"Heartbeat every {HEARTBEAT * 1000:.0f} ms on the loop; lag = how late it woke."],
        )
    )
    print("\nBENCH validation loop: " + "; ".join(f"{r.name}: {r.figure}" for r in rows))
    assert all(r.figure for r in rows)
