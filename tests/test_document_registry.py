"""The registry of document types as data: what every entry must say, and the mistakes it refuses when it
is declared (an unknown partner kind or role, an answer that does not answer back, an unknown reference)."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from gateway.domain import orders
from gateway.domain.doctypes import DocumentType, PartnerKind, Reference
from gateway.domain.parties import CLIENT_ROLES
from gateway.domain.registry import REGISTRY, check, partner_kinds_receiving_documents
from gateway.schema_examples import valid_examples
from gateway.simulators.partners.servers import KINDS
from gateway.validation import catalog

EXAMPLES = Path(__file__).resolve().parent.parent / "gateway" / "schemas" / "examples"


def order(**fields: object) -> DocumentType:
    entry = {
        "message_type": "order.example",
        "natural_key": orders.order_key,
        "recipients": "partner",
        "partner_kinds": frozenset({PartnerKind.VEHICLE_REGISTER}),
        "answer_type": "report.example",
    }
    return DocumentType(**(entry | fields))  # type: ignore[arg-type]


def report(**fields: object) -> DocumentType:
    entry = {
        "message_type": "report.example",
        "natural_key": orders.report_key,
        "recipients": "client",
        "answers": frozenset({"order.example"}),
    }
    return DocumentType(**(entry | fields))  # type: ignore[arg-type]


@pytest.mark.parametrize("message_type", list(REGISTRY))
def test_every_type_has_its_schema_and_a_valid_example(message_type: str) -> None:
    assert message_type in catalog().message_types()
    assert valid_examples(message_type), message_type


def test_partner_kinds_are_those_of_the_enum_as_plain_strings() -> None:
    for doc_type in REGISTRY.values():
        assert all(type(kind) is str and kind in set(PartnerKind) for kind in doc_type.partner_kinds)
    assert partner_kinds_receiving_documents() <= set(PartnerKind)
    assert set(PartnerKind) <= CLIENT_ROLES  # a partner pushing its answers is a client of its kind
    assert sorted(KINDS) == sorted(PartnerKind)  # a simulator for every kind


def test_the_vehicle_register_is_not_the_police() -> None:
    assert (PartnerKind.VEHICLE_REGISTER.value, PartnerKind.POLICE_UNIT.value) == ("vehicle", "police")


def test_an_unknown_partner_kind_is_refused_naming_the_valid_ones() -> None:
    with pytest.raises(ValueError) as caught:
        order(partner_kinds=frozenset({"police-vehicle"}))

    message = str(caught.value)
    assert "order.example" in message and "'police-vehicle'" in message
    assert all(kind.value in message for kind in PartnerKind)


def test_partner_kinds_go_with_partner_recipients_only() -> None:
    with pytest.raises(ValueError, match="partner_kinds"):
        order(partner_kinds=frozenset())
    with pytest.raises(ValueError, match="partner_kinds"):
        report(partner_kinds=frozenset({PartnerKind.BANK}))


def test_an_unknown_role_is_refused() -> None:
    with pytest.raises(ValueError, match=r"unknown role.*enforcement-office"):
        order(sent_by=frozenset({"enforcement-office"}))


def test_the_registry_as_declared_passes_its_checks() -> None:
    assert check(REGISTRY.values()) == REGISTRY


def test_an_order_and_its_report_declared_together_pass() -> None:
    declared = check([order(), report(sent_by=frozenset({PartnerKind.VEHICLE_REGISTER}))])
    assert set(declared) == {"order.example", "report.example"}


@pytest.mark.parametrize(
    ("types", "expected"),
    [
        ([order()], "answer_type report.example must be declared"),
        (
            [order(), report(answers=frozenset({"order.other"}))],
            "answer_type report.example must be declared",
        ),
        (
            [order(answer_type=None), report()],
            "answers order.example, which must be declared with answer_type",
        ),
        ([order(), report(), report()], "declared twice"),
        (
            [
                order(references=(Reference("seizure_order", frozenset({"order.missing"})),)),
                report(),
            ],
            "reference seizure_order names undeclared order.missing",
        ),
    ],
    ids=["no-answer-type", "answer-elsewhere", "answers-unasked", "twice", "unknown-reference"],
)
def test_inconsistent_entries_are_refused_saying_what_to_fix(
    types: list[DocumentType], expected: str
) -> None:
    with pytest.raises(ValueError, match=expected):
        check(types)


def test_entries_are_plain_data() -> None:
    entry = REGISTRY["order.account_blocking"]
    assert dataclasses.replace(entry, deadline="5wd").deadline == "5wd"
    assert entry.partner_kinds == {"bank"} and entry.answer_type == "report.account_blocking"
