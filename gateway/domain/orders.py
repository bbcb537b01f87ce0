"""Rules for orders, their reports, deadline events and revocations beyond what their JSON Schemas say.

Pure functions, no I/O. Every function here takes a document that already passed its schema
(``gateway/schemas/<message_type>.schema.json``); on anything else it may raise ``KeyError``. Which
rules and which natural key a type has is said by its entry in ``gateway/domain/registry.py``: the
builders here (:func:`order_rules`, :func:`rows_report_rules`) take the type's fields as data, so a new
order names its rows there rather than adding a case here.

- An order (enforcement office -> a partner, see docs/orders.md) is identified by the decision that
  orders the measure and the partner it goes to: the same decision sent to the same partner again is
  the same order, whatever its ``message_id``.
- A report is identified by the order it answers: one report per order.
- Amounts are whole VND; dates compare as ISO 8601 strings, date-times as aware datetimes.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final

from gateway.domain.doctypes import Document, RuleContext
from gateway.domain.identifiers import mask
from gateway.domain.violations import Violation

#: A type's rules, as ``DocumentType.rules`` calls them. Nothing here depends on configuration or on the
#: time of acceptance: the context is not used.
Rules = Callable[[Document, RuleContext], list[Violation]]

#: The orders' names, for the code that refers to them (a connector's operation per type); each is
#: declared, with its report, by its entry in ``gateway/domain/registry.py``.
ACCOUNT_BLOCKING: Final = "order.account_blocking"
FUNDS_TRANSFER: Final = "order.funds_transfer"
ACCOUNT_RELEASE: Final = "order.account_release"
LAND_TRANSFER_SUSPENSION: Final = "order.land_transfer_suspension"
LAND_SUSPENSION_LIFTING: Final = "order.land_suspension_lifting"

EXECUTED: Final = "executed"
PARTIALLY_EXECUTED: Final = "partially_executed"
NOT_EXECUTED: Final = "not_executed"


@dataclass(frozen=True, slots=True)
class Rows:
    """A list of rows in a body (``accounts``, ``parcels``, ``vehicles``) and the fields that identify
    one row: the same row listed twice is refused."""

    field: str
    key: tuple[str, ...]


# --- Natural keys --------------------------------------------------------------------------------


def order_key(doc: Document) -> str:
    """Sender, recipient, decision number and date: the same decision sent to the same partner."""
    decision = doc["body"]["decision"]
    return f"{doc['sender']}|{doc['recipient']}|{decision['number']}|{decision['date']}"


def report_key(doc: Document) -> str:
    """The order it answers: one report per order."""
    return str(doc["in_reply_to"])


def deadline_key(doc: Document) -> str:
    """One reminder and one escalation per document."""
    body = doc["body"]
    return f"{body['subject_message_id']}|{body['kind']}"


def revocation_key(doc: Document) -> str:
    """One revocation per revoked document."""
    return f"revokes|{doc['body']['revokes']}"


# --- Audit -----------------------------------------------------------------------------------------


def debtor_refs(doc: Document) -> tuple[str, ...]:
    """``person:<masked id>`` or ``org:<enterprise code>`` of an order's debtor, for the audit log.

    Reports, deadline events and revocations name no debtor: they are audited under the order they
    concern, so they give ``()``.
    """
    debtor = doc["body"].get("debtor")
    if not isinstance(debtor, dict):
        return ()
    if "id_number" in debtor:
        return ("person:" + mask(debtor["id_number"]),)
    return ("org:" + debtor["enterprise_code"],)


# --- Rules -----------------------------------------------------------------------------------------


def _instant(value: str) -> datetime:
    # The schema guarantees RFC 3339 with an offset, which Python 3.11 parses ("Z" included).
    return datetime.fromisoformat(value)


def _envelope_rules(doc: Document) -> list[Violation]:
    if doc.get("replaces") is not None and doc["replaces"].lower() == doc["message_id"].lower():
        return [Violation("$.replaces", "a document cannot replace itself", "reference")]
    return []


def _duplicates(rows: Iterable[dict[str, Any]], fields: tuple[str, ...], path: str) -> list[Violation]:
    """One violation per row that repeats an earlier row's ``fields`` (values are not echoed)."""
    out: list[Violation] = []
    first: dict[tuple[Any, ...], int] = {}
    for i, row in enumerate(rows):
        key = tuple(row[f] for f in fields)
        if key in first:
            out.append(Violation(f"{path}[{i}]", f"repeats {path}[{first[key]}]", "unique"))
        else:
            first[key] = i
    return out


def _order_rules(doc: Document, rows: Rows | None) -> list[Violation]:
    out = _envelope_rules(doc)
    body = doc["body"]
    decision = body["decision"]
    if decision["issuing_office"] != doc["sender"]:
        out.append(
            Violation(
                "$.body.decision.issuing_office",
                "must equal the sender (the office sending the order)",
                "issuer",
            )
        )
    if decision["date"] > _instant(doc["created_at"]).date().isoformat():
        out.append(
            Violation("$.body.decision.date", "cannot be after the day the order was created", "chronology")
        )
    title = body["title"]
    if title["enforcement_decision"]["date"] < title["judgment"]["date"]:
        out.append(
            Violation(
                "$.body.title.enforcement_decision.date", "cannot be before the judgment date", "chronology"
            )
        )
    if rows is not None and rows.field in body:
        out += _duplicates(body[rows.field], rows.key, f"$.body.{rows.field}")
    return out


def release_scope(doc: Document) -> list[Violation]:
    """A release of part of what is blocked states its amount; a full release states none."""
    out: list[Violation] = []
    body = doc["body"]
    if body["scope"] == "partial" and "amount" not in body:
        out.append(Violation("$.body", "'amount' is required when scope is 'partial'", "scope"))
    if body["scope"] == "full" and "amount" in body:
        out.append(
            Violation(
                "$.body.amount",
                "must be absent when scope is 'full': everything blocked is released",
                "scope",
            )
        )
    return out


def order_rules(rows: Rows | None = None, *also: Callable[[Document], list[Violation]]) -> Rules:
    """The rules of an order type: what every order must satisfy (the decision is the sender's and not
    dated after the order, the title's dates are in order, a replacement does not replace itself), no
    row of ``rows`` listed twice, and the rules ``also`` of that type alone."""

    def rules(doc: Document, _ctx: RuleContext) -> list[Violation]:
        out = _order_rules(doc, rows)
        for rule in also:
            out += rule(doc)
        return out

    return rules


def _report_rules(doc: Document) -> list[Violation]:
    out = _envelope_rules(doc)
    if _instant(doc["body"]["executed_at"]) > _instant(doc["created_at"]):
        out.append(Violation("$.body.executed_at", "cannot be after the report was created", "chronology"))
    return out


def outcome_of(done: float, wanted: float) -> str:
    """What a report says of an order: all of it done (every row, the whole amount) -> executed, none
    (or nothing to do) -> not_executed, else partially_executed. The one definition: the rules check
    reports against it, and the simulated partners answer by it."""
    if done <= 0:
        return NOT_EXECUTED
    return EXECUTED if done >= wanted else PARTIALLY_EXECUTED


def _outcome_violation(stated: str, expected: str, rows: str, done: str) -> list[Violation]:
    if stated == expected:
        return []
    why = {
        EXECUTED: f"every one of the {rows} is {done}",
        NOT_EXECUTED: f"none of the {rows} is {done}",
        PARTIALLY_EXECUTED: f"only some of the {rows} are {done}",
    }[expected]
    return [Violation("$.body.outcome", f"must be {expected!r}: {why}", "outcome")]


def _total_violation(body: Document, field: str, rows: str, amount: str) -> list[Violation]:
    total = sum(row[amount] for row in body[rows])
    if body[field] == total:
        return []
    return [
        Violation(f"$.body.{field}", f"must equal the sum of the {rows} rows' {amount} ({total:,})", "total")
    ]


def blocking_report_rules(doc: Document, _ctx: RuleContext) -> list[Violation]:
    out = _report_rules(doc)
    body = doc["body"]
    accounts = body["accounts"]
    for i, row in enumerate(accounts):
        path = f"$.body.accounts[{i}]"
        status, reason = row["status"], row.get("reason")
        if status == "blocked" and reason is not None:
            out.append(Violation(f"{path}.reason", "must be absent when the account is blocked", "reason"))
        if status != "blocked" and reason is None:
            out.append(Violation(path, f"'reason' is required when status is {status!r}", "reason"))
        if reason == "earlier_seizure" and "earlier_seizure_rank" not in row:
            out.append(
                Violation(
                    path, "'earlier_seizure_rank' is required when reason is 'earlier_seizure'", "reason"
                )
            )
        if "earlier_seizure_rank" in row and reason != "earlier_seizure":
            out.append(
                Violation(f"{path}.earlier_seizure_rank", "goes only with reason 'earlier_seizure'", "reason")
            )
        if row["blocked_amount"] == 0 and status != "not_blocked":
            out.append(
                Violation(f"{path}.blocked_amount", "can be 0 only when status is 'not_blocked'", "amount")
            )
        if row["blocked_amount"] > 0 and status == "not_blocked":
            out.append(
                Violation(f"{path}.blocked_amount", "must be 0 when status is 'not_blocked'", "amount")
            )
    out += _duplicates(accounts, ("account_number",), "$.body.accounts")
    out += _total_violation(body, "total_blocked", "accounts", "blocked_amount")
    # Nothing blocked <-> not_executed. Otherwise the order's amount decides, which the rows alone do not
    # show: a bank that reached the amount on one account and found another closed executed the order,
    # and one that blocked every listed account in full may still have fallen short of it.
    nothing = all(row["status"] == "not_blocked" for row in accounts)
    if nothing:
        out += _outcome_violation(body["outcome"], NOT_EXECUTED, "accounts", "blocked")
    elif body["outcome"] == NOT_EXECUTED:
        why = "cannot be 'not_executed' when an account is blocked"
        out.append(Violation("$.body.outcome", why, "outcome"))
    return out


def _amount_outcome(body: Document, amount_field: str) -> list[Violation]:
    """Nothing moved <-> not_executed. Whether all or part was moved needs the order, so either
    executed or partially_executed is accepted when something moved."""
    nothing = body[amount_field] == 0
    if nothing and body["outcome"] != NOT_EXECUTED:
        return [Violation("$.body.outcome", f"must be 'not_executed' when {amount_field} is 0", "outcome")]
    if not nothing and body["outcome"] == NOT_EXECUTED:
        return [
            Violation(
                "$.body.outcome", f"cannot be 'not_executed' when {amount_field} is more than 0", "outcome"
            )
        ]
    return []


def transfer_report_rules(doc: Document, _ctx: RuleContext) -> list[Violation]:
    out = _report_rules(doc)
    body = doc["body"]
    out += _duplicates(body["transfers"], ("account_number",), "$.body.transfers")
    out += _total_violation(body, "transferred_amount", "transfers", "amount")
    out += _amount_outcome(body, "transferred_amount")
    if body["outcome"] == NOT_EXECUTED and "reason" not in body:
        out.append(Violation("$.body", "'reason' is required when outcome is 'not_executed'", "reason"))
    if body["outcome"] == EXECUTED and "reason" in body:
        out.append(Violation("$.body.reason", "must be absent when outcome is 'executed'", "reason"))
    return out


def release_report_rules(doc: Document, _ctx: RuleContext) -> list[Violation]:
    out = _report_rules(doc)
    body = doc["body"]
    out += _duplicates(body["released"], ("account_number",), "$.body.released")
    out += _total_violation(body, "total_released", "released", "amount")
    out += _amount_outcome(body, "total_released")
    return out


def rows_report_rules(rows: Rows, done: str, not_done: str) -> Rules:
    """The rules of a report whose ``rows`` each say the order was ``done`` on it (no reason) or
    ``not_done`` (with its ``reason``): each row listed once, and the outcome follows the rows (all done:
    executed, none: not_executed, else partially_executed). Land registry and vehicle register reports."""
    path = f"$.body.{rows.field}"

    def rules(doc: Document, _ctx: RuleContext) -> list[Violation]:
        out = _report_rules(doc)
        body = doc["body"]
        listed = body[rows.field]
        for i, row in enumerate(listed):
            if row["status"] == not_done and "reason" not in row:
                message = f"'reason' is required when status is {not_done!r}"
                out.append(Violation(f"{path}[{i}]", message, "reason"))
            if row["status"] == done and "reason" in row:
                message = f"must be absent when status is {done!r}"
                out.append(Violation(f"{path}[{i}].reason", message, "reason"))
        out += _duplicates(listed, rows.key, path)
        expected = outcome_of(sum(row["status"] == done for row in listed), len(listed))
        out += _outcome_violation(body["outcome"], expected, rows.field, done)
        return out

    return rules


def deadline_rules(doc: Document, _ctx: RuleContext) -> list[Violation]:
    out = _envelope_rules(doc)
    body = doc["body"]
    created, due = _instant(doc["created_at"]), _instant(body["due_at"])
    if body["kind"] == "reminder" and created > due:
        out.append(
            Violation("$.body.due_at", "a reminder comes before the deadline, not after it", "chronology")
        )
    if body["kind"] == "escalation" and created < due:
        out.append(
            Violation("$.body.due_at", "an escalation comes once the deadline has passed", "chronology")
        )
    if body["subject_message_id"].lower() == doc["message_id"].lower():
        out.append(Violation("$.body.subject_message_id", "must name another document", "reference"))
    return out


def revocation_rules(doc: Document, _ctx: RuleContext) -> list[Violation]:
    out = _envelope_rules(doc)
    if doc["body"]["revokes"].lower() == doc["message_id"].lower():
        out.append(Violation("$.body.revokes", "a document cannot revoke itself", "reference"))
    return out
