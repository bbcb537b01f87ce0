"""Masking personal IDs in what operators read, without mangling the identifiers they work with.

:func:`gateway.domain.identifiers.scrub` masks every 12-digit run; the last group of a UUID (a
message id) or a stretch of a SHA-256 can be exactly such a run, and an operator must still be able
to read and follow those. Here UUIDs and long hex strings are kept as they are; every other 12-digit
run is masked as ``scrub`` does.
"""

from __future__ import annotations

import re
from typing import Any

from gateway.domain.identifiers import mask

_TOKENS = re.compile(
    r"(?P<keep>[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}"
    r"|(?<![0-9a-zA-Z])[0-9a-fA-F]{32,}(?![0-9a-zA-Z]))"
    r"|(?<![0-9])(?P<id>[0-9]{12})(?![0-9])"
)


def mask_text(text: str) -> str:
    """``text`` with every 12-digit run masked (``001*******45``), UUIDs and hashes left whole."""
    return _TOKENS.sub(lambda m: m.group("keep") or mask(m.group("id")), text)


def mask_value(value: Any) -> Any:
    """:func:`mask_text` applied to every string in a JSON-like value."""
    if isinstance(value, str):
        return mask_text(value)
    if isinstance(value, dict):
        return {k: mask_value(v) for k, v in value.items()}
    if isinstance(value, list):
        return [mask_value(v) for v in value]
    return value
