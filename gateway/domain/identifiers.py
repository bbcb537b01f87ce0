"""Personal identifiers: never stored or logged in clear outside the payload itself."""

from __future__ import annotations

import hashlib
import hmac
import re

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


def scrub(text: str) -> str:
    """Mask any 12-digit run in free text (error messages, log lines)."""
    return _ANY_PERSONAL_ID.sub(lambda m: mask(m.group(0)), text)
