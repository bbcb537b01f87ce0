"""The procuracy document family (see docs/flows.md, "Procuracy").

- ``decision.enforcement`` (enforcement office -> a registered client, usually the court whose judgment
  it enforces): every accepted one is copied by the gateway to the procuracy of the same level, named
  for the sending office by the ``procuracy`` table of ``config/routing.toml``.
- ``procuracy.recommendation``, ``procuracy.protest``, ``procuracy.file_request`` (procuracy ->
  enforcement office), each answered by one ``procuracy.answer`` within the deadline of
  ``config/documents.toml``.

Pure rules, no I/O; every function takes a document that passed its schema.
"""

from __future__ import annotations

from typing import Final

from gateway.domain import orders
from gateway.domain.calendar import LOCAL_TZ
from gateway.domain.doctypes import Document, DocumentType, RuleContext
from gateway.domain.parties import ENFORCEMENT_OFFICE
from gateway.domain.parties import PROCURACY as PROCURACY_ROLE
from gateway.domain.violations import Violation

DECISION: Final = "decision.enforcement"
RECOMMENDATION: Final = "procuracy.recommendation"
PROTEST: Final = "procuracy.protest"
FILE_REQUEST: Final = "procuracy.file_request"
ANSWER: Final = "procuracy.answer"
#: What the procuracy sends and the enforcement office answers.
REQUESTS: Final = (RECOMMENDATION, PROTEST, FILE_REQUEST)
#: The routing table of ``config/routing.toml`` giving each enforcement office its procuracy.
ROUTING_TABLE: Final = "procuracy"


def decision_key(doc: Document) -> str:
    """The issuing office, decision number and date: the same decision whatever message carried it."""
    decision = doc["body"]["decision"]
    return f"{doc['sender']}|{decision['number']}|{decision['date']}"


def paper_key(doc: Document) -> str:
    """A procuracy paper (recommendation, protest, request) by its sender, number and date."""
    body = doc["body"]
    return f"{doc['sender']}|{body['number']}|{body['date']}"


def answer_key(doc: Document) -> str:
    """One answer per paper."""
    return str(doc["in_reply_to"])


def _not_after_today(path: str, value: str, ctx: RuleContext) -> list[Violation]:
    # The date printed on a Vietnamese paper is a local date.
    if ctx.now is not None and value > ctx.now.astimezone(LOCAL_TZ).date().isoformat():
        return [Violation(path, "cannot be after the day the document is sent", "chronology")]
    return []


def decision_rules(doc: Document, ctx: RuleContext) -> list[Violation]:
    body = doc["body"]
    out: list[Violation] = []
    decision = body["decision"]
    if decision["issuing_office"] != doc["sender"]:
        out.append(Violation("$.body.decision.issuing_office", "must equal the sender", "issuer"))
    out += _not_after_today("$.body.decision.date", decision["date"], ctx)
    if decision["date"] < body["title"]["judgment"]["date"]:
        out.append(
            Violation("$.body.decision.date", "cannot be before the judgment it enforces", "chronology")
        )
    return out


def paper_rules(doc: Document, ctx: RuleContext) -> list[Violation]:
    body = doc["body"]
    out = _not_after_today("$.body.date", body["date"], ctx)
    decision = body.get("decision")
    if decision is not None and decision["date"] > body["date"]:
        out.append(
            Violation("$.body.decision.date", "cannot be after the paper that concerns it", "chronology")
        )
    return out


TYPES: list[DocumentType] = [
    DocumentType(
        message_type=DECISION,
        natural_key=decision_key,
        recipients="client",
        rules=decision_rules,
        debtor_refs=orders.debtor_refs,
        copy_to=ROUTING_TABLE,
        sent_by=frozenset({ENFORCEMENT_OFFICE}),
    ),
    *(
        DocumentType(
            message_type=message_type,
            natural_key=paper_key,
            recipients="client",
            rules=paper_rules,
            answer_type=ANSWER,
            deadline="15wd",
            # The procuracy confirms it has the office's answer: its paper's exchange is then complete.
            confirmed_by="sender",
            sent_by=frozenset({PROCURACY_ROLE}),
        )
        for message_type in REQUESTS
    ),
    DocumentType(
        message_type=ANSWER,
        natural_key=answer_key,
        recipients="client",
        answers=frozenset(REQUESTS),
        sent_by=frozenset({ENFORCEMENT_OFFICE}),
    ),
]
