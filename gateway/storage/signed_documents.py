"""The signed documents kept as long-term proof (table ``signed_documents``): stored with their message,
then claimed one at a time by the long-term proof job of any worker (a lease, so two workers never work on
the same file and a dead worker's claim runs out)."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import and_, or_, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from gateway.storage.tables import signed_documents as t
from gateway.storage.timestamps import as_utc

#: Level of a file as it arrived, before any validation material was added.
RECEIVED = "received"


@dataclass(frozen=True, slots=True)
class SignedDocument:
    message_id: str
    sender: str
    original_sha256: str
    original_length: int
    pdf: bytes
    level: str
    timestamps: int
    archive_expires_at: datetime | None
    due_at: datetime
    attempts: int
    last_error: str | None

    @property
    def original(self) -> bytes:
        """The file as it arrived (what the validation report's ``document_sha256`` names)."""
        return self.pdf[: self.original_length]


def _row(row: object) -> SignedDocument:
    m = row._mapping  # type: ignore[attr-defined]
    expires = m["archive_expires_at"]
    return SignedDocument(
        message_id=m["message_id"],
        sender=m["sender"],
        original_sha256=m["original_sha256"],
        original_length=int(m["original_length"]),
        pdf=bytes(m["pdf"]),
        level=m["level"],
        timestamps=int(m["timestamps"]),
        archive_expires_at=as_utc(expires) if expires is not None else None,
        due_at=as_utc(m["due_at"]),
        attempts=int(m["attempts"]),
        last_error=m["last_error"],
    )


async def insert(conn: AsyncConnection, message_id: str, sender: str, pdf: bytes, at: datetime) -> None:
    """Keep ``pdf`` (as it arrived) for ``message_id``; the proof job takes it at once."""
    await conn.execute(
        t.insert().values(
            message_id=message_id,
            sender=sender,
            original_sha256=hashlib.sha256(pdf).hexdigest(),
            original_length=len(pdf),
            pdf=pdf,
            level=RECEIVED,
            timestamps=0,
            due_at=at,
            attempts=0,
            created_at=at,
            updated_at=at,
        )
    )


async def get(conn: AsyncConnection, message_id: str) -> SignedDocument | None:
    row = (await conn.execute(select(t).where(t.c.message_id == message_id))).first()
    return _row(row) if row is not None else None


async def claim_due(
    conn: AsyncConnection, worker: str, at: datetime, lease: timedelta
) -> SignedDocument | None:
    """The oldest file whose proof is due and nobody holds, now held by ``worker`` until ``at + lease``."""
    free = or_(t.c.claimed_until.is_(None), t.c.claimed_until < at)
    candidate = (
        await conn.execute(
            select(t.c.message_id).where(and_(t.c.due_at <= at, free)).order_by(t.c.due_at).limit(1)
        )
    ).first()
    if candidate is None:
        return None
    # The same condition again in the UPDATE: of two workers that read the same row, one changes it.
    claimed = await conn.execute(
        update(t)
        .where(and_(t.c.message_id == candidate.message_id, t.c.due_at <= at, free))
        .values(claimed_by=worker, claimed_until=at + lease)
    )
    if claimed.rowcount != 1:
        return None
    return await get(conn, candidate.message_id)


async def store_proof(
    conn: AsyncConnection,
    message_id: str,
    worker: str,
    pdf: bytes,
    level: str,
    timestamps: int,
    archive_expires_at: datetime | None,
    due_at: datetime,
    at: datetime,
) -> bool:
    """The file with its new proof, released; False when ``worker`` no longer held it (its lease ran out
    and another worker took it: that one's result stands)."""
    done = await conn.execute(
        update(t)
        .where(and_(t.c.message_id == message_id, t.c.claimed_by == worker))
        .values(
            pdf=pdf,
            level=level,
            timestamps=timestamps,
            archive_expires_at=archive_expires_at,
            due_at=due_at,
            attempts=0,
            last_error=None,
            claimed_by=None,
            claimed_until=None,
            updated_at=at,
        )
    )
    return done.rowcount == 1


async def store_failure(
    conn: AsyncConnection, message_id: str, worker: str, error: str, retry_at: datetime, at: datetime
) -> None:
    """The attempt failed (a time-stamping service or a responder down): tried again at ``retry_at``."""
    await conn.execute(
        update(t)
        .where(and_(t.c.message_id == message_id, t.c.claimed_by == worker))
        .values(
            attempts=t.c.attempts + 1,
            last_error=error[:500],
            due_at=retry_at,
            claimed_by=None,
            claimed_until=None,
            updated_at=at,
        )
    )
