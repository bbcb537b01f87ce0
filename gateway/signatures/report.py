"""The verification report kept beside a message and shown with it. Its JSON form (:meth:`to_dict`) is a
stable contract: fields are only ever added, and ``report_version`` changes if one changes meaning."""

from __future__ import annotations

import dataclasses
from dataclasses import asdict, dataclass
from typing import Any, Literal

Outcome = Literal["valid", "invalid", "indeterminate", "unsigned"]
CheckResult = Literal["pass", "fail", "indeterminate", "skipped"]

REPORT_VERSION = 1

#: Worse outcomes win when several signatures (or checks) disagree.
_RANK: dict[str, int] = {"valid": 0, "unsigned": 1, "indeterminate": 2, "invalid": 3}


def worst(outcomes: list[Outcome]) -> Outcome:
    return max(outcomes, key=lambda o: _RANK[o]) if outcomes else "unsigned"


@dataclass
class Check:
    """One check: ``name`` is one of integrity, coverage, modifications, chain, validity, revocation,
    timestamp, signer."""

    name: str
    result: CheckResult
    reason: str = ""


@dataclass
class Signer:
    subject: str
    organization: str | None
    common_name: str | None
    issuer: str
    serial: str
    certificate_sha256: str
    not_before: str
    not_after: str


@dataclass
class TimeStamp:
    time: str
    authority: str | None
    valid: bool


@dataclass
class RevocationEvidence:
    """Revocation data consulted: ``kind`` ocsp | crl; ``produced_at`` (OCSP) or ``this_update`` (CRL) and
    ``next_update`` say how fresh it was."""

    kind: str
    issuer: str
    produced_at: str | None = None
    this_update: str | None = None
    next_update: str | None = None


@dataclass
class SignatureReport:
    field: str
    outcome: Outcome
    signer: Signer | None
    claimed_signing_time: str | None
    timestamp: TimeStamp | None
    validation_time: str
    coverage: str | None
    modification_level: str | None
    checks: list[Check] = dataclasses.field(default_factory=list)
    revocation_sources: list[str] = dataclasses.field(default_factory=list)
    revocation_data: list[RevocationEvidence] = dataclasses.field(default_factory=list)


@dataclass
class ValidationReport:
    outcome: Outcome
    reasons: list[str]
    warnings: list[str]
    document_sha256: str
    document_type: str
    sender: str
    checked_at: str
    duration_ms: int
    library: dict[str, str]
    trust_list: dict[str, Any]
    revocation_mode: str
    signatures: list[SignatureReport] = dataclasses.field(default_factory=list)
    report_version: int = REPORT_VERSION

    @property
    def signer(self) -> Signer | None:
        """The signer of the first signature (the court's; later ones are allowed updates on top)."""
        return self.signatures[0].signer if self.signatures else None

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        signer = self.signer
        out["signer"] = asdict(signer) if signer else None
        first = self.signatures[0] if self.signatures else None
        out["signing_time"] = (
            first.timestamp.time
            if first and first.timestamp
            else (first.claimed_signing_time if first else None)
        )
        return out
