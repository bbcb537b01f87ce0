"""The signature check at intake: for a document type ``config/signatures.toml`` names, the attached PDF is
verified (gateway/signatures/verify.py) before anything is stored, and the policy's decision refuses it
(422 with the reasons) or lets it in with its report kept as a ``signature_checked`` evidence.

An installation checks signatures only when its config dir holds both ``signatures.toml`` and at least one
trust anchor in ``trust/``: without anchors no signature could ever be valid, and refusing every judgment
of an installation not set up for signatures would stop all traffic."""

from __future__ import annotations

import base64
import binascii
import hashlib
import logging
import tomllib
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from importlib.metadata import version
from pathlib import Path
from typing import Any

from gateway.domain.doctypes import Document
from gateway.domain.errors import Refused
from gateway.domain.violations import Violation
from gateway.signatures.policy import Decision, SignaturePolicy, decide, policies_from_mapping
from gateway.signatures.report import ValidationReport
from gateway.signatures.trust import TrustList

log = logging.getLogger(__name__)

#: The evidence event that carries the report (``evidences.event`` is 32 characters at most).
EVENT = "signature_checked"

#: Where a document's PDF travels: the path a refusal names.
PDF_PATH = "$.body.document.content_base64"


@dataclass(frozen=True, slots=True)
class Checked:
    """A verification that let the document in: what to keep beside it."""

    report: ValidationReport
    decision: Decision
    #: The signed PDF as it arrived, kept as long-term proof (None: nothing signed to keep).
    pdf: bytes | None = None

    def evidence(self) -> dict[str, Any]:
        """The ``signature_checked`` evidence detail: the decision and the whole report."""
        return {
            "decision": self.decision.action,
            "decision_reasons": list(self.decision.reasons),
            "report": self.report.to_dict(),
        }


class SignatureChecks:
    """The trust list and the per-type policies, read once per process."""

    def __init__(self, trust: TrustList, policies: Mapping[str, SignaturePolicy]) -> None:
        self.trust = trust
        self.policies = dict(policies)

    @classmethod
    def load(cls, config_dir: Path, known_types: Collection[str]) -> SignatureChecks | None:
        """The checks of the installation at ``config_dir``, or None when it checks no signature.

        Raises ValueError for a policy naming an unknown document type (a typo must not silently turn a
        check off) or a malformed ``signatures.toml``."""
        path = config_dir / "signatures.toml"
        if not path.is_file():
            return None
        with path.open("rb") as f:
            policies = policies_from_mapping(tomllib.load(f))
        unknown = sorted(set(policies) - set(known_types))
        if unknown:
            raise ValueError(f"{path}: policies for unknown document types {unknown}")
        trust = TrustList.load(config_dir / "trust")
        if not trust.anchors:
            log.warning(
                "%s is present but %s holds no trust anchor: signatures are not checked",
                path,
                config_dir / "trust",
            )
            return None
        return cls(trust, policies)

    def policy(self, message_type: str) -> SignaturePolicy | None:
        return self.policies.get(message_type)

    async def check(self, policy: SignaturePolicy, doc: Document) -> Checked:
        """Verify ``doc``'s PDF under ``policy``: the document's report when it may be stored.

        Raises :class:`Refused` (422) with one violation per reason when the policy refuses it."""
        sender = str(doc.get("sender", ""))
        pdf = _inline_pdf(doc)
        if pdf is None:
            report = self._not_inline(policy, sender)
        else:
            # Imported here: pyHanko costs every api process ~0.5 s at start, needed only where a type's
            # policy has signatures checked.
            from gateway.signatures.verify import verify_pdf

            report = await verify_pdf(pdf, self.trust, policy, sender)
        # A valid signature's warnings (a revocation left unchecked under soft-fail) flag it.
        reasons = tuple(report.warnings) if report.outcome == "valid" else tuple(report.reasons)
        decision = decide(policy, report.outcome, reasons)
        if decision.action == "refuse":
            why = list(decision.reasons) or [f"the signature is {report.outcome}"]
            raise Refused(
                [Violation(PDF_PATH, reason, "signature") for reason in why],
                detail=f"the document's signature was not accepted ({report.outcome}): " + "; ".join(why),
            )
        # A file with a signature is kept with its proof, whatever its outcome (a flagged one is evidence
        # too); an unsigned one proves nothing.
        return Checked(report, decision, pdf if pdf is not None and report.outcome != "unsigned" else None)

    def _not_inline(self, policy: SignaturePolicy, sender: str) -> ValidationReport:
        """A document sent by reference (``uri``) or without a PDF: the gateway fetches nothing on
        arrival, so there is no signature it can see."""
        return ValidationReport(
            outcome="unsigned",
            reasons=["no inline PDF to verify (a document sent by uri is not fetched on arrival)"],
            warnings=[],
            document_sha256=hashlib.sha256(b"").hexdigest(),
            document_type=policy.document_type,
            sender=sender,
            checked_at=datetime.now(UTC).isoformat(),
            duration_ms=0,
            library={name: version(name) for name in ("pyhanko", "pyhanko-certvalidator")},
            trust_list=self.trust.describe(),
            revocation_mode=policy.revocation,
        )


def _inline_pdf(doc: Document) -> bytes | None:
    body = doc.get("body")
    document = body.get("document") if isinstance(body, dict) else None
    inline = document.get("content_base64") if isinstance(document, dict) else None
    if not isinstance(inline, str):
        return None
    try:
        return base64.b64decode(inline, validate=True)
    except (binascii.Error, ValueError):
        return None  # the type's own rules refuse it first (gateway/domain/judgment.py)


def summary(detail: Mapping[str, Any]) -> dict[str, Any]:
    """The ``signature`` object of a message's status view, from its ``signature_checked`` evidence."""
    report = detail.get("report") or {}
    signer = report.get("signer")
    shown_signer = (
        {k: signer.get(k) for k in ("subject", "organization", "common_name", "certificate_sha256")}
        if isinstance(signer, dict)
        else None
    )
    decision = detail.get("decision", "accept")
    return {
        "outcome": report.get("outcome"),
        "decision": "flagged" if decision == "flag" else "accepted",
        "signer": shown_signer,
        "signing_time": report.get("signing_time"),
        "checked_at": report.get("checked_at"),
        "reasons": list(report.get("reasons") or []),
        "warnings": list(report.get("warnings") or []),
        "report": report,
    }
