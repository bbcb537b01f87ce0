"""Append-only, hash-chained audit log.

Each row's hash covers its fields and the previous row's hash, so removing or editing any row breaks
every hash after it. Writers serialise on the single ``audit_head`` row.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import insert, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from gateway.domain.identifiers import scrub
from gateway.storage.tables import audit_head, audit_log, audit_persons
from gateway.storage.timestamps import as_utc

GENESIS = "0" * 64
#: A keyed pseudonym of a personal ID (HMAC-SHA-256, hex).
PSEUDONYM = re.compile(r"[0-9a-f]{64}")


@dataclass(frozen=True, slots=True)
class AuditEntry:
    actor: str
    action: str
    outcome: str  # accepted | duplicate | rejected | read | confirmed | ...
    subject: str | None = None
    status_code: int | None = None
    message_id: str | None = None
    object_ref: str | None = None
    reason: str | None = None
    data: dict[str, Any] | None = None


def _digest(prev_hash: str, at: datetime, entry: AuditEntry) -> str:
    fields = asdict(entry) | {"at": at.isoformat(), "prev_hash": prev_hash}
    return hashlib.sha256(json.dumps(fields, sort_keys=True, ensure_ascii=False).encode()).hexdigest()


#: The fields of a record its hash covers, besides ``at`` and ``prev_hash``.
HASHED_FIELDS = tuple(AuditEntry.__dataclass_fields__)


def record(row: Any) -> dict[str, Any]:
    """An audit row as plain JSON: ``id``, ``hash`` and exactly the fields its hash covers, ``at`` in the
    form that was hashed. What evidence bundles carry and :func:`record_digest` recomputes."""
    return {
        "id": int(row.id),
        "at": as_utc(row.at).isoformat(),
        **{name: getattr(row, name) for name in HASHED_FIELDS if name != "data"},
        "data": json.loads(row.data) if row.data is not None else None,
        "prev_hash": row.prev_hash,
        "hash": row.hash,
    }


def record_digest(rec: dict[str, Any]) -> str:
    """The hash a record should have: SHA-256 of the sorted JSON of its covered fields and ``prev_hash``."""
    fields = {name: rec.get(name) for name in HASHED_FIELDS} | {
        "at": rec["at"],
        "prev_hash": rec["prev_hash"],
    }
    return hashlib.sha256(json.dumps(fields, sort_keys=True, ensure_ascii=False).encode()).hexdigest()


def persons_named(data: dict[str, Any] | None) -> list[str]:
    """The keyed pseudonyms a record's data names: ``persons`` of a document, ``debtor`` of a lookup."""
    if not data:
        return []
    named = [*(data.get("persons") or []), data.get("debtor")]
    return sorted({p for p in named if isinstance(p, str) and PSEUDONYM.fullmatch(p)})


async def append(conn: AsyncConnection, entry: AuditEntry) -> str:
    """Write one audit row inside the caller's transaction; returns its hash."""
    entry = AuditEntry(**(asdict(entry) | {"reason": scrub(entry.reason) if entry.reason else entry.reason}))
    # The no-op update takes the head's row lock first (PostgreSQL), so two writers never read the same
    # previous hash; RETURNING reads it in the same round trip. On SQLite, BEGIN IMMEDIATE already
    # serialises writers.
    head = (
        await conn.execute(
            update(audit_head)
            .where(audit_head.c.id == 1)
            .values(last_id=audit_head.c.last_id)
            .returning(audit_head.c.last_hash)
        )
    ).scalar_one()
    at = datetime.now(UTC)
    digest = _digest(head, at, entry)
    result = await conn.execute(
        insert(audit_log),
        dict(
            at=at,
            actor=entry.actor,
            subject=entry.subject,
            action=entry.action,
            outcome=entry.outcome,
            status_code=entry.status_code,
            message_id=entry.message_id,
            object_ref=entry.object_ref,
            reason=entry.reason,
            data=json.dumps(entry.data, sort_keys=True, ensure_ascii=False)
            if entry.data is not None
            else None,
            prev_hash=head,
            hash=digest,
        ),
    )
    new_id = result.inserted_primary_key[0] if result.inserted_primary_key else 0
    if persons := persons_named(entry.data):
        await conn.execute(insert(audit_persons), [{"person_ref": p, "audit_id": new_id} for p in persons])
    await conn.execute(
        update(audit_head).where(audit_head.c.id == 1).values(last_id=new_id, last_hash=digest)
    )
    return digest


async def verify_chain(conn: AsyncConnection) -> int | None:
    """Walk the chain; return the id of the first row that does not verify, or None if intact."""
    prev = GENESIS
    rows = await conn.stream(select(audit_log).order_by(audit_log.c.id))
    async for row in rows:
        at = as_utc(row.at)
        entry = AuditEntry(
            actor=row.actor,
            action=row.action,
            outcome=row.outcome,
            subject=row.subject,
            status_code=row.status_code,
            message_id=row.message_id,
            object_ref=row.object_ref,
            reason=row.reason,
            data=json.loads(row.data) if row.data is not None else None,
        )
        if row.prev_hash != prev or _digest(prev, at, entry) != row.hash:
            return int(row.id)
        prev = row.hash
    head = (await conn.execute(select(audit_head.c.last_hash).where(audit_head.c.id == 1))).scalar_one()
    return None if head == prev else -1
