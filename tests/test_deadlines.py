"""Deadlines on the working-day calendar: an order a bank never answers is reminded before its deadline
and escalated after it, on the right day across a weekend and across Tết. Time is a fixed clock."""

from __future__ import annotations

import dataclasses
import json
import uuid
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
import tomli_w
from sqlalchemy import select

from gateway.partners import load_partners
from gateway.reference_data import load_calendar, load_deadlines, load_legal_bases
from gateway.security.clients import ClientStore
from gateway.security.signing import Signer
from gateway.security.tokens import Principal
from gateway.services.document_rules import DocumentRules, by_code
from gateway.services.documents import DocumentService
from gateway.storage import messages as store
from gateway.storage.database import Database
from gateway.storage.migrate import upgrade
from gateway.storage.tables import messages
from gateway.storage.timestamps import as_utc
from gateway.validation import catalog
from gateway.worker.deadlines import DeadlineWatcher
from tests.conftest import ROOT, World
from tests.support import orders

HANOI = ZoneInfo("Asia/Ho_Chi_Minh")


class Clock:
    def __init__(self, at: datetime) -> None:
        self.at = at

    def __call__(self) -> datetime:
        return self.at


def local(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=HANOI)


@pytest.fixture
async def pipeline(world: World, tmp_path: Path) -> Any:
    config = world.settings.config_dir
    for name in ("holidays.toml", "documents.toml", "legal_bases.toml"):
        (config / name).write_text((ROOT / "config" / name).read_text("utf-8"), "utf-8")
    partner = {"code": "BANK-VCB", "kind": "bank", "protocol": "rest", "endpoint": "http://127.0.0.1:9/vcb"}
    (config / "partners.toml").write_text(tomli_w.dumps({"partner": [partner]}), "utf-8")
    await upgrade(world.settings.resolved_database_url)
    db = Database(world.settings.resolved_database_url)
    clock = Clock(local("2026-01-05T09:00"))
    clients = ClientStore(world.settings.clients_dir)
    documents = DocumentService(
        db,
        catalog(),
        Signer.from_file(tmp_path / "receipt.pem"),
        clients,
        DocumentRules(
            calendar=load_calendar(config),
            partners=by_code(load_partners(config)),
            deadlines=load_deadlines(config),
            legal_bases=frozenset(load_legal_bases(config)),
        ),
        clock=clock,
    )
    watcher = DeadlineWatcher(db, documents, clients, "GW-THADS", timedelta(hours=4), 1.0, clock=clock)
    yield world, db, documents, watcher, clock
    await db.dispose()


async def send_order(world: World, documents: DocumentService, clock: Clock, at: datetime) -> dict[str, Any]:
    """The case system sends a blocking order at ``at`` (the fixed clock's time)."""
    clock.at = at
    order = orders.blocking("BANK-VCB", 1_000_000)
    order["created_at"] = at.isoformat()
    number = f"{uuid.uuid4().int % 9999}/QĐ-CCTHADS"
    order["body"]["decision"] = dict(order["body"]["decision"], number=number, date=at.date().isoformat())
    case_system = ClientStore(world.settings.clients_dir).get("THADS-HN")
    assert case_system is not None
    granted = dataclasses.replace(case_system, grants=case_system.grants | {"documents.send"})
    result = await documents.submit(Principal(granted, "officer", "jti"), order)
    assert not result.duplicate
    return order


async def row(db: Database, message_id: str) -> Any:
    async with db.read() as conn:
        return await store.get(conn, message_id)


async def deadline_events(db: Database, subject: str) -> list[dict[str, Any]]:
    async with db.read() as conn:
        rows = (await conn.execute(select(messages).where(messages.c.message_type == "event.deadline"))).all()
    return [json.loads(r.payload)["body"] | {"recipient": r.recipient} for r in rows if subject in r.payload]


@pytest.mark.parametrize(
    ("sent", "due", "quiet", "late"),
    [
        # Friday before Tết 2026 (14-22 February off): the third working day is Wednesday 25 February.
        ("2026-02-13T10:00", "2026-02-25T17:00", "2026-02-24T17:00", "2026-02-25T17:01"),
        # An ordinary Friday: the weekend does not count; due Wednesday.
        ("2026-03-06T15:30", "2026-03-11T17:00", "2026-03-10T23:00", "2026-03-12T08:00"),
    ],
    ids=["across-tet", "across-a-weekend"],
)
async def test_an_unanswered_order_is_reminded_then_escalated_on_the_right_working_day(
    pipeline: Any, sent: str, due: str, quiet: str, late: str
) -> None:
    world, db, documents, watcher, clock = pipeline
    order = await send_order(world, documents, clock, local(sent))
    stored = await row(db, order["message_id"])
    assert as_utc(stored.due_at) == local(due)

    clock.at = local(quiet) - timedelta(hours=5)
    assert await watcher.scan_once() == (0, 0)
    clock.at = local(due) - timedelta(hours=1)
    assert await watcher.scan_once() == (1, 0)
    assert await watcher.scan_once() == (0, 0)  # reminded once
    clock.at = local(late)
    assert await watcher.scan_once() == (0, 1)
    assert await watcher.scan_once() == (0, 0)  # escalated once

    assert (await row(db, order["message_id"])).status == "overdue"
    kinds = sorted(e["kind"] for e in await deadline_events(db, order["message_id"]))
    assert kinds == ["escalation", "reminder"]
    assert {e["recipient"] for e in await deadline_events(db, order["message_id"])} == {"THADS-HN"}


async def test_an_order_answered_in_time_is_never_escalated(pipeline: Any) -> None:
    world, db, documents, watcher, clock = pipeline
    order = await send_order(world, documents, clock, local("2026-03-06T15:30"))
    report = orders.report_document(
        order,
        {
            "executed_at": local("2026-03-09T09:00").isoformat(),
            "outcome": "executed",
            "total_blocked": 1_000_000,
            "accounts": [
                {
                    "account_number": "0011000123456",
                    "currency": "VND",
                    "blocked_amount": 1_000_000,
                    "status": "blocked",
                }
            ],
        },
    )
    report["created_at"] = local("2026-03-09T09:05").isoformat()
    clock.at = local("2026-03-09T09:05")
    await documents.accept_from_partner("BANK-VCB", report)
    assert (await row(db, order["message_id"])).status == "answered"
    clock.at = local("2026-03-20T09:00")
    assert await watcher.scan_once() == (0, 0)
