"""The registry of document types: every family the gateway carries, as data.

Every type is one ``DocumentType(...)`` entry — here, or in the list of its family under
``gateway/domain/flows/`` — and everything particular to it is a field of that entry: who sends and
receives it (partner kinds from :class:`PartnerKind`), what answers it, the earlier documents it names,
its natural key, its rules (built from data: the rows an order lists, the statuses a report gives) and
its deadline. Adding a type: its schema and examples in ``gateway/schemas``, its entry here and, when a
partner receives it through its own API, the connector's path and the simulator's behaviour. See
"Adding a document type" in the README.

Importing this module checks the entries against each other (:func:`check`): an answer type that does
not answer back, a reference to an unknown type, fail at start-up with a message saying what to fix.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from types import MappingProxyType
from typing import Any, Final

from gateway.domain import judgment, orders
from gateway.domain.doctypes import Document, DocumentType, PartnerKind, Reference, RuleContext
from gateway.domain.flows import citizen, court, police, procuracy
from gateway.domain.issued import DEADLINE_EVENT, REVOCATION
from gateway.domain.orders import Rows
from gateway.domain.parties import COURT, ENFORCEMENT_OFFICE, GATEWAY
from gateway.domain.violations import Violation

#: Only an enforcement office orders a measure.
OFFICE = frozenset({ENFORCEMENT_OFFICE})
#: The order's deadline: its report within three working days (config/documents.toml may say otherwise).
ORDER_DEADLINE = "3wd"
#: What every order's entry says alike: an office sends it to a partner, whose report is due within
#: ORDER_DEADLINE, and the office confirms it once it has the report.
AN_ORDER: Final[dict[str, Any]] = dict(
    natural_key=orders.order_key,
    recipients="partner",
    debtor_refs=orders.debtor_refs,
    deadline=ORDER_DEADLINE,
    confirmed_by="sender",
    sent_by=OFFICE,
)
#: ... and every report's: the partner's answer to the office that sent the order.
A_REPORT: Final[dict[str, Any]] = dict(natural_key=orders.report_key, recipients="client")

ACCOUNTS = Rows("accounts", ("account_number",))
PARCELS = Rows("parcels", ("map_sheet", "parcel_number"))


def _judgment_rules(doc: Document, ctx: RuleContext) -> list[Violation]:
    return judgment.rule_violations(doc, ctx.max_inline_document_bytes)


def _judgment_debtors(doc: Document) -> tuple[str, ...]:
    return judgment.facts(doc).debtor_refs


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
    # -- Orders (docs/orders.md): an enforcement office orders a partner, the partner reports. The case
    # system confirms it has the report (confirmed_by="sender"): the order's exchange is then complete.
    DocumentType(
        message_type=orders.ACCOUNT_BLOCKING,
        **AN_ORDER,
        partner_kinds=frozenset({PartnerKind.BANK}),
        rules=orders.order_rules(ACCOUNTS),
        answer_type="report.account_blocking",
    ),
    DocumentType(
        message_type=orders.FUNDS_TRANSFER,
        **AN_ORDER,
        partner_kinds=frozenset({PartnerKind.BANK}),
        rules=orders.order_rules(ACCOUNTS),
        answer_type="report.funds_transfer",
        references=(Reference("blocking_order", frozenset({orders.ACCOUNT_BLOCKING})),),
    ),
    DocumentType(
        message_type=orders.ACCOUNT_RELEASE,
        **AN_ORDER,
        partner_kinds=frozenset({PartnerKind.BANK}),
        rules=orders.order_rules(ACCOUNTS, orders.release_scope),
        answer_type="report.account_release",
        references=(Reference("blocking_order", frozenset({orders.ACCOUNT_BLOCKING})),),
    ),
    DocumentType(
        message_type=orders.LAND_TRANSFER_SUSPENSION,
        **AN_ORDER,
        partner_kinds=frozenset({PartnerKind.LAND_REGISTRY}),
        rules=orders.order_rules(PARCELS),
        answer_type="report.land_transfer_suspension",
    ),
    DocumentType(
        message_type=orders.LAND_SUSPENSION_LIFTING,
        **AN_ORDER,
        partner_kinds=frozenset({PartnerKind.LAND_REGISTRY}),
        rules=orders.order_rules(PARCELS),
        answer_type="report.land_suspension_lifting",
        references=(Reference("suspension_order", frozenset({orders.LAND_TRANSFER_SUSPENSION})),),
    ),
    # -- Their reports: the partner an order went to answers it (in_reply_to = the order).
    DocumentType(
        message_type="report.account_blocking",
        **A_REPORT,
        rules=orders.blocking_report_rules,
        answers=frozenset({orders.ACCOUNT_BLOCKING}),
        sent_by=frozenset({PartnerKind.BANK}),
    ),
    DocumentType(
        message_type="report.funds_transfer",
        **A_REPORT,
        rules=orders.transfer_report_rules,
        answers=frozenset({orders.FUNDS_TRANSFER}),
        sent_by=frozenset({PartnerKind.BANK}),
    ),
    DocumentType(
        message_type="report.account_release",
        **A_REPORT,
        rules=orders.release_report_rules,
        answers=frozenset({orders.ACCOUNT_RELEASE}),
        sent_by=frozenset({PartnerKind.BANK}),
    ),
    DocumentType(
        message_type="report.land_transfer_suspension",
        **A_REPORT,
        rules=orders.rows_report_rules(PARCELS, done="suspended", not_done="not_suspended"),
        answers=frozenset({orders.LAND_TRANSFER_SUSPENSION}),
        sent_by=frozenset({PartnerKind.LAND_REGISTRY}),
    ),
    DocumentType(
        message_type="report.land_suspension_lifting",
        **A_REPORT,
        rules=orders.rows_report_rules(PARCELS, done="lifted", not_done="not_lifted"),
        answers=frozenset({orders.LAND_SUSPENSION_LIFTING}),
        sent_by=frozenset({PartnerKind.LAND_REGISTRY}),
    ),
    # -- Issued by the gateway alone.
    DocumentType(
        message_type=DEADLINE_EVENT,
        natural_key=orders.deadline_key,
        recipients="client",
        rules=orders.deadline_rules,
        confirmed_by="nobody",
        # Reminders and escalations are the gateway's word to a sender: no client may speak it.
        sent_by=frozenset({GATEWAY}),
    ),
    DocumentType(
        message_type=REVOCATION,
        natural_key=orders.revocation_key,
        recipients="any",
        rules=orders.revocation_rules,
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


def check(types: Iterable[DocumentType]) -> Mapping[str, DocumentType]:
    """The types by ``message_type``, once they agree with each other; ``ValueError`` saying what to fix
    otherwise: a type declared twice, an ``answer_type`` that is unknown or does not list the type in its
    ``answers`` (and the reverse), a reference to an unknown type."""
    by_type: dict[str, DocumentType] = {}
    for doc_type in types:
        if doc_type.message_type in by_type:
            raise ValueError(f"document type {doc_type.message_type} is declared twice")
        by_type[doc_type.message_type] = doc_type
    for name, doc_type in by_type.items():
        answer = by_type.get(doc_type.answer_type) if doc_type.answer_type else None
        if doc_type.answer_type and (answer is None or name not in answer.answers):
            raise ValueError(
                f"document type {name}: its answer_type {doc_type.answer_type} must be declared with "
                f"answers={{{name!r}}}"
            )
        for answered in sorted(doc_type.answers):
            if answered not in by_type or by_type[answered].answer_type != name:
                raise ValueError(
                    f"document type {name} answers {answered}, which must be declared with "
                    f"answer_type={name!r}"
                )
        for reference in doc_type.references:
            unknown = sorted(reference.types - by_type.keys())
            if unknown:
                raise ValueError(
                    f"document type {name}: reference {reference.field} names undeclared {', '.join(unknown)}"
                )
    return MappingProxyType(by_type)


REGISTRY: Mapping[str, DocumentType] = check(_TYPES)


def partner_kinds_receiving_documents() -> frozenset[str]:
    """Partner kinds some document type is delivered to through their connector."""
    return frozenset(kind for t in REGISTRY.values() for kind in t.partner_kinds)
