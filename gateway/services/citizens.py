"""Citizens: consents to notices (recorded by the national e-ID notification service) and the
data-access report (what the gateway did with one person's data, from the audit trail).

The personal ID is used here only to compute its keyed pseudonym; it is never stored, logged or
audited in clear.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Any, Final

from gateway.domain.errors import Refused
from gateway.domain.identifiers import is_personal_id, pseudonym
from gateway.domain.violations import Violation
from gateway.storage import consents as store
from gateway.storage.audit import AuditEntry, append
from gateway.storage.database import Database
from gateway.storage.timestamps import as_utc, iso, now
from gateway.validation import SchemaCatalog

CONSENT_ACTION: Final = "consents.write"
REPORT_ACTION: Final = "data_access.read"
#: Audit actions of lookups (their audit data names the debtor's pseudonym as ``debtor``).
LOOKUP_ACTIONS: Final = ("assets.inquire",)


class CitizenService:
    def __init__(
        self, db: Database, catalog: SchemaCatalog, pepper: bytes, clock: Callable[[], datetime] = now
    ) -> None:
        self._db = db
        self._catalog = catalog
        self._pepper = pepper
        self._clock = clock

    async def record_consent(
        self, actor: str, subject: str | None, document: object, via: Mapping[str, Any] | None = None
    ) -> dict[str, Any]:
        """Record a person's consent to notices, or its withdrawal. Raises :class:`Refused`. ``via``: how
        the request arrived (an X-Road call), kept in its audit record."""
        violations = self._catalog.violations("consent.request", document)
        if violations:
            raise Refused(violations)
        assert isinstance(document, dict)
        person = pseudonym(document["person"]["id_number"], self._pepper)
        try:
            at = datetime.fromisoformat(document["at"])
        except ValueError:  # RFC 3339 allows a leap second, which Python's datetime cannot hold
            raise Refused([Violation("$.at", "is not a time this service can record", "format")]) from None
        recorded_at = self._clock()
        if at > recorded_at:
            raise Refused([Violation("$.at", "lies in the future: a consent is recorded once given", "at")])
        consent = store.Consent(
            person_ref=person,
            channel=document.get("channel", store.VNEID_CHANNEL),
            status=document["status"],
            at=at,
            recorded_by=actor,
            reference=document.get("reference"),
        )
        async with self._db.transaction() as conn:
            await store.record(conn, consent)
            current = await store.latest(conn, person, consent.channel)
            await append(
                conn,
                AuditEntry(
                    actor=actor,
                    subject=subject,
                    action=CONSENT_ACTION,
                    outcome="recorded",
                    status_code=201,
                    object_ref=consent.reference,
                    data={
                        "channel": consent.channel,
                        "status": consent.status,
                        "consent_of": person,
                        **(via or {}),
                    },
                ),
            )
        assert current is not None
        return {
            "channel": consent.channel,
            "status": consent.status,
            "at": iso(as_utc(at)),
            "recorded_at": iso(as_utc(recorded_at)),
            "recorded_by": actor,
            **({"reference": consent.reference} if consent.reference else {}),
            # An older decision recorded late does not override a newer one.
            "current_status": current.status,
        }

    async def data_access(
        self, actor: str, subject: str | None, person_id: str, via: Mapping[str, Any] | None = None
    ) -> dict[str, Any]:
        """Every lookup and document that named the person: who, when, which case, basis and purpose,
        which categories of data came back (never the data). The request is audited, without the ID."""
        if not is_personal_id(person_id):
            raise Refused([Violation("person_id", "must be a 12-digit personal identification number")])
        person = pseudonym(person_id, self._pepper)
        async with self._db.transaction() as conn:
            found = await store.accesses(conn, person, LOOKUP_ACTIONS)
            await append(
                conn,
                AuditEntry(
                    actor=actor,
                    subject=subject,
                    action=REPORT_ACTION,
                    outcome="read",
                    status_code=200,
                    # Not the pseudonym: a report request is not an access the next report should list.
                    data={"entries": len(found), **(via or {})},
                ),
            )
        return {
            "generated_at": iso(as_utc(self._clock())),
            "accesses": [_entry(item) for item in found],
        }


def _entry(item: dict[str, Any]) -> dict[str, Any]:
    row, data = item["row"], item["data"]
    entry: dict[str, Any] = {
        "at": iso(as_utc(row.at)),
        "kind": "lookup" if item["lookup"] else _document_kind(str(data.get("message_type", ""))),
        "agency": row.actor,
        "officer": data.get("officer_id"),
        "case_ref": data.get("case_ref"),
        "legal_basis": data.get("legal_basis"),
        "purpose": data.get("purpose"),
    }
    if item["lookup"]:
        entry["reference"] = row.object_ref
        entry["categories_asked"] = sorted({str(s).split(":", 1)[0] for s in data.get("sources", [])})
        entry["categories_returned"] = item["returned"]
    else:
        entry["reference"] = row.message_id
        entry["message_type"] = data.get("message_type")
        entry["recipient"] = data.get("recipient")
        entry["categories_returned"] = item["returned"]
    return {key: value for key, value in entry.items() if value is not None}


def _document_kind(message_type: str) -> str:
    family = message_type.split(".", 1)[0]
    return {"order": "order", "notice": "notice"}.get(family, "document")
