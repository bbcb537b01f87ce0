"""What every lookup states besides its subject, as connector and simulator tests send it."""

from __future__ import annotations

from typing import Any

from gateway.domain.lookup import DecisionRef, JudgmentRef, Title

OFFICER_ID = "001080000001"
LEGAL_BASIS = "LTHADS-44"
DUE_AT = "2026-03-05T23:59:59+07:00"
TITLE = Title(
    judgment=JudgmentRef(court_code="TAND-HN", number="123/2025/DS-PT", date="2025-11-14"),
    enforcement_decision=DecisionRef(number="152/QĐ-THADS", date="2026-01-08"),
)
TITLE_JSON: dict[str, Any] = {
    "judgment": {"court_code": "TAND-HN", "number": "123/2025/DS-PT", "date": "2025-11-14"},
    "enforcement_decision": {"number": "152/QĐ-THADS", "date": "2026-01-08"},
}
TITLE_XML: dict[str, Any] = {
    "Judgment": {"CourtCode": "TAND-HN", "Number": "123/2025/DS-PT", "Date": "2025-11-14"},
    "EnforcementDecision": {"Number": "152/QĐ-THADS", "Date": "2026-01-08"},
}

#: Keyword arguments of a ``LookupRequest`` stating everything the law requires.
STATED: dict[str, Any] = {
    "officer_id": OFFICER_ID,
    "legal_basis": LEGAL_BASIS,
    "title": TITLE,
    "due_at": DUE_AT,
}
#: The same in a REST partner's JSON.
STATED_JSON: dict[str, Any] = {
    "officer_id": OFFICER_ID,
    "legal_basis": LEGAL_BASIS,
    "title": TITLE_JSON,
    "due_at": DUE_AT,
}
#: The same as the land registry's QueryLandRights fields.
STATED_SOAP: dict[str, Any] = {
    "OfficerId": OFFICER_ID,
    "LegalBasis": LEGAL_BASIS,
    "Title": TITLE_XML,
    "DueAt": DUE_AT,
}
