"""Section 50: judgment intake against document size (2 kB to 10 MB) through the real api and worker, each
size beside the bare handler at the same size; and the api's peak memory while taking 10 MB judgments."""

from __future__ import annotations

import time
from pathlib import Path

import aiohttp
import pytest

from tests.bench import documents
from tests.bench.results import Row, Section, record
from tests.bench.support import (
    BareServer,
    BenchProcesses,
    RssSampler,
    TimedQueue,
    delete_topology_or_error,
    memory_kib,
    ms,
)
from tests.bench.wrk import run_wrk
from tests.conftest import make_world

pytestmark = [pytest.mark.bench, pytest.mark.rabbitmq, pytest.mark.timeout(600)]

KB, MB = 1024, 1024 * 1024
#: (label, bytes, wrk connections, gateway seconds, bare-handler seconds): fewer requests for big ones.
SIZES = [
    ("2 kB", 2 * KB, 64, 5, 3),
    ("10 kB", 10 * KB, 64, 5, 3),
    ("100 kB", 100 * KB, 16, 5, 3),
    ("2 MB", 2 * MB, 2, 5, 3),
    ("10 MB", 10 * MB, 1, 6, 3),
]
BIG = 10 * MB
#: 10 MB is above the default `api.max_body_bytes` (8,000,000) and its PDF above
#: `api.max_inline_document_bytes` (5,000,000): both are raised for this benchmark only.
SIZE_ENV = {
    "GATEWAY_API__MAX_BODY_BYTES": str(16 * MB),
    "GATEWAY_API__MAX_INLINE_DOCUMENT_BYTES": str(12 * MB),
}
RSS_FACTOR = 3


async def test_document_size(bare: BareServer, tmp_path: Path) -> None:
    world = make_world(tmp_path, f"sqlite+aiosqlite:///{tmp_path}/gateway.db")
    procs = BenchProcesses(world, tmp_path / "logs", extra_env=SIZE_ENV)
    procs.start("api")
    procs.start("worker")
    queue = TimedQueue(world.case_queue)
    token = world.court.token(world.settings)
    rows: list[Row] = []
    memory: dict[str, int] = {}
    try:
        await procs.wait_api()
        await queue.start()
        for label, size, connections, seconds, bare_seconds in SIZES:
            template = documents.write(documents.judgment_of_size(size), tmp_path / f"judgment-{size}.json")
            actual = documents.size_of(template.read_text("utf-8"))
            reference = await run_wrk(
                f"{bare.url}/v1/judgments", bare.token, template, bare_seconds, connections=connections
            )
            sampler = None
            if size == BIG:
                memory["idle_kib"] = await restart_api(procs, token)
                sampler = RssSampler(procs.pid("api"))
                sampler.start()
            start = time.perf_counter()
            result = await run_wrk(
                f"{procs.url}/v1/judgments", token, template, seconds, connections=connections
            )
            if sampler is not None:
                await sampler.stop()
                memory["sampled_peak_kib"] = sampler.peak_kib
                memory["hwm_kib"] = memory_kib(procs.pid("api"))["VmHWM"]
            accepted = set(result.accepted)
            last = await queue.wait_all(accepted, timeout=300)
            lat, ref = result.latency_ms, reference.latency_ms
            failures = result.describe_failures() or "none"
            rows.append(
                Row(
                    f"{label} judgment ({actual:,} bytes), {connections} connection(s), {seconds} s",
                    f"{result.ok_rate:,.1f} accepted/s; p50 {ms(lat['p50'])}, p99 {ms(lat['p99'])}; "
                    f"{len(accepted)} accepted, all delivered after {last - start:.1f} s; non-2xx/errors: "
                    f"{failures}",
                    reference=f"bare handler {reference.rate:,.1f} req/s; p99 {ms(ref['p99'])}",
                    ratio=result.ok_rate / reference.rate if reference.rate else None,
                    values={
                        "bytes": actual,
                        "gateway": result.values(),
                        "bare": reference.values(),
                        "end_to_end_s": round(last - start, 2),
                    },
                )
            )
            print(f"\nBENCH size {label}: {rows[-1].figure} | {rows[-1].reference}")
    finally:
        await queue.close()
        procs.stop_all()
        left = await delete_topology_or_error(world)
    if memory:
        idle, peak = memory["idle_kib"], max(memory["hwm_kib"], memory["sampled_peak_kib"])
        above = (peak - idle) * 1024
        rows.append(
            Row(
                "api peak RSS while taking 10 MB judgments (one at a time), above idle",
                f"{above / MB:,.1f} MB above idle ({idle / 1024:,.0f} MB idle, {peak / 1024:,.0f} MB peak)",
                reference=f"document {BIG / MB:.0f} MB",
                ratio=above / BIG,
                target=f"< {RSS_FACTOR}× the document size",
                met=above < RSS_FACTOR * BIG,
                values=memory,
            )
        )
        print(f"\nBENCH size RSS: {rows[-1].figure}")
    record(
        Section(
            key="50-document-size",
            title="Judgment intake against document size",
            command="make bench PYTEST_ARGS=tests/bench/test_bench_document_size.py",
            rows=rows,
            notes=[
                "Same wrk script as the intake section, fewer connections and seconds for big documents; "
                "each size beside the bare handler (JWT + JSON + schema) at the same size and connections. "
                "Every accepted judgment is waited for on the case system's queue before the next size.",
                "2 kB: the judgment sent by URI with its summary (free text, at most 2,000 characters) "
                "padded. "
                "Larger: no text field of a judgment may hold that much, so the inline PDF "
                "(`body.document.content_base64`) is padded with a PDF comment.",
                "10 MB is above the default `api.max_body_bytes` (8,000,000) and its 7.5 MB PDF above "
                "`api.max_inline_document_bytes` (5,000,000): this benchmark raises them to 16 MiB and 12 "
                "MiB.",
                "Memory: the api is restarted before the 10 MB case and warmed with one small judgment; "
                "idle = "
                "its RSS then; peak = the larger of /proc's VmHWM after the case and RSS sampled every 20 ms "
                "during it (one connection: one document in flight at a time).",
            ],
        )
    )
    assert all(r.values.get("gateway", {"ok_per_s": 1})["ok_per_s"] > 0 for r in rows)
    assert left is None, f"queues and exchanges left on the broker: {left!r}"


async def restart_api(procs: BenchProcesses, token: str) -> int:
    """A fresh api, warmed with one small judgment; its idle RSS in KiB."""
    procs.kill("api")
    procs.start("api")
    await procs.wait_api()
    doc = documents.fill(documents.judgment_template(), 1, documents.new_nonce())
    headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
    async with (
        aiohttp.ClientSession() as http,
        http.post(f"{procs.url}/v1/judgments", data=doc.encode(), headers=headers) as resp,
    ):
        assert resp.status == 202, await resp.text()
    return memory_kib(procs.pid("api"))["VmRSS"]
