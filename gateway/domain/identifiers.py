"""Personal identifiers: never stored or logged in clear outside the payload itself."""

from __future__ import annotations

import hashlib
import hmac
import re
from typing import Any

PERSONAL_ID = re.compile(r"^[0-9]{12}$")
_ANY_PERSONAL_ID = re.compile(r"(?<![0-9])[0-9]{12}(?![0-9])")


def is_personal_id(value: str) -> bool:
    return bool(PERSONAL_ID.fullmatch(value)) and 1 <= int(value[:3]) <= 96


def mask(value: str) -> str:
    """``001085012345`` -> ``001*******45``: enough for a person to recognise, not to reuse."""
    if len(value) <= 5:
        return "*" * len(value)
    return value[:3] + "*" * (len(value) - 5) + value[-2:]


def pseudonym(value: str, pepper: bytes) -> str:
    """Keyed hash of an identifier: lets the audit log be searched by person without holding the ID."""
    return hmac.new(pepper, value.encode(), hashlib.sha256).hexdigest()


def personal_ids(value: Any) -> list[str]:
    """Every personal ID named under an ``id_number`` key anywhere in ``value`` (a document's body:
    debtors, parties, a notice's recipient), each once, in order met."""
    found: list[str] = []

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            for key, item in node.items():
                if key == "id_number" and isinstance(item, str) and PERSONAL_ID.fullmatch(item):
                    if item not in found:
                        found.append(item)
                else:
                    walk(item)
        elif isinstance(node, list):
            for item in node:
                walk(item)

    walk(value)
    return found


def person_refs(document: dict[str, Any], pepper: bytes) -> list[str]:
    """Keyed pseudonyms of the persons a document's body names: how the audit log finds, for one person,
    every document that concerned them, without holding their ID."""
    return [pseudonym(value, pepper) for value in personal_ids(document.get("body"))]


def scrub(text: str) -> str:
    """Mask any 12-digit run in free text (error messages, log lines)."""
    return _ANY_PERSONAL_ID.sub(lambda m: mask(m.group(0)), text)


# One definition of each identifier, shared by code and schemas (a test compares them with
# ``common.schema.json``): a second, slightly different pattern is how an accepted message becomes
# unreadable.
UUID = re.compile(r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$")
AGENCY_CODE = re.compile(r"^[A-Z0-9][A-Z0-9-]{1,31}$")
CASE_REF = re.compile(r"^[A-Z0-9][A-Z0-9/-]{2,63}$")

#: Envelope fields holding message ids.
_ID_FIELDS = ("message_id", "in_reply_to", "correlation_id", "process_id", "replaces")


def canonical_uuid(value: str) -> str | None:
    """The one spelling the gateway stores and looks up (lower case, RFC 9562), or None if not a UUID."""
    return value.lower() if UUID.match(value) else None


def canonical_ids(document: dict[str, Any]) -> dict[str, Any]:
    """``document`` with its envelope's message ids in lower case: UUIDs compare case-insensitively, so
    ``ABC…`` and ``abc…`` are the same message (its idempotency key, its address in the API)."""
    out = dict(document)
    for name in _ID_FIELDS:
        value = out.get(name)
        if isinstance(value, str):
            out[name] = value.lower()
    return out
