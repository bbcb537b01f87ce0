"""Citizens' consent to notices, and what the audit trail says about one person.

Everything is keyed by the keyed pseudonym of the personal ID (``identifiers.pseudonym``), never the ID.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final

from sqlalchemy import and_, func, insert, select
from sqlalchemy.ext.asyncio import AsyncConnection

from gateway.storage.tables import audit_log, audit_persons, consents, inquiry_sources, messages
from gateway.storage.timestamps import as_utc

VNEID_CHANNEL: Final = "vneid"
GRANTED: Final = "granted"
WITHDRAWN: Final = "withdrawn"


@dataclass(frozen=True, slots=True)
class Consent:
    person_ref: str
    channel: str
    status: str
    at: datetime
    recorded_by: str
    reference: str | None


async def record(conn: AsyncConnection, consent: Consent) -> None:
    await conn.execute(
        insert(consents).values(
            person_ref=consent.person_ref,
            channel=consent.channel,
            status=consent.status,
            at=as_utc(consent.at),
            recorded_by=consent.recorded_by,
            reference=consent.reference,
        )
    )


async def latest(conn: AsyncConnection, person_ref: str, channel: str) -> Consent | None:
    """The person's latest decision on ``channel`` (by the time it was made, then the order recorded)."""
    row = (
        await conn.execute(
            select(consents)
            .where(consents.c.person_ref == person_ref, consents.c.channel == channel)
            .order_by(consents.c.at.desc(), consents.c.id.desc())
            .limit(1)
        )
    ).first()
    if row is None:
        return None
    return Consent(row.person_ref, row.channel, row.status, as_utc(row.at), row.recorded_by, row.reference)


async def has_consent(conn: AsyncConnection, person_ref: str, channel: str) -> bool:
    current = await latest(conn, person_ref, channel)
    return current is not None and current.status == GRANTED


def _mentions(person_ref: str) -> Any:
    """Audit records naming the person: through the index written with each record (``audit_persons``)."""
    return audit_log.c.id.in_(
        select(audit_persons.c.audit_id).where(audit_persons.c.person_ref == person_ref)
    )


async def notices_sent(conn: AsyncConnection, person_ref: str, message_type: str) -> int:
    """How many documents of ``message_type`` naming the person were accepted (from the audit trail)."""
    query = select(func.count()).where(
        audit_log.c.outcome == "accepted",
        audit_log.c.data.like(f'%"message_type": "{message_type}"%'),
        _mentions(person_ref),
    )
    return int((await conn.execute(query)).scalar_one())


async def accesses(conn: AsyncConnection, person_ref: str, actions: tuple[str, ...]) -> list[dict[str, Any]]:
    """Audit records of accepted lookups and documents naming the person, oldest first, each with what
    came back: the sources that found something (lookups), the answers' message types (documents)."""
    rows = (
        await conn.execute(
            select(audit_log)
            .where(audit_log.c.outcome == "accepted", _mentions(person_ref))
            .order_by(audit_log.c.id)
        )
    ).all()
    out: list[dict[str, Any]] = []
    for row in rows:
        data = json.loads(row.data) if row.data else {}
        is_lookup = row.action in actions and data.get("debtor") == person_ref
        if not is_lookup and person_ref not in (data.get("persons") or []):
            continue
        entry: dict[str, Any] = {"row": row, "data": data, "lookup": is_lookup}
        if is_lookup:
            found = await conn.execute(
                select(inquiry_sources.c.kind)
                .where(
                    and_(
                        inquiry_sources.c.inquiry_id == row.object_ref,
                        inquiry_sources.c.match_status == "found",
                    )
                )
                .distinct()
            )
            entry["returned"] = sorted(str(r.kind) for r in found)
        else:
            replies = await conn.execute(
                select(messages.c.message_type).where(messages.c.in_reply_to == row.message_id).distinct()
            )
            entry["returned"] = sorted(str(r.message_type) for r in replies)
        out.append(entry)
    return out
