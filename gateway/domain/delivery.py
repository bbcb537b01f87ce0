"""What a partner said when the gateway handed it a document (an order, a revocation). Pure data."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True, slots=True)
class PartnerReceipt:
    """The partner took the document.

    ``report``: the body of its answer (e.g. a ``report.account_blocking`` body) when it executed the
    document at once; ``None`` when it will push its answer later (``accepted_later``) or when the
    document needs no answer (a revocation). ``reference``: the partner's own reference, if it gave one.
    """

    report: dict[str, Any] | None = None
    reference: str | None = None
    accepted_later: bool = False
    #: What the exchange platform proved about the hand-over (X-Road's request hash…); None: direct.
    platform: Mapping[str, Any] | None = None
    #: The office's signature the document carried (its form, office, key id, algorithm); None: unsigned.
    signature: Mapping[str, Any] | None = None
