"""Personal identifiers: never stored or logged in clear outside the payload itself.

One definition of what a personal ID looks like, in two forms:

* :data:`PERSONAL_ID`, a valid ID as a field holds it: 12 ASCII digits whose first three (the province
  of the birth registration) are 001-096. The schemas' ``vn-personal-id`` format is this pattern.
* :func:`scrub`, an ID as free text may carry it, masked wherever it appears: every run of
  :data:`MIN_MASKED_DIGITS` (9) or more decimal digits, counted across single group separators (spaces,
  dots, hyphens and their full-width and no-break forms: ``001 085 012 345``, ``001-085-012-345``,
  ``001.085.012.345``) and in any script's digits (full-width ``００１…``, mixed with ASCII). Nine covers
  the old 9-digit ID cards, twelve the citizen ID (the personal tax code since 2025-07-01), ten and
  thirteen the older personal tax codes; longer runs (bank accounts, card numbers) are personal too.
  One exception: a run split by separators into 10 or 11 digits is kept, for that is how case
  references write year and serial (``THA-HN-2026-000123``) and no personal ID has that length
  (a 10-digit tax code written with separators is the cost).
  Spared, because the gateway's own records must stay readable and followable: UUIDs (message ids),
  hexadecimal digests of 32 characters or more (hashes, pseudonyms) and ISO 8601 dates and times.
  Agency codes and case references hold shorter runs and are untouched. What it costs: a 9+ digit
  amount written as text (``150.000.000.000``) or an IP address of four three-digit groups is masked too;
  amounts the gateway records are JSON numbers, which :func:`scrub_value` leaves alone.
"""

from __future__ import annotations

import hashlib
import hmac
import re
from typing import Any, Final

#: A valid personal ID (the schemas' ``vn-personal-id`` format, stated as a pattern).
PERSONAL_ID = re.compile(r"^(00[1-9]|0[1-8][0-9]|09[0-6])[0-9]{9}$")
#: Runs of this many digits or more are masked in free text.
MIN_MASKED_DIGITS: Final = 9
# Digit counts of a grouped run that are not masked: a case reference's year and serial
# (``THA-HN-2026-000123``) is ten digits in two groups; no personal ID has ten or eleven.
_SPARED_GROUPED: Final = frozenset({10, 11})

# Between two groups of digits: one to three of space, no-break spaces, ideographic space, dot, hyphen,
# the dashes, and the full-width hyphen-minus and full stop. A comma is not one: ``1,500,000`` is how
# the gateway writes amounts.
_SEPARATOR = "[ \u00a0\u202f\u3000.\\-\u2010-\u2015\uff0d\uff0e]"
_TOKENS = re.compile(
    # Spared: a UUID, a hex digest (at least one letter, so an all-digit run is never spared), a date/time.
    r"(?P<keep>[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}"
    r"|(?<![0-9A-Za-z])(?=[0-9]*[a-fA-F])[0-9a-fA-F]{32,}(?![0-9A-Za-z])"
    r"|(?<![0-9])[0-9]{4}-[0-9]{2}-[0-9]{2}(?:[T ][0-9]{2}:[0-9]{2}(?::[0-9]{2}(?:[.,][0-9]+)?)?)?(?![0-9]))"
    # Masked when long enough: digits of any script, groups joined by separators.
    rf"|(?P<run>(?<!\d)\d+(?:{_SEPARATOR}{{1,3}}\d+)*)"
)


def is_personal_id(value: str) -> bool:
    """Whether ``value`` is a valid Vietnamese 12-digit personal identification number (the schemas'
    ``vn-personal-id`` format).

    Layout: digits 1-3 are the province code of the birth registration (001..096), digit 4
    encodes century of birth and sex (0/1 = 1900s male/female, 2/3 = 2000s, 4/5 = 2100s,
    6/7 = 2200s, 8/9 = 2300s, so every digit 0-9 is legitimate), digits 5-6 are the last two
    digits of the year of birth, and the last six are a serial number. Only the length, the ASCII
    digits and the province range are checked: the birth-year digits cannot be verified without
    the date of birth.
    """
    return bool(PERSONAL_ID.fullmatch(value))


def mask(value: str) -> str:
    """``001085012345`` -> ``001*******45``: enough for a person to recognise, not to reuse. Shorter than
    twelve, only the last two show (``*******89``)."""
    if len(value) <= 5:
        return "*" * len(value)
    head = 3 if len(value) >= 12 else 0
    return value[:head] + "*" * (len(value) - head - 2) + value[-2:]


def _masked(match: re.Match[str]) -> str:
    run = match.group("run")
    if run is None:
        return match.group(0)
    digits = "".join(str(int(ch)) for ch in run if ch.isdecimal())
    if len(digits) < MIN_MASKED_DIGITS:
        return run
    if len(digits) in _SPARED_GROUPED and not run.isdecimal():
        return run
    return mask(digits)


def scrub(text: str) -> str:
    """``text`` with every ID-like digit run masked (see the module's rule), whatever its grouping or
    digits: ``ID 001 085 012 345`` -> ``ID 001*******45``. UUIDs, digests and dates are kept whole."""
    return _TOKENS.sub(_masked, text)


def holds_personal_id(text: str) -> bool:
    """Whether :func:`scrub` would mask anything in ``text``."""
    return scrub(text) != text


def scrub_value(value: Any) -> Any:
    """:func:`scrub` applied to every string of a JSON-like value, keys included; numbers stay numbers."""
    if isinstance(value, str):
        return scrub(value)
    if isinstance(value, dict):
        return {scrub(str(k)): scrub_value(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [scrub_value(v) for v in value]
    return value


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
