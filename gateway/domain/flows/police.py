"""The police document family (see docs/flows.md, "Police").

- ``police.protection_request``: the enforcement office asks the police unit of the place of enforcement
  to protect a coercion, at least :data:`NOTICE_DAYS` days before the coercion date (local date,
  Asia/Ho_Chi_Minh) unless it is urgent; answered by ``police.protection_answer`` (agreed forces with
  commander and contact, or a refusal with its reason) within the deadline of ``config/documents.toml``.
- ``police.urgent_assistance``: enforcement is obstructed right now; always urgent (it travels in the
  recipients' urgent lanes), acknowledged by ``police.assistance_ack`` within minutes.

Pure: no I/O; the acceptance time comes from ``RuleContext.now``.
"""

from __future__ import annotations

from datetime import date, datetime, timedelta
from typing import Any, Final

from gateway.domain.calendar import LOCAL_TZ
from gateway.domain.doctypes import Document, DocumentType, Reference, RuleContext
from gateway.domain.parties import ENFORCEMENT_OFFICE
from gateway.domain.violations import Violation

PROTECTION_REQUEST: Final = "police.protection_request"
PROTECTION_ANSWER: Final = "police.protection_answer"
URGENT_ASSISTANCE: Final = "police.urgent_assistance"
ASSISTANCE_ACK: Final = "police.assistance_ack"
#: Partner kind of the police units that receive these documents (config/partners.toml).
POLICE: Final = "police"
#: A protection request reaches the police at least this many days before the coercion date.
NOTICE_DAYS: Final = 10


def _date(value: Any) -> date | None:
    try:
        return date.fromisoformat(value) if isinstance(value, str) else None
    except ValueError:
        return None


def _today(ctx: RuleContext) -> date | None:
    return ctx.now.astimezone(LOCAL_TZ).date() if ctx.now is not None else None


def protection_request_rules(doc: Document, ctx: RuleContext) -> list[Violation]:
    body = doc["body"]
    plan, window = body["coercion_plan"], body["window"]
    coercion, planned = _date(plan["coercion_date"]), _date(plan["date"])
    start, end = _date(window["from"]), _date(window["to"])
    urgent = doc.get("priority") == "urgent"
    out: list[Violation] = []
    if start and end and start > end:
        out.append(Violation("$.body.window.to", "must not be before window.from", "window"))
    if coercion and start and end and not start <= coercion <= end:
        message = f"{coercion} is outside the window {start} .. {end} the protection is asked for"
        out.append(Violation("$.body.coercion_plan.coercion_date", message, "window"))
    if coercion and planned and planned > coercion:
        message = "the plan must be dated on or before its coercion"
        out.append(Violation("$.body.coercion_plan.date", message, "order"))
    today = _today(ctx)
    if coercion and today is not None:
        earliest = today + timedelta(days=NOTICE_DAYS)
        if coercion < today:
            message = f"{coercion} has passed (today is {today})"
            out.append(Violation("$.body.coercion_plan.coercion_date", message, "past"))
        elif coercion < earliest and not urgent:
            message = (
                f"a protection request must reach the police at least {NOTICE_DAYS} days before the "
                f"coercion: {coercion} is less than {NOTICE_DAYS} days after today ({today}); the earliest "
                f'coercion date is {earliest}, or send it with priority "urgent" and an urgent_reason'
            )
            out.append(Violation("$.body.coercion_plan.coercion_date", message, "notice_period"))
    if urgent and "urgent_reason" not in body:
        out.append(Violation("$.body.urgent_reason", "is required when the request is urgent", "required"))
    return out


def urgent_assistance_rules(doc: Document, ctx: RuleContext) -> list[Violation]:
    since = doc["body"]["since"]
    try:
        at = datetime.fromisoformat(since)
    except ValueError:
        return []
    # A few minutes of skew between the field officer's device and the gateway are normal.
    if ctx.now is not None and at.tzinfo is not None and at > ctx.now + timedelta(minutes=5):
        return [Violation("$.body.since", f"{since} is in the future", "future")]
    return []


def _protection_key(doc: Document) -> str:
    plan = doc["body"]["coercion_plan"]
    return f"{doc['sender']}|{doc['case_ref']}|{plan['number']}|{plan['coercion_date']}"


def _assistance_key(doc: Document) -> str:
    # The same call for help sent again (a retry from the field) is the same document.
    return f"{doc['sender']}|{doc['case_ref']}|{doc['body']['since']}"


def _answer_key(doc: Document) -> str:
    return str(doc["in_reply_to"]).lower()


def _always_urgent(_doc: Document) -> str:
    return "urgent"


TYPES: list[DocumentType] = [
    DocumentType(
        message_type=PROTECTION_REQUEST,
        natural_key=_protection_key,
        recipients="partner",
        partner_kinds=frozenset({POLICE}),
        rules=protection_request_rules,
        answer_type=PROTECTION_ANSWER,
        deadline="3wd",
        confirmed_by="sender",
        sent_by=frozenset({ENFORCEMENT_OFFICE}),
    ),
    DocumentType(
        message_type=PROTECTION_ANSWER,
        natural_key=_answer_key,
        recipients="client",
        answers=frozenset({PROTECTION_REQUEST}),
        sent_by=frozenset({POLICE}),
    ),
    DocumentType(
        message_type=URGENT_ASSISTANCE,
        natural_key=_assistance_key,
        recipients="partner",
        partner_kinds=frozenset({POLICE}),
        rules=urgent_assistance_rules,
        priority=_always_urgent,
        answer_type=ASSISTANCE_ACK,
        references=(Reference("protection_request", frozenset({PROTECTION_REQUEST})),),
        deadline="15m",
        confirmed_by="sender",
        sent_by=frozenset({ENFORCEMENT_OFFICE}),
    ),
    DocumentType(
        message_type=ASSISTANCE_ACK,
        natural_key=_answer_key,
        recipients="client",
        answers=frozenset({URGENT_ASSISTANCE}),
        sent_by=frozenset({POLICE}),
    ),
]
