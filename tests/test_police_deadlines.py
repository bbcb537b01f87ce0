"""The police's answer deadlines on a fixed clock: a protection request nobody answers escalates on the
third working day (across a weekend), an unacknowledged call for urgent assistance 15 minutes after it
was accepted; and the 10-day notice rule reads the local date at acceptance."""

from __future__ import annotations

import dataclasses
import json
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
import tomli_w
from sqlalchemy import select

from gateway.domain.doctypes import RuleContext
from gateway.domain.errors import Refused
from gateway.domain.flows import police as rules
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
from tests.conftest import ROOT, World, make_world
from tests.support import police

HANOI = ZoneInfo("Asia/Ho_Chi_Minh")


class Clock:
    def __init__(self, at: datetime) -> None:
        self.at = at

    def __call__(self) -> datetime:
        return self.at


def local(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=HANOI)


@pytest.fixture
async def pipeline(database_url: str, tmp_path: Path) -> Any:
    """The document service and the deadline watcher on a fixed clock, on SQLite and PostgreSQL."""
    world = make_world(tmp_path, database_url)
    config = world.settings.config_dir
    for name in ("holidays.toml", "documents.toml", "legal_bases.toml"):
        (config / name).write_text((ROOT / "config" / name).read_text("utf-8"), "utf-8")
    partner = {"code": "CA-HN", "kind": "police", "protocol": "rest", "endpoint": "http://127.0.0.1:9/ca-hn"}
    (config / "partners.toml").write_text(tomli_w.dumps({"partner": [partner]}), "utf-8")
    await upgrade(world.settings.resolved_database_url)
    db = Database(world.settings.resolved_database_url)
    clock = Clock(local("2026-03-06T15:30"))
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


async def submit(world: World, documents: DocumentService, document: dict[str, Any]) -> None:
    case_system = ClientStore(world.settings.clients_dir).get("THADS-HN")
    assert case_system is not None
    granted = dataclasses.replace(case_system, grants=case_system.grants | {"documents.send"})
    result = await documents.submit(Principal(granted, "officer", "jti"), document)
    assert not result.duplicate


async def escalations(db: Database, subject: str) -> list[dict[str, Any]]:
    async with db.read() as conn:
        rows = (await conn.execute(select(messages).where(messages.c.message_type == "event.deadline"))).all()
    bodies = [json.loads(r.payload) for r in rows if subject in r.payload]
    return [b["body"] | {"priority": b.get("priority")} for b in bodies if b["body"]["kind"] == "escalation"]


async def status(db: Database, message_id: str) -> Any:
    async with db.read() as conn:
        return await store.get(conn, message_id)


async def test_an_unanswered_protection_request_escalates_on_the_third_working_day_across_a_weekend(
    pipeline: Any,
) -> None:
    world, db, documents, watcher, clock = pipeline
    # Friday 6 March 2026, 15:30: Saturday and Sunday do not count; the third working day is Wednesday.
    request = police.protection_request(coercion_in_days=20, today=date(2026, 3, 6))
    await submit(world, documents, request)
    stored = await status(db, request["message_id"])
    assert as_utc(stored.due_at) == local("2026-03-11T17:00")

    for quiet in ("2026-03-07T12:00", "2026-03-09T17:00", "2026-03-10T17:00", "2026-03-11T16:59"):
        clock.at = local(quiet)
        await watcher.scan_once()
        assert (await status(db, request["message_id"])).status != "overdue", quiet
    assert await escalations(db, request["message_id"]) == []

    clock.at = local("2026-03-11T17:01")
    assert (await watcher.scan_once())[1] == 1
    assert (await status(db, request["message_id"])).status == "overdue"
    (escalation,) = await escalations(db, request["message_id"])
    assert escalation["subject_message_id"] == request["message_id"]
    assert escalation["subject_type"] == "police.protection_request"
    assert escalation["priority"] == "urgent"  # escalations travel in the urgent lane
    assert (await watcher.scan_once())[1] == 0  # escalated once


async def test_an_unacknowledged_urgent_assistance_escalates_after_fifteen_minutes(pipeline: Any) -> None:
    world, db, documents, watcher, clock = pipeline
    clock.at = local("2026-03-07T08:31")  # a Saturday: minutes run every day
    call = police.urgent_assistance()
    call["body"]["since"] = "2026-03-07T08:30:00+07:00"
    await submit(world, documents, call)
    stored = await status(db, call["message_id"])
    assert stored.priority == "urgent"
    assert as_utc(stored.due_at) == local("2026-03-07T08:46")
    # The 4-hour reminder lead is capped at half the time to the deadline: no reminder at acceptance.
    assert (await watcher.scan_once()) == (0, 0)
    clock.at = local("2026-03-07T08:38:29")
    assert (await watcher.scan_once()) == (0, 0)
    clock.at = local("2026-03-07T08:38:30")
    assert (await watcher.scan_once()) == (1, 0)
    clock.at = local("2026-03-07T08:45")
    assert (await watcher.scan_once()) == (0, 0)
    clock.at = local("2026-03-07T08:46:01")
    assert (await watcher.scan_once())[1] == 1
    assert (await status(db, call["message_id"])).status == "overdue"


@pytest.mark.parametrize(
    ("accepted_at", "coercion", "refused"),
    [
        ("2026-03-06T09:00", "2026-03-16", False),  # exactly 10 days
        ("2026-03-06T09:00", "2026-03-15", True),  # 9 days
        # 23:30 in Hà Nội is still 6 March locally though 16:30 UTC: the local date counts.
        ("2026-03-06T23:30", "2026-03-16", False),
        # 00:30 on 7 March locally (17:30 UTC on the 6th): 16 March is now 9 days away.
        ("2026-03-07T00:30", "2026-03-16", True),
    ],
)
async def test_the_notice_period_counts_local_days_from_acceptance(
    pipeline: Any, accepted_at: str, coercion: str, refused: bool
) -> None:
    world, _db, documents, _watcher, clock = pipeline
    clock.at = local(accepted_at)
    day = date.fromisoformat(coercion)
    request = police.protection_request(
        coercion_in_days=(day - date(2026, 3, 6)).days, today=date(2026, 3, 6)
    )
    if not refused:
        await submit(world, documents, request)
        return
    with pytest.raises(Refused) as caught:
        await submit(world, documents, request)
    (violation,) = caught.value.violations
    assert violation.path == "$.body.coercion_plan.coercion_date"
    assert violation.rule == "notice_period"


def test_urgent_exempts_from_the_notice_period_but_needs_a_reason_and_a_future_date() -> None:
    now = local("2026-03-06T09:00")
    ctx = RuleContext(now=now)
    urgent = police.protection_request(coercion_in_days=1, priority="urgent", today=date(2026, 3, 6))
    assert rules.protection_request_rules(urgent, ctx) == []
    del urgent["body"]["urgent_reason"]
    assert [v.path for v in rules.protection_request_rules(urgent, ctx)] == ["$.body.urgent_reason"]
    past = police.protection_request(coercion_in_days=-1, priority="urgent", today=date(2026, 3, 6))
    past["body"]["coercion_plan"]["date"] = "2026-03-01"
    assert [v.rule for v in rules.protection_request_rules(past, ctx)] == ["past"]


def test_window_and_plan_dates_must_agree_with_the_coercion_date() -> None:
    request = police.protection_request(coercion_in_days=20, today=date(2026, 3, 6))
    request["body"]["window"] = {"from": "2026-04-10", "to": "2026-04-01"}
    request["body"]["coercion_plan"]["date"] = "2026-04-20"
    found = {(v.path, v.rule) for v in rules.protection_request_rules(request, RuleContext())}
    assert found == {
        ("$.body.window.to", "window"),
        ("$.body.coercion_plan.coercion_date", "window"),
        ("$.body.coercion_plan.date", "order"),
    }


def test_a_police_unit_is_no_lookup_source() -> None:
    from gateway.domain.inquiry import PartnerRef, expand_sources

    partners = [PartnerRef("CA-HN", "police"), PartnerRef("POLICE-VEH", "vehicle")]
    sources, problems = expand_sources("all", partners)
    assert [s.partner_code for s in sources] == ["POLICE-VEH"] and problems == []
    _, refused = expand_sources(["police"], partners)
    assert [v.path for v in refused] == ["$.sources[0]"]
