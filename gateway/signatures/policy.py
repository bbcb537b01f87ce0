"""Per-document-type signature policy and the decision it takes on a verification report. Pure: no I/O."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

OnMissing = Literal["refuse", "flag"]
RevocationMode = Literal["hard-fail", "soft-fail"]
Action = Literal["accept", "flag", "refuse"]


@dataclass(frozen=True, slots=True)
class SignerBinding:
    """What the signer's certificate subject must say for a client id: its organisation (O) and, when set,
    its common name (CN). Values are compared exactly, after Unicode NFC normalisation."""

    organization: str
    common_name: str | None = None


@dataclass(frozen=True, slots=True)
class SignaturePolicy:
    """How the signature of one document type is checked.

    ``required``: an unsigned document is a defect (else it is accepted as it is).
    ``on_missing``: what a defect costs — ``refuse`` (422 with the reasons) or ``flag`` (accepted, marked).
    ``revocation``: ``hard-fail`` — no revocation answer means not valid; ``soft-fail`` — checked when the
    responder answers, otherwise valid but flagged as unchecked.
    ``signers``: client id → the certificate subject that client signs with (deny by default: a sender
    missing here has no signer it may use).
    ``budget_seconds``: the whole verification, revocation look-ups included.
    ``allow_fetching``: look up OCSP/CRL at the addresses the certificates name."""

    document_type: str
    required: bool = True
    on_missing: OnMissing = "refuse"
    revocation: RevocationMode = "hard-fail"
    signers: Mapping[str, SignerBinding] = field(default_factory=dict)
    budget_seconds: float = 10.0
    allow_fetching: bool = True
    #: The only hosts revocation look-ups may go to (``[revocation] hosts``); empty: any a certificate names.
    revocation_hosts: tuple[str, ...] = ()

    def binding(self, sender: str) -> SignerBinding | None:
        return self.signers.get(sender)


@dataclass(frozen=True, slots=True)
class Decision:
    action: Action
    reasons: tuple[str, ...] = ()


def decide(policy: SignaturePolicy, outcome: str, reasons: tuple[str, ...] = ()) -> Decision:
    """What intake does with a report's ``outcome`` (valid | invalid | indeterminate | unsigned).

    A valid signature is accepted, flagged when the report carries warnings (``reasons`` then lists them).
    An unsigned document is accepted when no signature is required. Any other outcome is a defect, and
    ``on_missing`` says whether a defect is refused or flagged."""
    if outcome == "valid":
        return Decision("flag" if reasons else "accept", reasons)
    if outcome == "unsigned" and not policy.required:
        return Decision("accept", ())
    return Decision("refuse" if policy.on_missing == "refuse" else "flag", reasons)


def policies_from_mapping(raw: Mapping[str, Any]) -> dict[str, SignaturePolicy]:
    """Policies from the parsed ``config/signatures.toml``: ``[signers.CLIENT]`` bindings shared by every
    type, ``[revocation] hosts`` (the look-ups' allow-list, shared too), and one ``[documents."TYPE"]``
    table per document type. Unknown keys are errors."""
    signers_raw = raw.get("signers", {})
    signers: dict[str, SignerBinding] = {}
    for client, b in signers_raw.items():
        _only(b, {"organization", "common_name"}, f"signers.{client}")
        signers[client] = SignerBinding(str(b["organization"]), b.get("common_name"))
    revocation = raw.get("revocation", {})
    _only(revocation, {"hosts"}, "revocation")
    hosts = tuple(str(h) for h in revocation.get("hosts", ()))
    out: dict[str, SignaturePolicy] = {}
    allowed = {"required", "on_missing", "revocation", "budget_seconds", "allow_fetching"}
    for doc_type, p in raw.get("documents", {}).items():
        _only(p, allowed, f"documents.{doc_type}")
        on_missing = p.get("on_missing", "refuse")
        revocation = p.get("revocation", "hard-fail")
        if on_missing not in ("refuse", "flag"):
            raise ValueError(f"documents.{doc_type}.on_missing: 'refuse' or 'flag', not {on_missing!r}")
        if revocation not in ("hard-fail", "soft-fail"):
            raise ValueError(
                f"documents.{doc_type}.revocation: 'hard-fail' or 'soft-fail', not {revocation!r}"
            )
        budget = float(p.get("budget_seconds", 10.0))
        if budget <= 0:
            raise ValueError(f"documents.{doc_type}.budget_seconds must be positive")
        out[doc_type] = SignaturePolicy(
            document_type=doc_type,
            required=bool(p.get("required", True)),
            on_missing=on_missing,
            revocation=revocation,
            signers=dict(signers),
            budget_seconds=budget,
            allow_fetching=bool(p.get("allow_fetching", True)),
            revocation_hosts=hosts,
        )
    return out


def _only(table: Mapping[str, Any], allowed: set[str], where: str) -> None:
    unknown = set(table) - allowed
    if unknown:
        raise ValueError(f"{where}: unknown keys {sorted(unknown)}")
