"""The registry of document types: every family the gateway carries, as data.

Adding a type: its schema and examples in ``gateway/schemas``, its pure rules in ``gateway/domain``, one
entry here, its deadline in ``config/documents.toml`` (optional) and, when a partner receives it through
its own API, the connector's ``deliver``. See "Adding a document type" in the README.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from types import MappingProxyType

from gateway.domain import judgment, orders
from gateway.domain.doctypes import Document, DocumentType, Reference, RuleContext
from gateway.domain.flows import citizen, court, police, procuracy
from gateway.domain.issued import DEADLINE_EVENT, REVOCATION
from gateway.domain.parties import BANK, COURT, ENFORCEMENT_OFFICE, GATEWAY, LAND
from gateway.domain.violations import Violation


def _judgment_rules(doc: Document, ctx: RuleContext) -> list[Violation]:
    return judgment.rule_violations(doc, ctx.max_inline_document_bytes)


def _judgment_debtors(doc: Document) -> tuple[str, ...]:
    return judgment.facts(doc).debtor_refs


def _pure(message_type: str) -> Callable[[Document, RuleContext], list[Violation]]:
    rule = orders.RULES[message_type]

    def rules(doc: Document, _ctx: RuleContext) -> list[Violation]:
        return rule(doc)

    return rules


#: Partner kind receiving each order (and sending its report), and the body field naming the earlier
#: order it follows.
_ORDERS: dict[str, tuple[str, Reference | None]] = {
    orders.ACCOUNT_BLOCKING: (BANK, None),
    orders.FUNDS_TRANSFER: (BANK, Reference("blocking_order", frozenset({orders.ACCOUNT_BLOCKING}))),
    orders.ACCOUNT_RELEASE: (BANK, Reference("blocking_order", frozenset({orders.ACCOUNT_BLOCKING}))),
    orders.LAND_TRANSFER_SUSPENSION: (LAND, None),
    orders.LAND_SUSPENSION_LIFTING: (
        LAND,
        Reference("suspension_order", frozenset({orders.LAND_TRANSFER_SUSPENSION})),
    ),
}


def _order(message_type: str) -> DocumentType:
    kind, reference = _ORDERS[message_type]
    return DocumentType(
        message_type=message_type,
        natural_key=orders.NATURAL_KEYS[message_type],
        recipients="partner",
        partner_kinds=frozenset({kind}),
        rules=_pure(message_type),
        debtor_refs=orders.debtor_refs,
        answer_type=orders.REPORT_FOR[message_type],
        references=(reference,) if reference else (),
        deadline="3wd",
        # The case system confirms it has the report: the order's exchange is then complete.
        confirmed_by="sender",
        sent_by=frozenset({ENFORCEMENT_OFFICE}),
    )


def _report(order_type: str) -> DocumentType:
    message_type = orders.REPORT_FOR[order_type]
    return DocumentType(
        message_type=message_type,
        natural_key=orders.NATURAL_KEYS[message_type],
        recipients="client",
        rules=_pure(message_type),
        answers=frozenset({order_type}),
        # The partner the order went to: a bank reports on accounts, the land registry on parcels.
        sent_by=frozenset({_ORDERS[order_type][0]}),
    )


_TYPES: list[DocumentType] = [
    DocumentType(
        message_type=judgment.MESSAGE_TYPE,
        natural_key=judgment.natural_key,
        recipients="client",
        rules=_judgment_rules,
        debtor_refs=_judgment_debtors,
        priority=judgment.priority,
        confirmation_needs_case_ref=True,
        extra_grants=frozenset({"judgments.push"}),
        sent_by=frozenset({COURT}),
    ),
    *(_order(t) for t in orders.ORDER_TYPES),
    *(_report(t) for t in orders.ORDER_TYPES),
    DocumentType(
        message_type=DEADLINE_EVENT,
        natural_key=orders.NATURAL_KEYS[DEADLINE_EVENT],
        recipients="client",
        rules=_pure(DEADLINE_EVENT),
        confirmed_by="nobody",
        # Reminders and escalations are the gateway's word to a sender: no client may speak it.
        sent_by=frozenset({GATEWAY}),
    ),
    DocumentType(
        message_type=REVOCATION,
        natural_key=orders.NATURAL_KEYS[REVOCATION],
        recipients="any",
        rules=_pure(REVOCATION),
        references=(Reference("revokes"),),
        delivered_event="revocation_delivered",
        # Issued on the sender's behalf through POST /v1/messages/{id}/revocation, never pushed.
        sent_by=frozenset({GATEWAY}),
    ),
    *police.TYPES,
    *procuracy.TYPES,
    *court.TYPES,
    *citizen.TYPES,
]

REGISTRY: Mapping[str, DocumentType] = MappingProxyType({t.message_type: t for t in _TYPES})


def partner_kinds_receiving_documents() -> frozenset[str]:
    """Partner kinds some document type is delivered to through their connector."""
    return frozenset(kind for t in REGISTRY.values() for kind in t.partner_kinds)
