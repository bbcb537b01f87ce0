"""Rules for a judgment delivery beyond what its JSON Schema can say. Pure functions, no I/O."""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass
from typing import Any

from gateway.domain.identifiers import mask
from gateway.domain.violations import Violation

MESSAGE_TYPE = "judgment.delivery"


@dataclass(frozen=True, slots=True)
class JudgmentFacts:
    """What the gateway needs to know about an accepted judgment, besides its payload."""

    natural_key: str
    priority: str
    debtor_refs: tuple[str, ...]


def natural_key(doc: dict[str, Any]) -> str:
    """Court code + judgment number + judgment date: the same judgment whatever message carried it."""
    body = doc["body"]
    return f"{body['court']['code']}|{body['judgment']['number']}|{body['judgment']['date']}"


def priority(doc: dict[str, Any]) -> str:
    """Interim measures are to be enforced at once, whatever the sender said."""
    if doc["body"]["judgment"]["type"] == "interim_measure":
        return "urgent"
    return str(doc.get("priority", "normal"))


def facts(doc: dict[str, Any]) -> JudgmentFacts:
    debtors = []
    for party in doc["body"]["parties"]:
        if party["role"] != "debtor":
            continue
        if "person" in party:
            debtors.append("person:" + mask(party["person"]["id_number"]))
        else:
            debtors.append("org:" + party["organisation"]["enterprise_code"])
    return JudgmentFacts(natural_key(doc), priority(doc), tuple(debtors))


def rule_violations(doc: dict[str, Any], max_inline_bytes: int) -> list[Violation]:
    """Cross-field rules. Call only on a document that passed its schema."""
    out: list[Violation] = []
    body = doc["body"]
    if body["court"]["code"] != doc["sender"]:
        out.append(Violation("$.body.court.code", "must equal the sender (the court pushing it)", "court"))
    if body["judgment"]["effective_date"] < body["judgment"]["date"]:
        out.append(
            Violation("$.body.judgment.effective_date", "cannot be before the judgment date", "chronology")
        )
    seen: set[str] = set()
    for i, party in enumerate(body["parties"]):
        pid = party["party_id"]
        if pid in seen:
            out.append(Violation(f"$.body.parties[{i}].party_id", f"duplicate party_id {pid!r}", "unique"))
        seen.add(pid)
    for i, item in enumerate(body["items"]):
        if item["obligor"] not in seen:
            out.append(
                Violation(f"$.body.items[{i}].obligor", "must be the party_id of a party", "reference")
            )
        if item["beneficiary"] != "state" and item["beneficiary"] not in seen:
            out.append(
                Violation(
                    f"$.body.items[{i}].beneficiary", "must be a party_id of a party, or 'state'", "reference"
                )
            )
    out.extend(_document_violations(body["document"], max_inline_bytes))
    return out


def _document_violations(document: dict[str, Any], max_inline_bytes: int) -> list[Violation]:
    inline = document.get("content_base64")
    if inline is None:
        return []
    path = "$.body.document.content_base64"
    # Cheap size check before decoding: base64 is 4 chars per 3 bytes.
    if len(inline) * 3 // 4 > max_inline_bytes + 3:
        return [Violation(path, f"inline document exceeds {max_inline_bytes} bytes; send a URI", "maxSize")]
    try:
        raw = base64.b64decode(inline, validate=True)
    except (binascii.Error, ValueError):
        return [Violation(path, "is not valid base64", "contentEncoding")]
    if len(raw) > max_inline_bytes:
        return [Violation(path, f"inline document exceeds {max_inline_bytes} bytes; send a URI", "maxSize")]
    if not raw.startswith(b"%PDF-"):
        return [Violation(path, "is not a PDF document", "contentMediaType")]
    return []
