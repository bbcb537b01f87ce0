"""Asset inquiries: which sources a request reaches, what it needs, and how its status adds up.

Pure rules, no I/O. The request body is checked against the ``asset.inquiry`` JSON Schema first;
these functions add what a schema cannot know: the configured partners, the legal-basis code list,
the preconditions' values, and the status of each source over time.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any, Final

from gateway.domain.violations import Violation

__all__ = [
    "ALL_SOURCES",
    "GRANT",
    "SOURCE_KINDS",
    "InquiryStatus",
    "PartnerRef",
    "SourceRef",
    "SourceStatus",
    "expand_sources",
    "is_urgent",
    "kind_of",
    "overall_status",
    "precondition_violations",
    "required_grants",
    "result_categories",
    "source_id",
    "status_from_counts",
]

SOURCE_KINDS: Final = ("land", "bank", "tax", "vehicle", "population")
#: The ``sources`` value that selects every configured source.
ALL_SOURCES: Final = "all"
#: The service family; ``assets.inquire:<kind>`` grants one kind of source.
GRANT: Final = "assets.inquire"

_BANK: Final = "bank"

#: Audit categories a non-empty answer of each kind reveals. Population rows are split by field.
_CATEGORIES: Final[dict[str, tuple[str, ...]]] = {
    "land": ("land_parcels",),
    "bank": ("bank_accounts",),
    "tax": ("income_sources",),
    "vehicle": ("vehicles",),
}
_POPULATION_FIELDS: Final = (
    ("identity", ("identity_status",)),
    ("residence", ("permanent_address", "current_address")),
)


class SourceStatus(StrEnum):
    """Where one source of an inquiry stands."""

    PENDING = "pending"
    FOUND = "found"
    NOT_FOUND = "not_found"
    TIMEOUT = "timeout"
    UNAVAILABLE = "unavailable"
    ERROR = "error"
    REJECTED = "rejected"


class InquiryStatus(StrEnum):
    """Where a whole inquiry stands; see :func:`overall_status`."""

    PENDING = "pending"
    PARTIAL = "partial"
    COMPLETE = "complete"
    EXPIRED = "expired"


@dataclass(frozen=True, slots=True)
class PartnerRef:
    """A configured partner: agency code and source kind."""

    code: str
    kind: str


@dataclass(frozen=True, slots=True)
class SourceRef:
    """One source an inquiry asks: ``source_id`` is the kind, or ``bank:<code>`` for a bank."""

    source_id: str
    partner_code: str
    kind: str


def source_id(kind: str, partner_code: str) -> str:
    """``"land"`` for the land registry; ``"bank:BANK-VCB"`` for a bank, one source per bank."""
    return f"{_BANK}:{partner_code}" if kind == _BANK else kind


def kind_of(source: str) -> str:
    """The kind of a source id: ``"bank:BANK-VCB"`` -> ``"bank"``."""
    return source.split(":", 1)[0]


def expand_sources(
    requested: str | Sequence[str | Mapping[str, Any]], partners: Sequence[PartnerRef]
) -> tuple[list[SourceRef], list[Violation]]:
    """The sources a request's ``sources`` value reaches, each once, in request order, and the
    violations of the selection.

    ``"all"`` reaches one partner of every kind and every configured bank; ``"bank"`` every
    configured bank; ``{"bank": [codes]}`` the listed banks. An unknown kind, a kind no partner is
    configured for, or an unknown bank code is a violation at a path like ``$.sources[2]`` or
    ``$.sources[1].bank[0]``; the sources that could be resolved are returned all the same.
    """
    by_kind: dict[str, list[PartnerRef]] = {}
    for partner in partners:
        by_kind.setdefault(partner.kind, []).append(partner)
    refs: dict[str, SourceRef] = {}
    violations: list[Violation] = []

    def add(partner: PartnerRef) -> None:
        ref = SourceRef(source_id(partner.kind, partner.code), partner.code, partner.kind)
        refs.setdefault(ref.source_id, ref)

    def add_kind(kind: str) -> None:
        # Several partners of a kind only make sense for banks; otherwise the first one answers.
        configured = by_kind.get(kind, [])
        for partner in configured if kind == _BANK else configured[:1]:
            add(partner)

    if isinstance(requested, str):
        if requested != ALL_SOURCES:
            violations.append(Violation("$.sources", f"must be {ALL_SOURCES!r} or a list of sources", "enum"))
        else:
            for kind in SOURCE_KINDS:
                add_kind(kind)
        return list(refs.values()), violations

    banks = {p.code: p for p in by_kind.get(_BANK, [])}
    known = {p.code for p in partners}
    for index, item in enumerate(requested):
        path = f"$.sources[{index}]"
        if isinstance(item, str):
            if item not in SOURCE_KINDS:
                violations.append(
                    Violation(path, f"unknown source kind; known: {', '.join(SOURCE_KINDS)}", "enum")
                )
            elif item not in by_kind:
                violations.append(Violation(path, f"no {item} partner is configured", "partner"))
            else:
                add_kind(item)
            continue
        if not isinstance(item, Mapping) or set(item) != {_BANK} or not isinstance(item[_BANK], list):
            violations.append(Violation(path, "must be a source kind or {'bank': [bank codes]}", "type"))
            continue
        codes = item[_BANK]
        if not codes:
            violations.append(Violation(f"{path}.bank", "name at least one bank", "minItems"))
        for position, code in enumerate(codes):
            at = f"{path}.bank[{position}]"
            if isinstance(code, str) and code in banks:
                add(banks[code])
            elif isinstance(code, str) and code in known:
                violations.append(Violation(at, "this partner is not a bank", "partner"))
            else:
                violations.append(Violation(at, "unknown bank code", "partner"))
    return list(refs.values()), violations


def required_grants(sources: Iterable[SourceRef]) -> set[str]:
    """``assets.inquire:<kind>`` for each kind asked; ``Client.allows`` lets ``assets.inquire`` cover all."""
    return {f"{GRANT}:{source.kind}" for source in sources}


def is_urgent(request: Mapping[str, Any]) -> bool:
    """Urgent priority, or a lookup for an interim measure (to be answered "immediately")."""
    return request.get("priority") == "urgent" or request.get("interim_measure") is True


def precondition_violations(request: Mapping[str, Any], legal_bases: Collection[str]) -> list[Violation]:
    """Why the lookup may not be made; empty when it may. Call on a schema-valid request.

    The officer must state a valid enforceable title, that the data is necessary, and that the
    voluntary period has expired, unless the request is ``urgent`` and for an ``interim_measure``.
    The case, officer and legal basis must be given, the basis from the ``legal_bases`` code list.
    """
    out: list[Violation] = []
    for field in ("case_ref", "officer_id", "legal_basis"):
        value = request.get(field)
        if not isinstance(value, str) or not value:
            out.append(
                Violation(f"$.{field}", f"'{field}' is required for a lookup of personal data", "required")
            )
    basis = request.get("legal_basis")
    if isinstance(basis, str) and basis and basis not in legal_bases:
        known = ", ".join(sorted(legal_bases))
        out.append(Violation("$.legal_basis", f"not a known legal basis; known: {known}", "legal_basis"))

    conditions = request.get("preconditions")
    if not isinstance(conditions, Mapping):
        out.append(Violation("$.preconditions", "'preconditions' is required", "required"))
        return out
    if conditions.get("enforceable_title") is not True:
        out.append(
            Violation(
                "$.preconditions.enforceable_title", "a valid enforceable title is required", "precondition"
            )
        )
    interim = request.get("priority") == "urgent" and request.get("interim_measure") is True
    if conditions.get("voluntary_period_expired") is not True and not interim:
        out.append(
            Violation(
                "$.preconditions.voluntary_period_expired",
                "the voluntary period must have expired, unless this is an urgent interim measure",
                "precondition",
            )
        )
    if conditions.get("data_necessary") is not True:
        out.append(
            Violation(
                "$.preconditions.data_necessary", "the data must be necessary for enforcement", "precondition"
            )
        )
    return out


def overall_status(source_statuses: Sequence[SourceStatus], now: datetime, due_at: datetime) -> InquiryStatus:
    """The status of an inquiry from the statuses of its sources.

    - Some source still ``pending`` and ``now < due_at``: ``partial`` when at least one source has
      an outcome (any status but ``pending``), else ``pending``.
    - Some source still ``pending`` and ``now >= due_at``: ``expired`` (the deadline watcher has
      not marked it ``timeout`` yet, but it is late all the same).
    - No source ``pending``: ``expired`` if any source is ``timeout``, else ``complete``, even when
      some are ``unavailable``, ``error`` or ``rejected``: those are explicit, final outcomes.

    ``ValueError`` for an inquiry without sources.
    """
    statuses = [SourceStatus(s) for s in source_statuses]
    return status_from_counts(
        total=len(statuses),
        pending=statuses.count(SourceStatus.PENDING),
        timeouts=statuses.count(SourceStatus.TIMEOUT),
        now=now,
        due_at=due_at,
    )


def status_from_counts(
    total: int, pending: int, timeouts: int, now: datetime, due_at: datetime
) -> InquiryStatus:
    """:func:`overall_status` from the counts an inquiry keeps (sources in all, still pending, timed out):
    an answer updates one row instead of reading every source. ``ValueError`` for no sources or
    counts that cannot be."""
    if total < 1:
        raise ValueError("an inquiry has at least one source")
    if not (0 <= pending <= total and 0 <= timeouts <= total - pending):
        raise ValueError(f"impossible source counts: {pending} pending and {timeouts} timed out of {total}")
    if pending:
        if now >= due_at:
            return InquiryStatus.EXPIRED
        return InquiryStatus.PARTIAL if pending < total else InquiryStatus.PENDING
    if timeouts:
        return InquiryStatus.EXPIRED
    return InquiryStatus.COMPLETE


def result_categories(source_id: str, rows: Sequence[Mapping[str, Any]]) -> list[str]:
    """The categories of personal data an answer revealed, for the audit log (never the data).

    Empty when no rows came back. ``ValueError`` for a source id of an unknown kind.
    """
    kind = kind_of(source_id)
    if kind not in SOURCE_KINDS:
        raise ValueError(f"unknown source kind {kind!r}")
    if not rows:
        return []
    if kind != "population":
        return list(_CATEGORIES[kind])
    return [
        category
        for category, fields in _POPULATION_FIELDS
        if any(row.get(field) not in (None, "") for row in rows for field in fields)
    ]
