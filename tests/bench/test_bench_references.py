"""Section 10: the limits the gateway's figures are compared with — the HTTP stack with the checks
every intake makes (a bare aiohttp handler: JWT, JSON, JSON Schema) and the broker on its own."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.bench import documents
from tests.bench.references import BARE_SECONDS, bare_judgments, broker_limit
from tests.bench.results import Row, Section, record
from tests.bench.support import BareServer, ms

pytestmark = [pytest.mark.bench, pytest.mark.rabbitmq]


async def test_references(bare: BareServer, tmp_path: Path) -> None:
    http = await bare_judgments(bare, tmp_path)
    size = documents.size_of(documents.judgment_template())
    broker = await broker_limit(size)
    lat = http.latency_ms
    rows = [
        Row(
            "Bare handler: JWT + JSON parse + JSON Schema, new judgment per request (wrk, 64 connections)",
            f"{http.rate:,.0f} req/s; p50 {ms(lat['p50'])}, p99 {ms(lat['p99'])}",
            values=http.values() | {"document_bytes": size},
        ),
        Row(
            f"Broker: publish with confirms, {broker.size:,}-byte persistent messages, quorum queue",
            f"{broker.published_per_s:,.0f} messages/s",
            values={
                "messages": broker.messages,
                "size": broker.size,
                "per_s": round(broker.published_per_s, 1),
            },
        ),
        Row(
            "Broker: published and consumed with one ack each (end to end)",
            f"{broker.end_to_end_per_s:,.0f} messages/s",
            values={
                "messages": broker.messages,
                "size": broker.size,
                "per_s": round(broker.end_to_end_per_s, 1),
            },
        ),
    ]
    failures = http.describe_failures()
    notes = [
        f"The bare handler (`tests/bench/bare_server.py`, its own process) verifies the bearer JWT with the "
        "gateway's `TokenVerifier`, parses the body and validates it with the gateway's `SchemaCatalog`, "
        "then "
        f"answers 202: no storage, no broker, no receipt. wrk ran {BARE_SECONDS} s with 2 threads and 64 "
        "connections on the same machine as the server (both share its cores, as in every HTTP figure "
        "here).",
        f"The broker figure: {broker.messages:,} messages, at most 256 awaiting a confirm, one consumer with "
        f"prefetch 100, in a throwaway quorum queue deleted afterwards.",
    ]
    if failures:
        notes.append(f"Bare handler non-2xx/errors: {failures}.")
    record(
        Section(
            key="10-references",
            title="References: the HTTP stack's and the broker's own limits",
            command="make bench PYTEST_ARGS=tests/bench/test_bench_references.py",
            rows=rows,
            notes=notes,
        )
    )
    print(f"\nBENCH references: {rows[0].figure}; {rows[1].figure} published; {rows[2].figure} end to end")
    assert http.ok > 0, failures
