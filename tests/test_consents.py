"""Consents and the audit-trail queries behind the consent check and the data-access report, on SQLite
and PostgreSQL: the latest decision by its time counts, notices are counted per person, and a person's
accesses are found by their pseudonym only."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from gateway.domain.flows.citizen import NOTICE
from gateway.domain.identifiers import pseudonym
from gateway.domain.registry import REGISTRY
from gateway.services.admissions import AdmissionContext, citizen_consent
from gateway.storage import consents
from gateway.storage.audit import AuditEntry, append
from gateway.storage.database import Database
from tests.support.citizen_world import notice

PEPPER = b"test pepper"
ANNA, BINH = "001085012345", "001090000000"
SEND, LOOKUP = "documents.send:notice.citizen", "assets.inquire"
T0 = datetime(2026, 3, 10, 2, 0, tzinfo=UTC)


def ref(person: str) -> str:
    return pseudonym(person, PEPPER)


async def decide(db: Database, person: str, status: str, at: datetime) -> None:
    async with db.transaction() as conn:
        await consents.record(conn, consents.Consent(ref(person), "vneid", status, at, "VNEID", None))


async def accepted_notice(db: Database, person: str, message_id: str) -> None:
    """What the document service audits when it accepts a notice naming ``person``."""
    data: dict[str, Any] = {"message_type": NOTICE, "persons": [ref(person)], "recipient": "VNEID"}
    async with db.transaction() as conn:
        await append(
            conn,
            AuditEntry(
                "THADS-HN", "documents.send:notice.citizen", "accepted", message_id=message_id, data=data
            ),
        )


async def check(db: Database, person: str) -> list[Any]:
    doc_type = REGISTRY[NOTICE]
    async with db.read() as conn:
        return await citizen_consent(conn, doc_type, notice(person), AdmissionContext(PEPPER, T0))


async def test_latest_decision_by_its_time_counts(db: Database) -> None:
    async with db.read() as conn:
        assert await consents.latest(conn, ref(ANNA), "vneid") is None
    await decide(db, ANNA, "granted", T0)
    await decide(db, ANNA, "withdrawn", T0 + timedelta(hours=1))
    # An older decision recorded late does not override the newer one.
    await decide(db, ANNA, "granted", T0 + timedelta(minutes=30))
    async with db.read() as conn:
        assert not await consents.has_consent(conn, ref(ANNA), "vneid")
        assert not await consents.has_consent(conn, ref(BINH), "vneid")
    await decide(db, ANNA, "granted", T0 + timedelta(hours=2))
    async with db.read() as conn:
        assert await consents.has_consent(conn, ref(ANNA), "vneid")


async def test_first_notice_goes_without_consent_the_second_needs_it(db: Database) -> None:
    assert await check(db, ANNA) == []
    await accepted_notice(db, ANNA, "00000000-0000-4000-8000-000000000001")
    [violation] = await check(db, ANNA)
    assert violation.path == "$.body.person.id_number" and violation.rule == "consent"
    assert await check(db, BINH) == []  # another person's history does not count
    await decide(db, ANNA, "granted", T0)
    assert await check(db, ANNA) == []
    async with db.read() as conn:
        assert await consents.notices_sent(conn, ref(ANNA), NOTICE) == 1
        assert await consents.notices_sent(conn, ref(BINH), NOTICE) == 0


async def test_accesses_are_found_by_pseudonym_and_only_when_accepted(db: Database) -> None:
    await accepted_notice(db, ANNA, "00000000-0000-4000-8000-000000000002")
    await accepted_notice(db, BINH, "00000000-0000-4000-8000-000000000003")
    async with db.transaction() as conn:
        refused = {"message_type": NOTICE, "persons": [ref(ANNA)]}
        await append(conn, AuditEntry("THADS-HN", SEND, "rejected", data=refused))
        lookup = {"debtor": ref(ANNA), "sources": ["tax"], "case_ref": "THA-1"}
        await append(
            conn, AuditEntry("THADS-HN", "assets.inquire", "accepted", object_ref="inq-1", data=lookup)
        )
    async with db.read() as conn:
        found = await consents.accesses(conn, ref(ANNA), ("assets.inquire",))
        assert [(f["lookup"], f["row"].message_id or f["row"].object_ref) for f in found] == [
            (False, "00000000-0000-4000-8000-000000000002"),
            (True, "inq-1"),
        ]
        assert [f["row"].message_id for f in await consents.accesses(conn, ref(BINH), ())] == [
            "00000000-0000-4000-8000-000000000003"
        ]
