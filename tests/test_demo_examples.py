"""The demo's dated examples: the README sends a protection request that must be 10 days ahead of the day
it is sent; the demo writes a copy moved in time, which passes on any day."""

from __future__ import annotations

import json
from datetime import date, datetime, time
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from gateway.demo import write_dated_examples
from gateway.domain.doctypes import RuleContext
from gateway.domain.flows import police as rules
from gateway.validation import catalog


@pytest.mark.parametrize("today", [date(2026, 12, 2), date(2027, 2, 28), date(2031, 7, 15)])
def test_the_dated_protection_request_passes_on_any_day(tmp_path: Path, today: date) -> None:
    (path,) = write_dated_examples(tmp_path, today)
    doc = json.loads(path.read_text("utf-8"))
    assert datetime.fromisoformat(doc["created_at"]).date() == today
    assert catalog().violations(doc["message_type"], doc) == []
    now = datetime.combine(today, time(9), ZoneInfo("Asia/Ho_Chi_Minh"))
    assert rules.protection_request_rules(doc, RuleContext(now=now)) == []
    plan = doc["body"]["coercion_plan"]
    assert date.fromisoformat(plan["coercion_date"]) - today == date(2026, 12, 22) - date(2026, 12, 1)
