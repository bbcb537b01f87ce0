"""Benchmark ``70-backlog-rss``: the worker's (and the api's) resident memory with 100,000 messages waiting
in a queue the worker consumes, while the backlog is there and while it drains."""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from pathlib import Path

import aio_pika
import pytest

from gateway.amqp.names import Names
from gateway.domain.lookup import LookupRequest, Subject
from gateway.services.inquiries import request_payload
from tests.bench.results import Row, Section, record
from tests.support.bench_lookups import gateway_running, rss_mib, start_sims
from tests.support.gateway_procs import BROKER
from tests.support.lookup_requests import DUE_AT, LEGAL_BASIS, OFFICER_ID, TITLE

pytestmark = [pytest.mark.bench, pytest.mark.rabbitmq]
COMMAND = "make bench PYTEST_ARGS=tests/bench/test_bench_backlog_rss.py"
BACKLOG = 100_000
PARTNER = "POP-REG"
IDLE_SECONDS = 3.0
DRAIN_SECONDS = 20.0
SAMPLE_EVERY = 0.5


def request_template() -> str:
    """A queued lookup request for PARTNER, as the relay publishes it, with ``{ref}`` for its request_ref."""
    lookup = LookupRequest(
        request_ref="REF",
        inquiry_id=str(uuid.uuid4()),
        source_id="population",
        partner_code=PARTNER,
        kind="population",
        subject=Subject(id_number="001085012345", full_name="Nguyễn Văn An", date_of_birth="1985-03-02"),
        case_ref="THA-HN-2026-000123",
        purpose="Xác minh điều kiện thi hành án",
        officer_id=OFFICER_ID,
        legal_basis=LEGAL_BASIS,
        title=TITLE,
        due_at=DUE_AT,
    )
    return json.dumps(request_payload(lookup), ensure_ascii=False).replace('"REF"', '"{ref}"')


async def depth(channel: aio_pika.abc.AbstractChannel, queue: str) -> int:
    declared = await channel.declare_queue(queue, passive=True)
    return int(declared.declaration_result.message_count or 0)


async def test_worker_rss_with_a_backlog(tmp_path: Path) -> None:
    began = time.perf_counter()
    template = request_template()
    sims = await start_sims()
    idle: list[float] = []
    api_rss: list[float] = []
    samples: list[tuple[float, int, float]] = []  # (seconds since the worker started, depth, worker MiB)
    try:
        url = f"sqlite+aiosqlite:///{tmp_path}/gateway.db"
        async with gateway_running(tmp_path, url, sims, 1) as (install, procs):
            queue = Names(install.world.settings.broker_namespace).deliver(PARTNER)
            api_pid = procs.pid("api")
            # Reference: the same worker idle, a few seconds after start.
            for _ in range(int(IDLE_SECONDS / SAMPLE_EVERY)):
                idle.append(rss_mib(procs.pid("worker")))
                api_rss.append(rss_mib(api_pid))
                await asyncio.sleep(SAMPLE_EVERY)
            worker = procs.procs.pop("worker")
            worker.terminate()
            worker.wait(30)

            conn = await aio_pika.connect(BROKER)
            async with conn:
                channel = await conn.channel(publisher_confirms=False)
                t0 = time.perf_counter()
                for start in range(0, BACKLOG, 1000):
                    await asyncio.gather(
                        *(
                            channel.default_exchange.publish(
                                aio_pika.Message(
                                    template.replace("{ref}", ref).encode(),
                                    message_id=ref,
                                    type="asset.lookup",
                                    delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
                                ),
                                routing_key=queue,
                            )
                            for ref in (str(uuid.uuid4()) for _ in range(start, min(start + 1000, BACKLOG)))
                        )
                    )
                while await depth(channel, queue) < BACKLOG:
                    assert time.perf_counter() - t0 < 120, "the backlog never reached the queue"
                    await asyncio.sleep(0.2)
                built_in = time.perf_counter() - t0
                print(f"\nBENCH backlog: {BACKLOG} messages on {queue} in {built_in:.1f} s")

                procs.start_as("worker", "worker", procs.metrics_port)
                started = time.perf_counter()
                while True:
                    now = time.perf_counter() - started
                    left = await depth(channel, queue)
                    samples.append((now, left, rss_mib(procs.pid("worker"))))
                    api_rss.append(rss_mib(api_pid))
                    if left == 0 or now >= DRAIN_SECONDS:
                        break
                    await asyncio.sleep(SAMPLE_EVERY)
                drained = BACKLOG - samples[-1][1]
                await (
                    await channel.declare_queue(queue, passive=True)
                ).purge()  # what is left goes; the queue itself with the topology
    finally:
        await sims.close()

    idle_mib = max(idle)
    # From the second sample after consumption began: the worker's start-up allocation is behind it.
    consuming = [mib for _, left, mib in samples if left < BACKLOG]
    settled = consuming[1:] or [samples[-1][2]]
    peak = max(mib for _, _, mib in samples)
    first_depth = samples[0][1]
    growth = settled[-1] - settled[0]
    drain_rate = drained / samples[-1][0] if samples[-1][0] else 0.0
    curve = ", ".join(
        f"{t:.0f}s:{left // 1000}k/{mib:.0f}MiB" for t, left, mib in samples[:: max(1, len(samples) // 10)]
    )
    print(
        f"BENCH backlog RSS: worker idle {idle_mib:.0f} MiB, with the backlog peak {peak:.0f} MiB "
        f"(growth over the drain {growth:+.1f} MiB); drained {drained} in {samples[-1][0]:.0f} s "
        f"({drain_rate:.0f}/s); api peak {max(api_rss):.0f} MiB; {curve}"
    )
    elapsed = time.perf_counter() - began
    record(
        Section(
            key="70-backlog-rss",
            title="Worker memory with a 100,000-message backlog",
            command=COMMAND,
            rows=[
                Row(
                    name="Worker peak RSS with the backlog",
                    figure=f"{peak:.0f} MiB (from {first_depth:,} waiting; {growth:+.1f} MiB over the drain)",
                    reference=f"the same worker idle: {idle_mib:.0f} MiB",
                    ratio=round(peak / idle_mib, 3),
                    target="flat: bounded by the prefetch, not by the backlog",
                    met=peak <= idle_mib * 1.25 and abs(growth) <= 10,
                    values={
                        "backlog": BACKLOG,
                        "idle_mib": round(idle_mib, 1),
                        "peak_mib": round(peak, 1),
                        "growth_during_drain_mib": round(growth, 1),
                        "samples": [[round(t, 1), left, round(mib, 1)] for t, left, mib in samples],
                    },
                ),
                Row(
                    name="Drain",
                    figure=(
                        f"{drained:,} of {BACKLOG:,} consumed in {samples[-1][0]:.0f} s ({drain_rate:.0f}/s)"
                    ),
                    reference=f"backlog published in {built_in:.1f} s ({BACKLOG / built_in:.0f}/s)",
                    values={
                        "drained": drained,
                        "seconds": round(samples[-1][0], 1),
                        "per_second": round(drain_rate),
                    },
                ),
                Row(
                    name="api peak RSS meanwhile",
                    figure=f"{max(api_rss):.0f} MiB",
                    reference=f"at the start: {api_rss[0]:.0f} MiB",
                    values={"start_mib": round(api_rss[0], 1), "peak_mib": round(max(api_rss), 1)},
                ),
            ],
            notes=[
                f"A real api and worker (SQLite). With the worker stopped, {BACKLOG:,} lookup requests for "
                f"one partner ({PARTNER}) are published straight to its request queue (a quorum queue), "
                "each shaped like the relay's (persistent, the queued request JSON). Then the worker is "
                f"started again and its RSS (/proc VmRSS) and the queue depth are sampled every "
                f"{SAMPLE_EVERY} s for up to {DRAIN_SECONDS:.0f} s; the rest is purged and the queue "
                "deleted.",
                "Their request_refs match no stored source, so the worker reads each, finds nothing to "
                "ask the partner and acks it: the drain exercises the consumer path (prefetch "
                "`delivery.prefetch`, 100) with the whole backlog behind it. Reference: the same "
                f"installation's first worker idle, {IDLE_SECONDS:.0f} s after its start.",
                "Growth over the drain: the last sample minus the second sample taken after the queue "
                "began to shrink (the worker's start-up allocation excluded).",
                f"Section duration: {elapsed:.0f} s.",
            ],
        )
    )
