"""The overview's read models without a browser: partners judged by their success rate and last error
(not only their breaker), queues grouped by role with the empty ones folded, alerts, the broker reads
bounded to a budget (a broker that does not answer never holds a page), the parked count kept from the
worker's last sample, and the history series (samples and message events bucketed over a range)."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import insert, select

from gateway.ops import history, status
from gateway.ops.backlog import OutboxState
from gateway.ops.partners import PartnerHealth
from gateway.ops.queues import QueueOverview, QueueRow
from gateway.storage.database import Database
from gateway.storage.tables import evidences, messages, ops_samples
from gateway.storage.timestamps import now
from gateway.web.console.charts import line_chart
from tests.conftest import World


def health(
    code: str = "BANK-X", breaker: str = "closed", calls: int = 0, failures: int = 0, **kw: Any
) -> PartnerHealth:
    at = kw.pop("at", now())
    return PartnerHealth(
        code=code,
        name=code,
        kind=kw.pop("kind", "bank"),
        endpoint="http://127.0.0.1:9/",
        breaker=breaker,
        workers=1,
        calls=calls,
        failures=failures,
        p50_ms=None,
        p95_ms=None,
        in_flight=0,
        last_error=kw.pop("last_error", None),
        last_error_at=kw.pop("last_error_at", None),
        updated_at=at,
    )


def test_partner_state_is_judged_from_success_rate_and_last_error_not_only_the_breaker() -> None:
    at = now()
    garbage = health(
        breaker="closed", calls=20, failures=20, last_error="answer unreadable", last_error_at=at
    )
    assert (garbage.state, garbage.state_class, garbage.breaker_class) == (
        "failing",
        "state-down",
        "state-ok",
    )
    assert "answer unreadable" in garbage.why
    assert health(breaker="open", calls=5, failures=5).state == "down"
    assert health(breaker="half-open", calls=5, failures=1).state == "degraded"
    assert health(calls=20, failures=4).state == "degraded"  # 80 %
    old_error = at - timedelta(minutes=10)
    assert health(calls=100, failures=1, last_error="timeout", last_error_at=old_error).state == "ok"
    assert health(calls=100, failures=1, last_error="timeout", last_error_at=at).state == "degraded"
    assert health(calls=1, failures=1).state == "failing"  # too few calls for a rate, all failed
    assert health(calls=0).state == "idle"
    assert health(breaker="unknown").state == "unknown"


def snap(rows: list[QueueRow], partners: list[PartnerHealth], **kw: Any) -> status.Snapshot:
    at = now()
    view = kw.pop("broker", status.BrokerView(True, at, "", None))
    counts = {"overdue": 0, "stuck": 0, "retrying": 0, "pending_inquiries": 0} | kw.pop("counts", {})
    overview = QueueOverview("AMQP", rows)
    return status.Snapshot(
        at, overview, "", OutboxState(0, None), partners, counts, view, at,
        kw.pop("parked_total", overview.parked_total), at, kw.pop("failed", 0),
    )  # fmt: skip


def row(name: str, role: str = "partner", ready: int = 0, parked: int = 0, consumers: int = 1) -> QueueRow:
    return QueueRow(name, role, True, ready, 0, consumers, parking=f"p.{name}", parked=parked)


def test_queues_grouped_by_role_with_empty_ones_apart() -> None:
    rows = [row(f"gw.deliver.BANK-{i:03d}") for i in range(100)]
    rows += [
        row("gw.deliver.BANK-050.urgent", "urgent-delivery", parked=2),
        row("gw.deliver.THADS", "delivery", 3),
    ]
    rows.append(row("gw.deliver.BANK-XYZ", consumers=0))  # nobody consumes it: folded, but counted
    rows.append(QueueRow("gw.deliver.BANK-NEW", "partner", False))  # not declared yet: the same
    rows.append(row("gw.deliver.BANK-099.urgent", "urgent-delivery", ready=5))
    groups = {g.role: g for g in snap(rows, []).groups()}
    assert list(groups) == ["delivery", "partner", "urgent-delivery"]
    assert groups["partner"].busy == [] and len(groups["partner"].quiet) == 102
    assert (groups["partner"].unconsumed, groups["partner"].undeclared) == (1, 1)
    busy = [r.name for r in groups["urgent-delivery"].busy]
    assert busy == ["gw.deliver.BANK-050.urgent", "gw.deliver.BANK-099.urgent"]  # parked first
    assert (groups["urgent-delivery"].parked, groups["delivery"].depth) == (2, 3)


def test_alerts_match_the_cards_and_the_banner() -> None:
    partners = [
        health("BANK-GARBAGE", calls=10, failures=10, last_error="not JSON", last_error_at=now()),
        health("TAX", "open", 5, 5, kind="tax"),
        health("BANK-OK", calls=10),
    ]
    down = status.BrokerView(False, None, "broker unreachable: ConnectionRefusedError", None)
    s = snap([row("q", parked=4)], partners, broker=down, counts={"overdue": 2}, parked_total=4, failed=1)
    keys = {a.key: a for a in status.alerts(s)}
    assert set(keys) == {"broker", "partner:BANK-GARBAGE", "partner:TAX", "parked", "overdue", "failed"}
    assert keys["partner:BANK-GARBAGE"].link == "/ops/partners/BANK-GARBAGE"
    assert "(last known)" in keys["parked"].detail  # the broker does not answer: not live
    assert [k for k, a in keys.items() if a.severity == "warning"] == ["failed"]
    data = s.as_json()
    assert data["headline"] == {"failed": 1, "parked": 4, "overdue": 2, "stuck": 0, "retrying": 0}
    assert data["broker"]["state"] == "down" and data["source"] == "unavailable"
    kinds = [k for k, _ in s.partner_kinds()]
    assert kinds == ["bank", "tax"]  # both hold a partner in trouble: by name


class _Hanging:
    """A broker connection that never completes (a broker accepting TCP and never answering)."""

    def __init__(self) -> None:
        self.calls = 0

    async def __call__(self) -> Any:
        self.calls += 1
        await asyncio.Event().wait()


async def test_broker_reads_never_wait_past_the_budget_and_keep_running_in_the_background(
    world: World,
) -> None:
    hanging = _Hanging()
    reads = status.BrokerReads(world.settings, hanging)
    loop = asyncio.get_running_loop()
    started = loop.time()
    view = await reads.view(budget=0.05)
    assert view.reachable is None and view.last_seen is None  # still asking: not yet judged
    view = await reads.view(budget=0.05)
    assert hanging.calls == 1  # one read at a time, however many pages ask
    reads._queue_started -= status.STALL_SECONDS + 1  # as if it had hung for longer than that
    view = await reads.view(budget=0.05)
    assert view.reachable is False and "not answered" in view.error and view.state == "down"
    assert loop.time() - started < status.BROKER_TIMEOUT_SECONDS  # never the connect's own timeout
    assert reads._queue_task is not None
    reads._queue_task.cancel()  # a fake connection: nothing reconnects behind it
    await reads.close()


async def test_refused_broker_is_down_and_parked_comes_from_the_last_sample(
    world: World, db: Database
) -> None:
    async def refused() -> Any:
        raise ConnectionRefusedError("connection refused")

    sampled_at = now() - timedelta(minutes=3)
    async with db.transaction() as conn:
        await history.record(conn, [(history.PARKED_TOTAL, "", 7)], sampled_at)
    reads = status.BrokerReads(world.settings, refused)
    snap_ = await status.snapshot(world.settings, db, reads=reads, budget=5)
    assert snap_.broker.reachable is False and snap_.broker.state == "down"
    assert "ConnectionRefusedError" in snap_.broker.error
    assert snap_.queues is None and not snap_.queues_fresh
    assert snap_.parked_total == 7 and abs((snap_.parked_at or now()) - sampled_at) < timedelta(seconds=1)
    assert 170 < (snap_.parked_age_seconds or 0) < 600
    data = snap_.as_json()
    assert data["headline"]["parked"] == 7 and data["parked_at"] is not None
    await reads.close()


def test_bucketing_and_the_svg() -> None:
    start = datetime(2026, 12, 7, 10, 0, tzinfo=UTC)
    points = [(start + timedelta(minutes=m), float(m)) for m in (0, 1, 30, 59)]
    s = history.bucketed("x", points, start, 3600, 6)
    assert s.values == [1.0, None, None, 30.0, None, 59.0]
    assert (s.last, s.peak) == (59.0, 59.0)
    counted = history.bucketed("n", [(start, 1.0), (start, 1.0)], start, 3600, 2, "count")
    assert counted.values == [2.0, 0.0]
    svg = str(line_chart([s]))
    assert svg.startswith("<svg") and "<polyline" not in svg and svg.count("<circle") == 3
    assert "<script" not in svg and "http" not in svg.replace("http://www.w3.org/2000/svg", "")


def test_sampler_writes_idle_partners_and_empty_queues_not_at_all() -> None:
    samples = history.Sampler.samples(
        [("BANK-A", 0, 0), ("BANK-B", 3, 1), ("BANK-B", 2, 0)],
        {"judgment.delivery": 2},
        [("BANK-A", "closed", 0, 0, None, None), ("BANK-B", "open", 4, 4, 10, 90)],
    )
    assert (history.QUEUED, "BANK-A", 0) not in samples
    assert (history.QUEUED, "BANK-B", 5) in samples and (history.PARKED_TOTAL, "", 1) in samples
    assert (history.OVERDUE, "", 2) in samples and (history.OVERDUE, "judgment.delivery", 2) in samples
    assert not [s for s in samples if s[1] == "BANK-A" and s[0].startswith("partner")]
    assert (history.PARTNER_OPEN, "BANK-B", 1) in samples and (history.PARTNER_P95, "BANK-B", 90) in samples
    assert [s for s in history.Sampler.samples(None, {}, []) if s[0] == history.PARKED_TOTAL] == []


async def test_history_series_from_samples_and_events(db: Database) -> None:
    at = now()
    async with db.transaction() as conn:
        for minutes, value in ((50, 1), (20, 4), (5, 2)):
            await history.record(conn, [(history.PARKED_TOTAL, "", value)], at - timedelta(minutes=minutes))
        await history.record(conn, [(history.PARKED_TOTAL, "", 99)], at - timedelta(days=9))
        message_id = str(uuid.uuid4())
        await conn.execute(
            insert(messages).values(
                message_id=message_id, message_type="judgment.delivery", schema_version="1", sender="TAND-HN",
                recipient="BANK-B", priority="normal", natural_key=message_id, sha256="ab" * 32, payload="{}",
                receipt="{}", received_at=at, status="delivered", updated_at=at,
            )
        )  # fmt: skip
        for event, minutes in (("accepted", 30), ("delivered", 29), ("delivery_failed", 31)):
            await conn.execute(
                insert(evidences).values(
                    message_id=message_id, event=event, at=at - timedelta(minutes=minutes), actor="t"
                )
            )
    async with db.read() as conn:
        parked = await history.sampled(conn, history.PARKED_TOTAL, "", "1h", at)
        assert [v for v in parked.values if v is not None] == [1.0, 4.0, 2.0] and parked.peak == 4.0
        assert await history.last_value(conn, history.PARKED_TOTAL) is not None
        events = await history.event_counts(conn, "1h", recipient="BANK-B", at=at)
        assert sum(v or 0 for v in events["delivered"].values) == 1
        assert sum(v or 0 for v in events["delivery_failed"].values) == 1
        other = await history.event_counts(conn, "1h", message_type="order.delivery", at=at)
        assert sum(v or 0 for v in other["accepted"].values) == 0
        assert await history.flows(conn, "1h", at) == ["judgment.delivery"]
    async with db.transaction() as conn:
        assert await history.prune(conn, history.keep_since(at)) == 1
    async with db.read() as conn:
        assert len((await conn.execute(select(ops_samples))).all()) == 3
    assert history.range_of("nonsense")[0] == history.DEFAULT_RANGE and history.range_of("7d")[1] == 7 * 86400


async def test_worker_samples_parked_at_once_when_it_changes(world: World, db: Database) -> None:
    from gateway.worker.gauges import DatabaseGauges, HistorySamples

    ns = world.settings.broker_namespace
    sampler = HistorySamples(world.settings, db, DatabaseGauges(world.settings, db))

    def seen(parked: int, ready: int = 0) -> QueueOverview:
        return QueueOverview(
            "AMQP",
            [
                row(f"{ns}.deliver.BANK-A", ready=ready, parked=parked),
                row(f"{ns}.deliver.BANK-A.urgent", "urgent-delivery", ready=1),
                row(f"{ns}.deliver.BANK-B"),
            ],
        )

    await sampler.after_queue_poll(seen(0))  # the first poll: sampled
    await sampler.after_queue_poll(seen(0, ready=3))  # unchanged parked count, within the minute: not
    await sampler.after_queue_poll(seen(2))  # parked changed: at once
    async with db.read() as conn:
        rows = (await conn.execute(select(ops_samples).order_by(ops_samples.c.id))).all()
        last = await history.last_value(conn, history.PARKED_TOTAL)
    parked = [r.value for r in rows if r.series == history.PARKED_TOTAL]
    assert parked == [0, 2] and last is not None and last[0] == 2
    queued = {(r.key, r.value) for r in rows if r.series == history.QUEUED}
    assert queued == {("BANK-A", 1)}  # its urgent lane counted as its own; BANK-B empty: not written
