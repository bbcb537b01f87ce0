"""The court document family (see docs/flows.md, "Court events and clarification").

- ``court.event`` (court -> enforcement office): an appeal, a cassation or review protest, the suspension
  or resumption of the enforcement of a judgment. Always urgent: enforcement must stop or go on at once.
  It names the judgment it concerns (court code + number + date, and optionally its ``message_id``); the
  gateway finds that judgment and notes the event in its timeline (``court_event``).
- ``court.clarification_request`` (enforcement office -> the court that gave the judgment) and its
  ``court.clarification_answer``; the request is noted in the judgment's timeline too.

Pure rules, no I/O; every function takes a document that passed its schema.
"""

from __future__ import annotations

from typing import Any, Final

from gateway.domain import judgment
from gateway.domain.calendar import LOCAL_TZ
from gateway.domain.doctypes import Document, DocumentType, Reference, ReferenceParties, RuleContext
from gateway.domain.parties import COURT, ENFORCEMENT_OFFICE
from gateway.domain.violations import Violation

EVENT: Final = "court.event"
CLARIFICATION_REQUEST: Final = "court.clarification_request"
CLARIFICATION_ANSWER: Final = "court.clarification_answer"
#: Events that change whether a judgment may be enforced.
SUSPENSION: Final = "enforcement_suspended"
RESUMPTION: Final = "enforcement_resumed"


def judgment_key(ref: dict[str, Any]) -> str:
    """A judgment reference's natural key, as :func:`gateway.domain.judgment.natural_key` builds it."""
    return f"{ref['court_code']}|{ref['number']}|{ref['date']}"


def event_key(doc: Document) -> str:
    """The court, the kind of event and the court paper that carries it (notice, protest, decision)."""
    body = doc["body"]
    paper = body["decision"]
    return (
        f"{doc['sender']}|{judgment_key(body['judgment'])}|{body['event']}|{paper['number']}|{paper['date']}"
    )


def request_key(doc: Document) -> str:
    body = doc["body"]
    return f"{doc['sender']}|{body['number']}|{body['date']}"


def answer_key(doc: Document) -> str:
    return str(doc["in_reply_to"])


def urgent(_doc: Document) -> str:
    """Whatever the court said: the enforcement office must act on an event at once."""
    return "urgent"


def _after(path: str, value: str, earlier: str, what: str) -> list[Violation]:
    if value < earlier:
        return [Violation(path, f"cannot be before {what}", "chronology")]
    return []


def _not_after_today(path: str, value: str, ctx: RuleContext) -> list[Violation]:
    # The date printed on a Vietnamese paper is a local date.
    if ctx.now is not None and value > ctx.now.astimezone(LOCAL_TZ).date().isoformat():
        return [Violation(path, "cannot be after the day the document is sent", "chronology")]
    return []


def event_rules(doc: Document, ctx: RuleContext) -> list[Violation]:
    body = doc["body"]
    judgment_date = body["judgment"]["date"]
    out = _after("$.body.decision.date", body["decision"]["date"], judgment_date, "the judgment's date")
    out += _not_after_today("$.body.decision.date", body["decision"]["date"], ctx)
    if "effective_from" in body:
        out += _after("$.body.effective_from", body["effective_from"], judgment_date, "the judgment's date")
    return out


def request_rules(doc: Document, ctx: RuleContext) -> list[Violation]:
    body = doc["body"]
    out = _not_after_today("$.body.date", body["date"], ctx)
    out += _after("$.body.date", body["date"], body["judgment"]["date"], "the judgment's date")
    if body["judgment"]["court_code"] != doc["recipient"]:
        out.append(
            Violation(
                "$.recipient", "must be the court that gave the judgment (body.judgment.court_code)", "court"
            )
        )
    return out


def _judgment(noted_as: str, parties: ReferenceParties) -> Reference:
    return Reference(
        "judgment", frozenset({judgment.MESSAGE_TYPE}), parties=parties, key=judgment_key, noted_as=noted_as
    )


TYPES: list[DocumentType] = [
    DocumentType(
        message_type=EVENT,
        natural_key=event_key,
        recipients="client",
        rules=event_rules,
        priority=urgent,
        # A court granted pushing judgments pushes events on them too (REST or SOAP PushCourtEvent).
        extra_grants=frozenset({"judgments.push"}),
        # The court that gave the judgment, to the office that received it.
        references=(_judgment("court_event", "same"),),
        sent_by=frozenset({COURT}),
    ),
    DocumentType(
        message_type=CLARIFICATION_REQUEST,
        natural_key=request_key,
        recipients="client",
        rules=request_rules,
        answer_type=CLARIFICATION_ANSWER,
        deadline="15wd",
        # The office that received the judgment, to the court that gave it.
        references=(_judgment("clarification_requested", "reverse"),),
        confirmed_by="sender",
        sent_by=frozenset({ENFORCEMENT_OFFICE}),
    ),
    DocumentType(
        message_type=CLARIFICATION_ANSWER,
        natural_key=answer_key,
        recipients="client",
        answers=frozenset({CLARIFICATION_REQUEST}),
        sent_by=frozenset({COURT}),
    ),
]
