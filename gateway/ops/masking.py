"""Masking personal IDs in what operators read, without mangling the identifiers they work with.

The one definition is :func:`gateway.domain.identifiers.scrub` (the same masking as logs, problem
details and the audit log): it keeps UUIDs (message ids), long hex digests and dates whole, so an
operator can still read and follow them.
"""

from __future__ import annotations

from typing import Any

from gateway.domain.identifiers import scrub, scrub_value


def mask_text(text: str) -> str:
    """``text`` with every ID-like digit run masked (``001*******45``), UUIDs and hashes left whole."""
    return scrub(text)


def mask_value(value: Any) -> Any:
    """:func:`mask_text` applied to every string in a JSON-like value."""
    return scrub_value(value)
