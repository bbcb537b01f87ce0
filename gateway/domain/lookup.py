"""One source of one lookup as handed to a partner, and its canonical answer. Pure data, no I/O."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True, slots=True)
class Subject:
    """Whose assets: a person (12-digit ID, name, birth date) or an organisation (enterprise code)."""

    id_number: str | None = None
    enterprise_code: str | None = None
    full_name: str | None = None
    date_of_birth: str | None = None

    def as_dict(self) -> dict[str, str]:
        fields = {
            "id_number": self.id_number,
            "enterprise_code": self.enterprise_code,
            "full_name": self.full_name,
            "date_of_birth": self.date_of_birth,
        }
        return {k: v for k, v in fields.items() if v is not None}


@dataclass(frozen=True, slots=True)
class JudgmentRef:
    """The judgment enforced: court (agency code), number as printed, date (YYYY-MM-DD)."""

    court_code: str
    number: str
    date: str


@dataclass(frozen=True, slots=True)
class DecisionRef:
    """The decision to enforce the judgment: number as printed, date (YYYY-MM-DD)."""

    number: str
    date: str


@dataclass(frozen=True, slots=True)
class Title:
    """What a lookup rests on: the judgment and the enforcement decision (``title`` of the inquiry)."""

    judgment: JudgmentRef
    enforcement_decision: DecisionRef

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Title:
        """From the inquiry's ``title`` object; raises ``KeyError``/``TypeError`` when it is malformed."""
        judgment, decision = data["judgment"], data["enforcement_decision"]
        return cls(
            judgment=JudgmentRef(
                court_code=judgment["court_code"], number=judgment["number"], date=judgment["date"]
            ),
            enforcement_decision=DecisionRef(number=decision["number"], date=decision["date"]),
        )

    def as_dict(self) -> dict[str, dict[str, str]]:
        return {
            "judgment": {
                "court_code": self.judgment.court_code,
                "number": self.judgment.number,
                "date": self.judgment.date,
            },
            "enforcement_decision": {
                "number": self.enforcement_decision.number,
                "date": self.enforcement_decision.date,
            },
        }


@dataclass(frozen=True, slots=True)
class LookupRequest:
    """One source of one inquiry, as the worker hands it to a connector.

    The partner is told why it is asked: the case, the officer, the legal basis, the title the lookup rests
    on, the purpose and the deadline. ``officer_id``, ``legal_basis``, ``title`` and ``due_at`` are ``None``
    only in requests queued before they existed; connectors then leave them out.
    """

    request_ref: str  # unique per (inquiry, source); partners echo it; idempotency key on their side
    inquiry_id: str
    source_id: str  # "land", "bank:BANK-VCB", ...
    partner_code: str
    kind: str
    subject: Subject
    case_ref: str
    purpose: str
    callback_url: str | None = None  # where an asynchronous partner posts its late answer
    officer_id: str | None = field(default=None, repr=False)  # personal ID: told the partner, never logged
    legal_basis: str | None = None  # code from config/legal_bases.toml
    title: Title | None = None
    due_at: str | None = None  # ISO 8601 with offset: when the partner's answer is due


@dataclass(frozen=True, slots=True)
class LookupAnswer:
    """The partner's answer in canonical form (validated against ``asset.result.<kind>``).

    ``accepted_later`` means the partner took the request and will call back: the source stays pending.
    """

    match_status: str  # found | not_found | ambiguous_identity | not_competent
    rows: list[dict[str, Any]] = field(default_factory=list)
    as_of: str | None = None
    reference: str | None = None
    accepted_later: bool = False


class PartnerError(Exception):
    """A call that did not produce an answer. ``retryable``: worth another attempt (timeouts,
    connection errors, 5xx); not retryable: the partner answered but the answer is unusable."""

    def __init__(self, reason: str, retryable: bool) -> None:
        super().__init__(reason)
        self.reason = reason
        self.retryable = retryable
