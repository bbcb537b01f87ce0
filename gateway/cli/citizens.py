"""``run.py data-access``: what the gateway did with one person's data, from the audit trail."""

from __future__ import annotations

from typing import Any


def register(sub: Any) -> None:
    """Nothing yet: the data-access report's command is added here."""
