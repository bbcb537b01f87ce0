"""Rules for orders, their reports, deadline events and revocations beyond their JSON Schemas
(gateway.domain.orders, as the registry's entries use them): every broken document here passes its
schema, so only the rules catch it."""

from __future__ import annotations

import ast
import copy
import json
from pathlib import Path
from typing import Any

import pytest

import gateway.domain.orders as orders_module
from gateway.domain.doctypes import RuleContext
from gateway.domain.orders import debtor_refs
from gateway.domain.registry import REGISTRY
from gateway.domain.violations import Violation
from gateway.schema_examples import valid_examples
from gateway.validation import catalog

EXAMPLES = Path(__file__).resolve().parent.parent / "gateway" / "schemas" / "examples"
#: The orders and their reports, as the registry declares them, with the gateway's deadline events and
#: revocations: the types whose rules gateway.domain.orders builds.
ORDER_TYPES = [t for t in REGISTRY if t.startswith("order.")]
REPORT_FOR = {order: str(REGISTRY[order].answer_type) for order in ORDER_TYPES}
REPORT_TYPES = [t for t in REGISTRY if t.startswith("report.")]
MESSAGE_TYPES = [*ORDER_TYPES, *REPORT_TYPES, "event.deadline", "document.revocation"]


def rule_violations(doc: dict[str, Any]) -> list[Violation]:
    return REGISTRY[doc["message_type"]].rules(doc, RuleContext())


def natural_key(doc: dict[str, Any]) -> str:
    return REGISTRY[doc["message_type"]].natural_key(doc)


VALID = [
    (message_type, name, doc) for message_type in MESSAGE_TYPES for name, doc in valid_examples(message_type)
]


def example(message_type: str, name: str) -> dict[str, Any]:
    doc: dict[str, Any] = json.loads((EXAMPLES / message_type / name).read_text("utf-8"))
    return doc


def blocking_order() -> dict[str, Any]:
    return example("order.account_blocking", "valid-person-listed-accounts.json")


def partial_release() -> dict[str, Any]:
    return example("order.account_release", "valid-partial-release.json")


def land_suspension() -> dict[str, Any]:
    return example("order.land_transfer_suspension", "valid-two-parcels-replacing-earlier-order.json")


def blocking_report() -> dict[str, Any]:
    return example("report.account_blocking", "valid-partially-executed-earlier-seizure.json")


def transfer_report() -> dict[str, Any]:
    return example("report.funds_transfer", "valid-executed.json")


def release_report() -> dict[str, Any]:
    return example("report.account_release", "valid-full-release.json")


def suspension_report() -> dict[str, Any]:
    return example("report.land_transfer_suspension", "valid-second-parcel-already-transferred.json")


def lifting_report() -> dict[str, Any]:
    return example("report.land_suspension_lifting", "valid-not-lifted-other-order.json")


def reminder() -> dict[str, Any]:
    return example("event.deadline", "valid-reminder-before-deadline.json")


def violations(doc: dict[str, Any]) -> list[tuple[str, str]]:
    """(path, rule) of every rule ``doc`` breaks; ``doc`` must still satisfy its schema."""
    assert catalog().violations(doc["message_type"], doc) == [], "a rule test needs a schema-valid document"
    found = rule_violations(doc)
    assert all(isinstance(v, Violation) and v.message for v in found)
    return [(v.path, v.rule) for v in found]


def messages(doc: dict[str, Any]) -> list[str]:
    return [v.message for v in rule_violations(doc)]


def account(number: str, amount: int, status: str, reason: str | None = None) -> dict[str, Any]:
    row: dict[str, Any] = {
        "account_number": number,
        "currency": "VND",
        "blocked_amount": amount,
        "status": status,
    }
    if reason is not None:
        row["reason"] = reason
    return row


# --- Coverage ----------------------------------------------------------------------------------------


def test_every_order_and_report_has_its_schema_and_an_order_of_a_partner() -> None:
    assert ORDER_TYPES and len(REPORT_TYPES) == len(ORDER_TYPES)
    assert set(MESSAGE_TYPES) <= set(catalog().message_types())
    for order in ORDER_TYPES:
        assert REGISTRY[order].recipients == "partner" and REGISTRY[order].partner_kinds, order
        assert REGISTRY[order].natural_key is orders_module.order_key, order
    for report in REPORT_TYPES:
        assert REGISTRY[report].natural_key is orders_module.report_key, report


def test_every_order_type_has_its_report_type() -> None:
    assert sorted(REPORT_FOR.values()) == sorted(REPORT_TYPES)
    assert all(report == "report." + order.removeprefix("order.") for order, report in REPORT_FOR.items())
    # The partner an order goes to is the one that sends its report.
    assert all(
        REGISTRY[report].sent_by == REGISTRY[order].partner_kinds for order, report in REPORT_FOR.items()
    )


@pytest.mark.parametrize("case", VALID, ids=lambda c: f"{c[0]}/{c[1]}")
def test_valid_examples_break_no_rule(case: tuple[str, str, dict[str, Any]]) -> None:
    message_type, _, doc = case
    assert doc["message_type"] == message_type
    assert violations(doc) == []


def test_every_type_has_a_valid_example() -> None:
    for message_type in MESSAGE_TYPES:
        assert [c for c in VALID if c[0] == message_type], message_type


def test_an_unknown_message_type_has_no_rules() -> None:
    doc = blocking_order()
    doc["message_type"] = "order.unknown"
    with pytest.raises(KeyError):
        rule_violations(doc)
    with pytest.raises(KeyError):
        natural_key(doc)


def test_the_rules_module_does_no_io_and_knows_no_transport() -> None:
    tree = ast.parse(Path(orders_module.__file__).read_text("utf-8"))
    imported = {n.module or "" for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)}
    imported |= {a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
    assert all(not m.startswith("gateway.") or m.startswith("gateway.domain.") for m in imported), imported
    assert not imported & {"aiohttp", "aio_pika", "sqlalchemy", "os", "pathlib", "io", "socket"}


# --- Orders ------------------------------------------------------------------------------------------


def test_a_decision_issued_by_another_office_than_the_sender_is_refused() -> None:
    doc = blocking_order()
    doc["body"]["decision"]["issuing_office"] = "THADS-HCM"
    assert violations(doc) == [("$.body.decision.issuing_office", "issuer")]


def test_a_decision_dated_after_the_day_the_order_was_created_is_refused() -> None:
    doc = blocking_order()
    doc["body"]["decision"]["date"] = "2026-03-10"
    assert violations(doc) == [("$.body.decision.date", "chronology")]


def test_the_decision_date_is_compared_with_the_local_day_of_creation() -> None:
    doc = blocking_order()
    doc["created_at"] = "2026-03-09T00:30:00+07:00"  # still 8 March in UTC
    doc["body"]["decision"]["date"] = "2026-03-09"
    assert violations(doc) == []


def test_an_enforcement_decision_before_the_judgment_is_refused() -> None:
    doc = land_suspension()
    doc["body"]["title"]["enforcement_decision"]["date"] = "2026-01-21"
    assert violations(doc) == [("$.body.title.enforcement_decision.date", "chronology")]


def test_an_enforcement_decision_on_the_day_of_the_judgment_is_accepted() -> None:
    doc = land_suspension()
    doc["body"]["title"]["enforcement_decision"]["date"] = doc["body"]["title"]["judgment"]["date"]
    assert violations(doc) == []


def test_the_same_account_listed_twice_in_an_order_is_refused() -> None:
    doc = blocking_order()
    doc["body"]["accounts"].append({"account_number": doc["body"]["accounts"][0]["account_number"]})
    assert violations(doc) == [("$.body.accounts[2]", "unique")]


def test_the_same_parcel_listed_twice_in_an_order_is_refused() -> None:
    doc = land_suspension()
    doc["body"]["parcels"].append({"map_sheet": "5", "parcel_number": "37"})
    assert violations(doc) == [("$.body.parcels[2]", "unique")]


def test_a_partial_release_without_an_amount_is_refused() -> None:
    doc = partial_release()
    del doc["body"]["amount"]
    assert violations(doc) == [("$.body", "scope")]
    assert messages(doc) == ["'amount' is required when scope is 'partial'"]


def test_a_full_release_with_an_amount_is_refused() -> None:
    doc = partial_release()
    doc["body"]["scope"] = "full"
    assert violations(doc) == [("$.body.amount", "scope")]


def test_a_full_release_without_an_amount_is_accepted() -> None:
    doc = partial_release()
    doc["body"]["scope"] = "full"
    del doc["body"]["amount"]
    assert violations(doc) == []


def test_a_document_replacing_itself_is_refused() -> None:
    doc = land_suspension()
    doc["replaces"] = doc["message_id"].upper()
    assert violations(doc) == [("$.replaces", "reference")]


# --- Account blocking report -------------------------------------------------------------------------


def test_a_report_executed_after_it_was_created_is_refused() -> None:
    doc = blocking_report()
    doc["body"]["executed_at"] = "2026-03-09T03:22:00Z"  # 10:22 in Hanoi, after 10:21:30
    assert violations(doc) == [("$.body.executed_at", "chronology")]


def test_a_blocked_account_with_a_reason_is_refused() -> None:
    doc = example("report.account_blocking", "valid-all-accounts-blocked.json")
    doc["body"]["accounts"][0]["reason"] = "insufficient_funds"
    assert violations(doc) == [("$.body.accounts[0].reason", "reason")]


@pytest.mark.parametrize("status", ["not_blocked", "partially_blocked"])
def test_an_account_not_fully_blocked_needs_a_reason(status: str) -> None:
    doc = blocking_report()
    doc["body"]["accounts"][0]["status"] = status
    del doc["body"]["accounts"][0]["reason"]
    if status == "not_blocked":
        doc["body"]["accounts"][0]["blocked_amount"] = 0
        doc["body"]["total_blocked"] = 0
        doc["body"]["outcome"] = "not_executed"
    assert violations(doc) == [("$.body.accounts[0]", "reason")]


def test_an_earlier_seizure_needs_its_rank() -> None:
    doc = blocking_report()
    del doc["body"]["accounts"][1]["earlier_seizure_rank"]
    assert violations(doc) == [("$.body.accounts[1]", "reason")]


def test_a_rank_without_an_earlier_seizure_is_refused() -> None:
    doc = blocking_report()
    doc["body"]["accounts"][1]["reason"] = "closed"
    assert violations(doc) == [("$.body.accounts[1].earlier_seizure_rank", "reason")]


@pytest.mark.parametrize("status", ["blocked", "partially_blocked"])
def test_nothing_blocked_is_reported_only_as_not_blocked(status: str) -> None:
    doc = example("report.account_blocking", "valid-all-accounts-blocked.json")
    doc["body"]["accounts"][1].update(blocked_amount=0, status=status)
    if status == "partially_blocked":
        doc["body"]["accounts"][1]["reason"] = "insufficient_funds"
        doc["body"]["outcome"] = "partially_executed"
    doc["body"]["total_blocked"] = doc["body"]["accounts"][0]["blocked_amount"]
    assert violations(doc) == [("$.body.accounts[1].blocked_amount", "amount")]


def test_an_amount_blocked_on_a_not_blocked_account_is_refused() -> None:
    doc = blocking_report()
    doc["body"]["accounts"][1]["blocked_amount"] = 1000000
    doc["body"]["total_blocked"] += 1000000
    assert violations(doc) == [("$.body.accounts[1].blocked_amount", "amount")]


def test_total_blocked_must_equal_the_sum_of_the_accounts() -> None:
    doc = blocking_report()
    doc["body"]["total_blocked"] = 367500000
    assert violations(doc) == [("$.body.total_blocked", "total")]
    assert "212,400,000" in messages(doc)[0]


def test_the_same_account_reported_twice_is_refused() -> None:
    doc = example("report.account_blocking", "valid-all-accounts-blocked.json")
    doc["body"]["accounts"][1]["account_number"] = doc["body"]["accounts"][0]["account_number"]
    assert violations(doc) == [("$.body.accounts[1]", "unique")]


@pytest.mark.parametrize(
    ("rows", "outcomes"),
    [
        ([("blocked", 5), ("blocked", 7)], {"executed", "partially_executed"}),
        # The amount reached on the first account, the second one closed: executed (as banks answer).
        ([("blocked", 5), ("not_blocked", 0)], {"executed", "partially_executed"}),
        ([("partially_blocked", 5), ("partially_blocked", 7)], {"executed", "partially_executed"}),
        ([("not_blocked", 0), ("partially_blocked", 7)], {"executed", "partially_executed"}),
        ([("not_blocked", 0), ("not_blocked", 0)], {"not_executed"}),
        ([], {"not_executed"}),
    ],
)
def test_the_blocking_outcome_follows_the_accounts(rows: list[tuple[str, int]], outcomes: set[str]) -> None:
    """Nothing blocked is not_executed; otherwise the order's amount, not the rows, tells executed from
    partially_executed."""
    doc = blocking_report()
    doc["body"]["accounts"] = [
        account(f"00110044556{i}", amount, status, None if status == "blocked" else "insufficient_funds")
        for i, (status, amount) in enumerate(rows)
    ]
    doc["body"]["total_blocked"] = sum(amount for _, amount in rows)
    for stated in ("executed", "partially_executed", "not_executed"):
        doc["body"]["outcome"] = stated
        expected = [] if stated in outcomes else [("$.body.outcome", "outcome")]
        assert violations(doc) == expected, stated


# --- Funds transfer and release reports --------------------------------------------------------------


def test_transferred_amount_must_equal_the_sum_of_the_transfers() -> None:
    doc = transfer_report()
    doc["body"]["transfers"].append({"account_number": "0011004455901", "amount": 600000})
    assert violations(doc) == [("$.body.transferred_amount", "total")]


def test_a_transfer_not_executed_needs_a_reason() -> None:
    doc = example("report.funds_transfer", "valid-not-executed-with-reason.json")
    del doc["body"]["reason"]
    assert violations(doc) == [("$.body", "reason")]


def test_an_executed_transfer_gives_no_reason() -> None:
    doc = transfer_report()
    doc["body"]["reason"] = "Đã chuyển đủ số tiền"
    assert violations(doc) == [("$.body.reason", "reason")]


def test_a_partially_executed_transfer_may_give_a_reason() -> None:
    doc = transfer_report()
    doc["body"]["outcome"] = "partially_executed"
    doc["body"]["reason"] = "Số dư khả dụng không đủ để chuyển toàn bộ"
    assert violations(doc) == []


def test_a_transfer_of_nothing_is_not_executed() -> None:
    doc = example("report.funds_transfer", "valid-not-executed-with-reason.json")
    doc["body"]["outcome"] = "partially_executed"
    assert violations(doc) == [("$.body.outcome", "outcome")]


def test_a_transfer_of_something_is_not_reported_as_not_executed() -> None:
    doc = transfer_report()
    doc["body"].update(outcome="not_executed", reason="Lỗi hệ thống")
    assert violations(doc) == [("$.body.outcome", "outcome")]


def test_total_released_must_equal_the_sum_of_the_released_rows() -> None:
    doc = release_report()
    doc["body"]["released"].pop()
    assert violations(doc) == [("$.body.total_released", "total")]


def test_a_release_of_nothing_is_not_executed() -> None:
    doc = release_report()
    doc["body"].update(released=[], total_released=0)
    assert violations(doc) == [("$.body.outcome", "outcome")]
    doc["body"]["outcome"] = "not_executed"
    assert violations(doc) == []


# --- Land reports ------------------------------------------------------------------------------------


def test_a_parcel_not_suspended_needs_a_reason() -> None:
    doc = suspension_report()
    del doc["body"]["parcels"][1]["reason"]
    assert violations(doc) == [("$.body.parcels[1]", "reason")]


def test_a_suspended_parcel_gives_no_reason() -> None:
    doc = suspension_report()
    doc["body"]["parcels"][0]["reason"] = "already_suspended"
    assert violations(doc) == [("$.body.parcels[0].reason", "reason")]


def test_a_parcel_not_lifted_needs_a_reason() -> None:
    doc = lifting_report()
    del doc["body"]["parcels"][0]["reason"]
    assert violations(doc) == [("$.body.parcels[0]", "reason")]


def test_a_lifted_parcel_gives_no_reason() -> None:
    doc = lifting_report()
    doc["body"]["parcels"][0]["status"] = "lifted"
    doc["body"]["outcome"] = "executed"
    assert violations(doc) == [("$.body.parcels[0].reason", "reason")]


@pytest.mark.parametrize(
    ("statuses", "outcome"),
    [
        (["suspended", "suspended"], "executed"),
        (["suspended", "not_suspended"], "partially_executed"),
        (["not_suspended", "not_suspended"], "not_executed"),
    ],
)
def test_the_suspension_outcome_follows_the_parcels(statuses: list[str], outcome: str) -> None:
    doc = suspension_report()
    for parcel, status in zip(doc["body"]["parcels"], statuses, strict=True):
        parcel["status"] = status
        parcel.pop("registration_ref", None)
        if status == "suspended":
            parcel.pop("reason", None)
        else:
            parcel["reason"] = "not_found"
    for stated in ("executed", "partially_executed", "not_executed"):
        doc["body"]["outcome"] = stated
        expected = [] if stated == outcome else [("$.body.outcome", "outcome")]
        assert violations(doc) == expected, stated


def test_the_lifting_outcome_follows_the_parcels() -> None:
    doc = lifting_report()
    doc["body"]["outcome"] = "executed"
    assert violations(doc) == [("$.body.outcome", "outcome")]
    assert messages(doc) == ["must be 'not_executed': none of the parcels is lifted"]


def test_the_same_parcel_reported_twice_is_refused() -> None:
    doc = suspension_report()
    doc["body"]["parcels"][1].update(map_sheet="5", parcel_number="37")
    assert violations(doc) == [("$.body.parcels[1]", "unique")]


# --- Deadline events and revocations -----------------------------------------------------------------


def test_a_reminder_after_its_deadline_is_refused() -> None:
    doc = reminder()
    doc["created_at"] = "2026-03-19T17:00:01+07:00"
    assert violations(doc) == [("$.body.due_at", "chronology")]


def test_an_escalation_before_its_deadline_is_refused() -> None:
    doc = example("event.deadline", "valid-escalation-after-deadline.json")
    doc["created_at"] = "2026-03-18T09:59:59Z"  # 16:59:59 in Hanoi
    assert violations(doc) == [("$.body.due_at", "chronology")]


def test_a_deadline_event_about_itself_is_refused() -> None:
    doc = reminder()
    doc["body"]["subject_message_id"] = doc["message_id"]
    assert violations(doc) == [("$.body.subject_message_id", "reference")]


def test_a_revocation_of_itself_is_refused() -> None:
    doc = example("document.revocation", "valid-revoke-blocking-order.json")
    doc["body"]["revokes"] = doc["message_id"]
    assert violations(doc) == [("$.body.revokes", "reference")]


# --- Natural keys ------------------------------------------------------------------------------------


def test_an_order_is_keyed_by_sender_recipient_and_decision() -> None:
    assert natural_key(blocking_order()) == "THADS-HN|BANK-VCB|45/QĐ-CCTHADS|2026-03-09"


def test_a_resent_order_under_a_new_message_id_is_the_same_order() -> None:
    first, again = blocking_order(), blocking_order()
    again["message_id"] = "0f5e1c9a-3b7d-4e2f-8a6c-9d1b2e3f4a5b"
    again["created_at"] = "2026-03-09T11:00:00+07:00"
    assert natural_key(again) == natural_key(first)


def test_the_same_decision_sent_to_another_partner_is_another_order() -> None:
    to_vcb, to_bidv = blocking_order(), blocking_order()
    to_bidv["recipient"] = "BANK-BIDV"
    assert natural_key(to_bidv) != natural_key(to_vcb)


def test_a_report_is_keyed_by_the_order_it_answers() -> None:
    report = blocking_report()
    assert natural_key(report) == report["in_reply_to"] == blocking_order()["message_id"]


def test_a_deadline_event_is_keyed_by_its_document_and_kind() -> None:
    doc = reminder()
    assert natural_key(doc) == f"{doc['body']['subject_message_id']}|reminder"
    escalation = copy.deepcopy(doc)
    escalation["body"]["kind"] = "escalation"
    assert natural_key(escalation) != natural_key(doc)


def test_a_revocation_is_keyed_by_the_revoked_document() -> None:
    doc = example("document.revocation", "valid-revoke-blocking-order.json")
    assert natural_key(doc) == f"revokes|{doc['body']['revokes']}"


@pytest.mark.parametrize("message_type", MESSAGE_TYPES)
def test_the_natural_key_is_picked_by_message_type(message_type: str) -> None:
    doc = valid_examples(message_type)[0][1]
    assert natural_key(doc) == REGISTRY[message_type].natural_key(doc)


# --- Audit references --------------------------------------------------------------------------------


def test_a_person_debtor_is_referred_to_by_a_masked_id() -> None:
    doc = blocking_order()
    assert debtor_refs(doc) == ("person:001*******21",)
    assert doc["body"]["debtor"]["id_number"] not in "".join(debtor_refs(doc))


def test_an_organisation_debtor_is_referred_to_by_its_enterprise_code() -> None:
    doc = example("order.account_blocking", "valid-urgent-organisation-all-accounts.json")
    assert debtor_refs(doc) == ("org:0108765432",)


@pytest.mark.parametrize("message_type", [*REPORT_TYPES, "event.deadline", "document.revocation"])
def test_documents_other_than_orders_name_no_debtor(message_type: str) -> None:
    assert debtor_refs(valid_examples(message_type)[0][1]) == ()
