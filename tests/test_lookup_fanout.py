"""Fan-out to many partners: one work queue per partner (no request queue of its own, no replies queue),
answers recorded by the worker that called the partner and counted on the inquiry, a status event per
source answered, and a waiting caller woken when its inquiry is final instead of re-reading it."""

from __future__ import annotations

import asyncio
import itertools
import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import jsonschema
import pytest
from aiohttp.test_utils import TestClient
from sqlalchemy import select

from gateway.amqp.names import Names
from gateway.domain.inquiry import SourceStatus, overall_status, status_from_counts
from gateway.services import inquiries as inquiry_service
from gateway.services.inquiry_results import apply_answer
from gateway.storage.database import Database
from gateway.storage.inquiries import Answer
from gateway.storage.tables import inquiries, inquiry_sources
from tests.conftest import ROOT
from tests.support.gateway_procs import queue_exists, take_messages
from tests.support.lookup_world import PARTNER_CODES, LookupWorld, running_gateway
from tests.test_asset_inquiry_flow import inquiry

SCHEMAS = ROOT / "gateway" / "schemas"
DUE = datetime(2026, 12, 7, 12, 0, tzinfo=UTC)


@pytest.mark.parametrize("now", [DUE - timedelta(seconds=1), DUE, DUE + timedelta(seconds=1)])
def test_the_status_from_counts_is_the_status_from_every_source(now: datetime) -> None:
    """An answer updates counts instead of reading every source: both give the same status, for every
    mix of up to four sources."""
    for n in range(1, 5):
        for statuses in itertools.product(list(SourceStatus), repeat=n):
            pending = statuses.count(SourceStatus.PENDING)
            timeouts = statuses.count(SourceStatus.TIMEOUT)
            assert status_from_counts(n, pending, timeouts, now, DUE) is overall_status(statuses, now, DUE)


def test_impossible_counts_are_refused() -> None:
    with pytest.raises(ValueError):
        status_from_counts(0, 0, 0, DUE, DUE)
    with pytest.raises(ValueError):
        status_from_counts(2, 2, 1, DUE, DUE)


@pytest.fixture
async def running(tmp_path: Path) -> AsyncIterator[tuple[LookupWorld, TestClient[Any, Any]]]:
    async with running_gateway(tmp_path) as started:
        yield started


@pytest.mark.rabbitmq
async def test_each_partner_has_one_work_queue_and_lookups_have_no_queues_of_their_own(
    running: tuple[LookupWorld, TestClient[Any, Any]],
) -> None:
    lw, _api = running
    ns = lw.settings.broker_namespace
    names = Names(ns)
    for _ in range(200):  # the worker declares its topology as it starts
        if await queue_exists(names.callbacks_queue) and await queue_exists(names.deliver_urgent("POP-REG")):
            break
        await asyncio.sleep(0.1)
    for code in PARTNER_CODES:
        for queue in names.recipient_queues(code):  # work queue, urgent lane, their parking queues
            assert await queue_exists(queue), queue
        assert not await queue_exists(f"{ns}.req.{code}")
    assert not await queue_exists(f"{ns}.replies")


@pytest.mark.rabbitmq
async def test_a_final_inquiry_wakes_its_waiting_caller_without_re_reading(
    running: tuple[LookupWorld, TestClient[Any, Any]], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The sources here answer at once, so the worker makes the inquiry final and its hint wakes the api:
    with the safety re-read an hour away, a caller that was not woken would wait its whole 30 s and get
    the inquiry still ``pending``."""
    lw, api = running
    monkeypatch.setattr(inquiry_service, "SAFETY_READ_SECONDS", 3600.0)
    await asyncio.sleep(1)  # the api's broker connection and hint queue are made in the background
    headers = {**lw.world.case_headers(), "Prefer": "wait=30"}
    resp = await api.post("/v1/asset-inquiries", json=inquiry(sources=["tax", "vehicle"]), headers=headers)
    assert resp.status == 200, await resp.text()
    assert (await resp.json())["status"] == "complete"


@pytest.mark.rabbitmq
async def test_every_answer_is_counted_once_and_is_a_status_event_for_subscribers(
    running: tuple[LookupWorld, TestClient[Any, Any]],
) -> None:
    lw, api = running
    client = lw.world.case_system.id
    resp = await api.post(
        "/v1/subscriptions",
        json={"kind": "queue", "message_types": ["asset.inquiry"]},
        headers=lw.world.case_headers(),
    )
    subscription = await resp.json()
    assert resp.status == 201, subscription
    try:
        headers = {**lw.world.case_headers(), "Prefer": "wait=30"}
        body = inquiry(sources=["land", "tax", "vehicle", "population", {"bank": ["BANK-VCB", "BANK-CTG"]}])
        resp = await api.post("/v1/asset-inquiries", json=body, headers=headers)
        view = await resp.json()
        assert resp.status == 200 and view["status"] == "complete", view
        sources = {s["source"]: s for s in view["sources"]}

        db = Database(lw.settings.resolved_database_url)
        try:
            async with db.read() as conn:
                row = (
                    await conn.execute(select(inquiries).where(inquiries.c.inquiry_id == view["inquiry_id"]))
                ).one()
                refs = list(
                    (
                        await conn.execute(
                            select(inquiry_sources.c.request_ref).where(
                                inquiry_sources.c.inquiry_id == view["inquiry_id"]
                            )
                        )
                    ).scalars()
                )
            assert (row.sources_total, row.sources_pending, row.sources_timeout) == (len(sources), 0, 0)
            # A repeated answer (a redelivered request, a late callback) changes nothing and counts nothing.
            again = await apply_answer(db, refs[0], Answer(status="timeout"), "test")
            assert again is None
            async with db.read() as conn:
                after = (
                    await conn.execute(select(inquiries).where(inquiries.c.inquiry_id == view["inquiry_id"]))
                ).one()
            assert (after.sources_pending, after.sources_timeout, after.status) == (0, 0, "complete")
        finally:
            await db.dispose()

        events = await take_messages(subscription["queue"], lambda got: len(got) >= len(sources))
        assert {e["source"] for e in events} == set(sources)
        schema = json.loads((SCHEMAS / "event.status.schema.json").read_text("utf-8"))
        for event in events:
            jsonschema.validate(event, schema, format_checker=jsonschema.FormatChecker())
            source = sources[event["source"]]
            assert event["message_id"] == view["inquiry_id"]
            assert event["message_type"] == "asset.inquiry"
            assert (event["sender"], event["recipient"]) == (source["partner"], client)
            assert (event["previous_status"], event["status"]) == ("pending", source["status"])
    finally:
        await api.delete(
            f"/v1/subscriptions/{subscription['subscription_id']}", headers=lw.world.case_headers()
        )
