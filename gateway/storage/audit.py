"""Append-only, hash-chained audit log.

Each row's hash covers its fields and the previous row's hash, so removing or editing any row breaks
every hash after it. Writers serialise on the single ``audit_head`` row.

Every string a record stores is scrubbed first (:func:`gateway.domain.identifiers.scrub`: personal IDs
masked, in any grouping or digits), in :func:`append`, so no caller can put an ID in clear into the
log, and the hash covers what is stored. A person's records are found through ``audit_persons``, by the
keyed pseudonyms of the IDs (which the scrub spares: they are digests).

How a record's hash is made (format 2): ``content_sha256`` is the SHA-256 of the sorted JSON of its
fields other than ``message_id`` (with ``at``), and the hash is the SHA-256 of the sorted JSON of
``{content_sha256, message_id, prev_hash}``. So a record can be shown as a *link* — its id, message id,
content digest and hashes, none of its content — and still be checked to chain: what an evidence bundle
carries of the records of other parties. Records written before format 2 hash all their fields with
``prev_hash`` in one object (format 1); they verify as before but can only be shown in full.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import insert, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from gateway.domain.identifiers import scrub, scrub_value
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


#: The fields of a record its hash covers, besides ``at`` and ``prev_hash``.
HASHED_FIELDS = tuple(AuditEntry.__dataclass_fields__)
#: What a link (a record shown without its content) carries.
LINK_FIELDS = ("id", "message_id", "content_sha256", "prev_hash", "hash")


def _sha256_json(fields: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(fields, sort_keys=True, ensure_ascii=False).encode()).hexdigest()


def content_sha256(rec: dict[str, Any]) -> str:
    """The digest of a record's content: every covered field but ``message_id``, and ``at``."""
    return _sha256_json(
        {name: rec.get(name) for name in HASHED_FIELDS if name != "message_id"} | {"at": rec["at"]}
    )


def chain_hash(prev_hash: str, message_id: str | None, content: str) -> str:
    """A record's hash (format 2) from the previous hash, its message id and its content digest."""
    return _sha256_json({"content_sha256": content, "message_id": message_id, "prev_hash": prev_hash})


def _legacy_digest(rec: dict[str, Any]) -> str:
    return _sha256_json(
        {name: rec.get(name) for name in HASHED_FIELDS} | {"at": rec["at"], "prev_hash": rec["prev_hash"]}
    )


def record(row: Any) -> dict[str, Any]:
    """An audit row as plain JSON: ``id``, ``hash`` and exactly the fields its hash covers, ``at`` in the
    form that was hashed. What evidence bundles carry of a message's own records."""
    return {
        "id": int(row.id),
        "at": as_utc(row.at).isoformat(),
        **{name: getattr(row, name) for name in HASHED_FIELDS if name != "data"},
        "data": json.loads(row.data) if row.data is not None else None,
        "prev_hash": row.prev_hash,
        "hash": row.hash,
    }


def link(rec: dict[str, Any]) -> dict[str, Any]:
    """A full record reduced to what proves it chains (:data:`LINK_FIELDS`), none of its content."""
    return {
        "id": rec["id"],
        "message_id": rec.get("message_id"),
        "content_sha256": content_sha256(rec),
        "prev_hash": rec["prev_hash"],
        "hash": rec["hash"],
    }


def is_link(rec: dict[str, Any]) -> bool:
    return "content_sha256" in rec


def record_digest(rec: dict[str, Any]) -> str:
    """The hash a record (format 2) should have, from its fields or, for a link, its content digest."""
    content = str(rec["content_sha256"]) if is_link(rec) else content_sha256(rec)
    return chain_hash(rec["prev_hash"], rec.get("message_id"), content)


def holds(rec: dict[str, Any]) -> bool:
    """Whether a record's (or a link's) hash is the one its fields and ``prev_hash`` give."""
    if record_digest(rec) == rec.get("hash"):
        return True
    return not is_link(rec) and _legacy_digest(rec) == rec.get("hash")


def linkable(rec: dict[str, Any]) -> bool:
    """Whether a record can be shown as a link: format 2 (a format-1 record only verifies in full)."""
    return record_digest(rec) == rec.get("hash")


def persons_named(data: dict[str, Any] | None) -> list[str]:
    """The keyed pseudonyms a record's data names: ``persons`` of a document, ``debtor`` of a lookup."""
    if not data:
        return []
    named = [*(data.get("persons") or []), data.get("debtor")]
    return sorted({p for p in named if isinstance(p, str) and PSEUDONYM.fullmatch(p)})


def scrubbed(entry: AuditEntry) -> AuditEntry:
    """``entry`` with every string it holds scrubbed of personal IDs (data values and keys included)."""
    fields: dict[str, Any] = {
        k: scrub(v) if isinstance(v, str) else v for k, v in asdict(entry).items() if k != "data"
    }
    return AuditEntry(**fields, data=scrub_value(entry.data) if entry.data is not None else None)


async def append(conn: AsyncConnection, entry: AuditEntry) -> str:
    """Write one audit row inside the caller's transaction, scrubbed of personal IDs; returns its hash."""
    return (await append_many(conn, [entry]))[0]


async def append_many(conn: AsyncConnection, entries: Sequence[AuditEntry]) -> list[str]:
    """Write audit rows inside the caller's transaction, in order, each scrubbed of personal IDs; returns
    their hashes. The head is taken once and the rows written in one INSERT, so answers recorded together
    cost one chain step, not one per record."""
    if not entries:
        return []
    # The no-op update takes the head's row lock first (PostgreSQL), so two writers never read the same
    # previous hash; RETURNING reads it in the same round trip. On SQLite, BEGIN IMMEDIATE already
    # serialises writers.
    prev = (
        await conn.execute(
            update(audit_head)
            .where(audit_head.c.id == 1)
            .values(last_id=audit_head.c.last_id)
            .returning(audit_head.c.last_hash)
        )
    ).scalar_one()
    rows: list[dict[str, Any]] = []
    persons: list[list[str]] = []
    for entry in entries:
        persons.append(persons_named(entry.data))
        row = _chained(prev, scrubbed(entry))
        rows.append(row)
        prev = row["hash"]
    numbered = insert(audit_log).returning(audit_log.c.id, sort_by_parameter_order=True)
    inserted = await conn.execute(numbered, rows)
    ids = [int(i) for i in inserted.scalars()]
    # The chain is walked in id order: the rows of one INSERT get ascending ids in the order given
    # (SQLite and PostgreSQL alike); should they not, the transaction fails rather than break the chain.
    if len(ids) != len(rows) or ids != sorted(ids):
        raise RuntimeError("audit records were not numbered in the order of their chain")
    links = [{"person_ref": p, "audit_id": i} for i, named in zip(ids, persons, strict=True) for p in named]
    if links:
        await conn.execute(insert(audit_persons), links)
    await conn.execute(update(audit_head).where(audit_head.c.id == 1).values(last_id=ids[-1], last_hash=prev))
    return [str(r["hash"]) for r in rows]


def _chained(prev: str, entry: AuditEntry) -> dict[str, Any]:
    """The row of a scrubbed ``entry`` following the record whose hash is ``prev``. The digest is computed
    over the record exactly as it reads back (data through JSON)."""
    at = datetime.now(UTC)
    data = json.dumps(entry.data, sort_keys=True, ensure_ascii=False) if entry.data is not None else None
    fields = asdict(entry) | {"data": json.loads(data) if data is not None else None, "at": at.isoformat()}
    return dict(
        at=at,
        actor=entry.actor,
        subject=entry.subject,
        action=entry.action,
        outcome=entry.outcome,
        status_code=entry.status_code,
        message_id=entry.message_id,
        object_ref=entry.object_ref,
        reason=entry.reason,
        data=data,
        prev_hash=prev,
        hash=chain_hash(prev, entry.message_id, content_sha256(fields)),
    )


async def read_head(conn: AsyncConnection) -> tuple[int, str]:
    """The head of the chain (last record id, its hash). A verifier reads it before the records and
    walks only up to it: records appended while it reads are not taken for records cut or added."""
    head = (await conn.execute(select(audit_head.c.last_id, audit_head.c.last_hash))).one()
    return int(head.last_id), str(head.last_hash)


async def snapshot(conn: AsyncConnection) -> None:
    """On PostgreSQL, make the reads that follow on ``conn`` one snapshot (REPEATABLE READ), as SQLite's
    read transactions already are; a no-op once the connection is in a transaction."""
    if conn.dialect.name == "postgresql" and not conn.in_transaction():
        await conn.execution_options(isolation_level="REPEATABLE READ")


async def verify_chain(conn: AsyncConnection) -> int | None:
    """Walk the chain up to its head; return the id of the first row that does not verify, None if
    intact, -1 if the head does not name the last record."""
    await snapshot(conn)
    head_id, head_hash = await read_head(conn)
    prev = GENESIS
    rows = await conn.stream(select(audit_log).where(audit_log.c.id <= head_id).order_by(audit_log.c.id))
    async for row in rows:
        rec = record(row)
        if rec["prev_hash"] != prev or not holds(rec):
            return int(rec["id"])
        prev = rec["hash"]
    return None if head_hash == prev else -1
