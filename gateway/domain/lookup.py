"""One source of one lookup as handed to a partner, and its canonical answer. Pure data, no I/O."""

from __future__ import annotations

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
class LookupRequest:
    """One source of one inquiry, as the worker hands it to a connector."""

    request_ref: str  # unique per (inquiry, source); partners echo it; idempotency key on their side
    inquiry_id: str
    source_id: str  # "land", "bank:BANK-VCB", ...
    partner_code: str
    kind: str
    subject: Subject
    case_ref: str
    purpose: str
    callback_url: str | None = None  # where an asynchronous partner posts its late answer


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
