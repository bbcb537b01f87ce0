"""The procuracy and court families' pure rules, natural keys and registry entries."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from gateway.domain.doctypes import RuleContext
from gateway.domain.flows import court, procuracy
from gateway.domain.registry import REGISTRY
from gateway.domain.violations import Violation
from gateway.reference_data import load_routing
from gateway.validation import catalog
from tests.conftest import ROOT, example

# 18:00 UTC is already the next day in Hanoi: papers dated that local day are not "in the future".
EVENING = RuleContext(now=datetime(2026, 3, 4, 18, 0, tzinfo=UTC))


def paths(violations: list[Violation]) -> list[str]:
    return [v.path for v in violations]


def test_a_decision_must_be_issued_by_its_sender_after_the_judgment_and_not_in_the_future() -> None:
    doc = example("decision.enforcement", "valid-decision-two-payments.json")
    assert procuracy.decision_rules(doc, EVENING) == []
    doc["body"]["decision"] |= {"issuing_office": "THADS-HCM", "date": "2026-03-06"}
    doc["body"]["title"]["judgment"]["date"] = "2026-03-07"
    assert sorted(paths(procuracy.decision_rules(doc, EVENING))) == [
        "$.body.decision.date",
        "$.body.decision.date",
        "$.body.decision.issuing_office",
    ]


def test_a_paper_dated_today_in_hanoi_is_accepted_one_dated_tomorrow_is_not() -> None:
    doc = example("procuracy.protest", "valid-protest-against-a-decision.json")
    doc["body"]["date"] = "2026-03-05"  # Hanoi's date at 18:00 UTC on the 4th
    assert procuracy.paper_rules(doc, EVENING) == []
    doc["body"]["date"] = "2026-03-06"
    assert paths(procuracy.paper_rules(doc, EVENING)) == ["$.body.date"]


def test_the_procuracy_papers_are_answered_by_one_answer_each_and_closed_by_the_procuracy() -> None:
    for message_type in procuracy.REQUESTS:
        entry = REGISTRY[message_type]
        assert entry.answer_type == procuracy.ANSWER and entry.confirmed_by == "sender" and entry.deadline
    assert REGISTRY[procuracy.ANSWER].answers == frozenset(procuracy.REQUESTS)
    assert REGISTRY[procuracy.DECISION].copy_to == "procuracy"
    answer = example("procuracy.answer", "valid-recommendation-accepted.json")
    assert procuracy.answer_key(answer) == answer["in_reply_to"]


def test_a_suspension_needs_the_day_it_takes_effect_and_every_court_event_is_urgent() -> None:
    doc = example("court.event", "valid-suspension-by-message-id.json")
    assert court.event_rules(doc, EVENING) == []
    del doc["body"]["effective_from"]
    assert [v.path for v in catalog().violations(court.EVENT, doc)] == ["$.body.effective_from"]
    protest = example("court.event", "valid-cassation-protest-by-natural-key.json")
    assert protest["priority"] == "normal"
    assert REGISTRY[court.EVENT].priority(protest) == "urgent"


def test_a_clarification_request_goes_to_the_court_that_gave_the_judgment() -> None:
    doc = example("court.clarification_request", "valid-interest-question.json")
    assert court.request_rules(doc, EVENING) == []
    doc["recipient"] = "TAND-HCM"
    assert paths(court.request_rules(doc, EVENING)) == ["$.recipient"]


def test_a_judgment_reference_builds_the_judgments_own_natural_key() -> None:
    ruling = example("judgment.delivery", "valid-civil-judgment-two-persons.json")
    event = example("court.event", "valid-suspension-by-message-id.json")
    [reference] = REGISTRY[court.EVENT].references
    assert reference.key is not None and reference.noted_as == "court_event" and reference.parties == "same"
    assert reference.key(event["body"]["judgment"]) == REGISTRY["judgment.delivery"].natural_key(ruling)
    [question] = REGISTRY[court.CLARIFICATION_REQUEST].references
    assert question.parties == "reverse" and question.noted_as == "clarification_requested"


def test_the_shipped_routing_sends_hanoi_decisions_to_the_hanoi_procuracy() -> None:
    assert load_routing(ROOT / "config")["procuracy"]["THADS-HN"] == "VKS-HN"


@pytest.mark.parametrize(
    "text",
    ['procuracy = "VKS-HN"', '[procuracy]\n"THADS-HN" = "vks hn"', '[procuracy]\n"THADS-HN" = 3'],
)
def test_a_routing_file_that_is_not_agency_codes_is_refused_at_load(tmp_path: Path, text: str) -> None:
    (tmp_path / "routing.toml").write_text(text, "utf-8")
    with pytest.raises(ValueError, match=r"routing\.toml"):
        load_routing(tmp_path)
