"""The reference data a document is accepted under: its types, the partners, the working calendar and
deadlines, the routing tables of copies, the legal bases. Loaded once (``services/factory.py``) and
shared, read-only, by the checks before storing and by what storing writes."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import timedelta

from gateway.domain.calendar import WorkingCalendar
from gateway.domain.doctypes import DocumentType, RuleContext
from gateway.domain.registry import REGISTRY
from gateway.partners import Partner
from gateway.services.admissions import ADMISSIONS, AdmissionCheck

#: How long before its deadline a document's sender is reminded, unless documents.toml says otherwise.
DEFAULT_REMINDER_LEAD = timedelta(hours=4)


@dataclass(frozen=True, slots=True)
class DocumentRules:
    calendar: WorkingCalendar
    #: Partners of ``config/partners.toml`` by code (see :func:`by_code`).
    partners: Mapping[str, Partner] = field(default_factory=dict)
    #: ``documents.toml [deadlines]``: message type (or ``urgent``) -> deadline spec.
    deadlines: Mapping[str, str] = field(default_factory=dict)
    rule_context: RuleContext = field(default_factory=RuleContext)
    registry: Mapping[str, DocumentType] = field(default_factory=lambda: REGISTRY)
    #: The admission checks by name (``services/admissions.py``).
    admissions: Mapping[str, AdmissionCheck] = field(default_factory=lambda: ADMISSIONS)
    #: Routing tables of ``config/routing.toml`` (table -> sender -> recipient of the copy).
    routing: Mapping[str, Mapping[str, str]] = field(default_factory=dict)
    reminder_lead: timedelta = DEFAULT_REMINDER_LEAD
    #: Codes of ``config/legal_bases.toml``: a document citing another is refused (none: every one is).
    legal_bases: frozenset[str] = frozenset()

    def __post_init__(self) -> None:
        missing = {name for t in self.registry.values() for name in t.admissions} - set(self.admissions)
        if missing:
            raise ValueError(f"document types need admission checks nobody registered: {sorted(missing)}")


def by_code(partners: list[Partner]) -> dict[str, Partner]:
    """Partners keyed by their code, as :class:`DocumentRules` holds them."""
    return {p.code: p for p in partners}
