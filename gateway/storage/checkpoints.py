"""Signed checkpoints of the audit chain, and the full verification of the log against them.

A checkpoint is the head of the chain (record id and hash) signed with the receipt key. Whoever can
write to the database can recompute every hash of the chain, but not sign: a checkpoint makes a
recomputed chain, and records cut from the end past it, detectable. Each checkpoint also signs the
record id of the checkpoint before it, so deleting a checkpoint breaks the one after it.

Checkpoints are written under the same ``audit_head`` row lock as audit records, so several processes
never sign two different heads for one record, and at most one checkpoint exists per record.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from cryptography.hazmat.primitives.asymmetric import ed25519
from sqlalchemy import func, insert, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from gateway.security.signing import Signer, verify
from gateway.storage.audit import GENESIS, holds, read_head, record, snapshot
from gateway.storage.database import Database
from gateway.storage.tables import audit_checkpoints, audit_head, audit_log
from gateway.storage.timestamps import as_utc, now

log = logging.getLogger(__name__)

CHECKPOINT_TYPE = "audit.checkpoint"
SIGNED_FIELDS = ("type", "audit_id", "head_hash", "at", "key_id", "previous_audit_id")


class ChainBroken(Exception):
    """The chain since the last checkpoint does not verify: nothing is signed over it."""

    def __init__(self, record_id: int) -> None:
        super().__init__(f"audit record {record_id} does not verify; no checkpoint signed over it")
        self.record_id = record_id


def signed_fields(
    audit_id: int, head_hash: str, at: str, key_id: str, previous_audit_id: int
) -> dict[str, Any]:
    """What a checkpoint's signature covers (RFC 8785 canonical JSON, like receipts)."""
    return {
        "type": CHECKPOINT_TYPE,
        "audit_id": audit_id,
        "head_hash": head_hash,
        "at": at,
        "key_id": key_id,
        "previous_audit_id": previous_audit_id,
    }


def as_json(row: Any, previous_audit_id: int) -> dict[str, Any]:
    """A stored checkpoint as a self-describing, verifiable object (evidence bundles, ``audit verify``)."""
    fields = signed_fields(
        int(row.audit_id), row.head_hash, as_utc(row.at).isoformat(), row.key_id, previous_audit_id
    )
    return {
        "id": int(row.id),
        **fields,
        "alg": "EdDSA",
        "signed_fields": list(SIGNED_FIELDS),
        "signature": row.signature,
    }


def signature_holds(checkpoint: Mapping[str, Any], keys: Mapping[str, ed25519.Ed25519PublicKey]) -> bool:
    key = keys.get(str(checkpoint.get("key_id")))
    fields = {name: checkpoint.get(name) for name in SIGNED_FIELDS}
    return (
        key is not None
        and fields["type"] == CHECKPOINT_TYPE
        and verify(key, fields, str(checkpoint.get("signature")))
    )


async def latest(conn: AsyncConnection) -> Any:
    query = select(audit_checkpoints).order_by(audit_checkpoints.c.id.desc()).limit(1)
    return (await conn.execute(query)).first()


async def covering(conn: AsyncConnection, audit_id: int) -> tuple[Any, int] | None:
    """The first checkpoint at or after record ``audit_id`` and the record id its predecessor signed."""
    query = (
        select(audit_checkpoints)
        .where(audit_checkpoints.c.audit_id >= audit_id)
        .order_by(audit_checkpoints.c.id)
        .limit(1)
    )
    row = (await conn.execute(query)).first()
    if row is None:
        return None
    return row, await _previous_audit_id(conn, int(row.id))


async def _previous_audit_id(conn: AsyncConnection, checkpoint_id: int) -> int:
    query = (
        select(audit_checkpoints.c.audit_id)
        .where(audit_checkpoints.c.id < checkpoint_id)
        .order_by(audit_checkpoints.c.id.desc())
        .limit(1)
    )
    return int((await conn.execute(query)).scalar() or 0)


async def due(
    conn: AsyncConnection, covered: int, every_records: int, every_minutes: float, at: datetime
) -> bool:
    """``every_records`` records since the last checkpoint, or the oldest of them ``every_minutes`` old."""
    since = select(audit_log.c.id).where(audit_log.c.id > covered).limit(every_records).subquery()
    if int((await conn.execute(select(func.count()).select_from(since))).scalar_one()) >= every_records:
        return True
    oldest = (
        await conn.execute(
            select(audit_log.c.at).where(audit_log.c.id > covered).order_by(audit_log.c.id).limit(1)
        )
    ).scalar()
    return oldest is not None and as_utc(oldest) <= at - timedelta(minutes=every_minutes)


async def create(
    conn: AsyncConnection,
    signer: Signer,
    every_records: int | None = None,
    every_minutes: float | None = None,
) -> dict[str, Any] | None:
    """Sign the head of the chain inside the caller's transaction, if records came since the last
    checkpoint (and, given a schedule, if one is due). Returns the checkpoint, or None.

    The chain since the last checkpoint is verified first: a broken chain is never signed
    (:class:`ChainBroken`)."""
    # The same row lock as audit.append: the head cannot move while it is being signed.
    await conn.execute(update(audit_head).where(audit_head.c.id == 1).values(last_id=audit_head.c.last_id))
    head = (await conn.execute(select(audit_head.c.last_id, audit_head.c.last_hash))).one()
    last = await latest(conn)
    covered = int(last.audit_id) if last is not None else 0
    at = now()
    if int(head.last_id) <= covered:
        return None
    if every_records is not None and not await due(conn, covered, every_records, every_minutes or 0.0, at):
        return None
    await _verify_since(conn, last, str(head.last_hash))
    fields = signed_fields(int(head.last_id), str(head.last_hash), at.isoformat(), signer.key_id, covered)
    result = await conn.execute(
        insert(audit_checkpoints).values(
            at=at,
            audit_id=fields["audit_id"],
            head_hash=fields["head_hash"],
            key_id=signer.key_id,
            signature=signer.sign(fields),
        )
    )
    checkpoint_id = int(result.inserted_primary_key[0]) if result.inserted_primary_key else 0
    row = (await conn.execute(select(audit_checkpoints).where(audit_checkpoints.c.id == checkpoint_id))).one()
    return as_json(row, covered)


async def _verify_since(conn: AsyncConnection, last: Any, head_hash: str) -> None:
    prev = GENESIS
    start = 0
    if last is not None:
        anchor = (await conn.execute(select(audit_log).where(audit_log.c.id == last.audit_id))).first()
        if anchor is None or anchor.hash != last.head_hash:
            raise ChainBroken(int(last.audit_id))
        prev, start = str(last.head_hash), int(last.audit_id)
    rows = await conn.execute(select(audit_log).where(audit_log.c.id > start).order_by(audit_log.c.id))
    for row in rows:
        rec = record(row)
        if rec["prev_hash"] != prev or not holds(rec):
            raise ChainBroken(rec["id"])
        prev = rec["hash"]
    if prev != head_hash:
        raise ChainBroken(start + 1)


async def checkpoint_if_due(
    db: Database, signer: Signer, every_records: int, every_minutes: float
) -> dict[str, Any] | None:
    """The periodic check: a cheap read first, the locking transaction only when a checkpoint is due."""
    async with db.read() as conn:
        last = await latest(conn)
        covered = int(last.audit_id) if last is not None else 0
        if not await due(conn, covered, every_records, every_minutes, now()):
            return None
    async with db.transaction() as conn:
        return await create(conn, signer, every_records, every_minutes)


@dataclass(frozen=True, slots=True)
class Finding:
    record: int  # the first audit record that can no longer be trusted
    message: str


@dataclass
class AuditReport:
    records: int = 0
    last_id: int = 0
    checkpoints: int = 0
    last_checkpoint: dict[str, Any] | None = None
    unsigned: int = 0  # records after the last valid checkpoint
    unsigned_since: datetime | None = None
    findings: list[Finding] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.findings

    def ordered(self) -> list[Finding]:
        return sorted(self.findings, key=lambda f: f.record)


async def verify_log(conn: AsyncConnection, keys: Mapping[str, ed25519.Ed25519PublicKey]) -> AuditReport:
    """Walk the chain against its checkpoints: every record's hash and link, every checkpoint's
    signature, that the chain reaches each checkpoint's signed hash at its record, that no signed record
    is missing, and that the head names the last record.

    Live traffic is no tampering: the checkpoints are read first, then the head, then the records up to
    the head only (on PostgreSQL all in one REPEATABLE READ snapshot). A checkpoint is signed under the
    head's lock, so every checkpoint read names a record at or before the head read after it, and every
    record up to that head was committed with it: records appended meanwhile are simply not looked at."""
    await snapshot(conn)
    report = AuditReport()
    good: dict[int, dict[str, Any]] = {}
    previous = 0
    for row in (await conn.execute(select(audit_checkpoints).order_by(audit_checkpoints.c.id))).all():
        checkpoint = as_json(row, previous)
        previous = int(row.audit_id)
        report.checkpoints += 1
        if checkpoint["key_id"] not in keys:
            report.findings.append(
                Finding(
                    checkpoint["audit_id"],
                    f"checkpoint {row.id} (record {row.audit_id}) is signed with key {row.key_id}, "
                    "which is not a known gateway key",
                )
            )
        elif not signature_holds(checkpoint, keys):
            report.findings.append(
                Finding(
                    checkpoint["audit_id"],
                    f"checkpoint {row.id} (record {row.audit_id}): its signature does not verify; the "
                    "checkpoint was edited or forged, or the one before it deleted",
                )
            )
        else:
            good[checkpoint["audit_id"]] = checkpoint
            report.last_checkpoint = checkpoint

    head_id, head_hash = await read_head(conn)
    prev, broken, recomputed = GENESIS, False, False
    segment_start: int | None = None  # first record after the last checkpoint reached
    segment_at: datetime | None = None
    seen: set[int] = set()
    stream = await conn.stream(select(audit_log).where(audit_log.c.id <= head_id).order_by(audit_log.c.id))
    async for row in stream:
        rec = record(row)
        report.records += 1
        report.last_id = rec["id"]
        if not broken:
            if rec["prev_hash"] != prev or not holds(rec):
                report.findings.append(
                    Finding(
                        rec["id"],
                        f"record {rec['id']} does not verify: it was edited, or the record before it "
                        "deleted or moved (edited, deleted or reordered from there on)",
                    )
                )
                broken = True
            prev = rec["hash"]
        if segment_start is None:
            segment_start, segment_at = rec["id"], as_utc(row.at)
        signed = good.get(rec["id"])
        if signed is not None:
            seen.add(rec["id"])
            if rec["hash"] != signed["head_hash"]:
                span = (
                    f"record {rec['id']} no longer leads"
                    if segment_start == rec["id"]
                    else f"records {segment_start}..{rec['id']} no longer lead"
                )
                where = "before" if recomputed else "among these"
                report.findings.append(
                    Finding(
                        segment_start,
                        f"{span} to the hash that checkpoint {signed['id']} signed for record {rec['id']}: "
                        f"a record {where} was edited or deleted and the chain recomputed",
                    )
                )
                recomputed = True
            segment_start = segment_at = None
    report.unsigned = 0
    if segment_start is not None:
        report.unsigned = int(
            (
                await conn.execute(
                    select(func.count())
                    .select_from(audit_log)
                    .where(audit_log.c.id >= segment_start, audit_log.c.id <= head_id)
                )
            ).scalar_one()
        )
        report.unsigned_since = segment_at

    missing = [c for audit_id, c in good.items() if audit_id not in seen]
    tail = [c for c in missing if c["audit_id"] > report.last_id]
    for checkpoint in missing:
        if checkpoint["audit_id"] < report.last_id:
            report.findings.append(
                Finding(
                    checkpoint["audit_id"],
                    f"record {checkpoint['audit_id']}, signed by checkpoint {checkpoint['id']}, is missing "
                    "(deleted)",
                )
            )
    if tail:
        furthest = max(tail, key=lambda c: int(c["audit_id"]))
        report.findings.append(
            Finding(
                report.last_id + 1,
                f"records after {report.last_id} were cut from the end: checkpoint {furthest['id']} signed "
                f"the chain up to record {furthest['audit_id']}",
            )
        )
    if not broken and not tail and head_hash != prev:
        if head_id > report.last_id:
            message = (
                f"records after {report.last_id} were cut from the end: the head of the chain names "
                f"record {head_id}"
            )
        else:
            message = (
                f"the head of the chain does not match its last record {report.last_id} "
                "(records cut from the end, or the head edited)"
            )
        report.findings.append(Finding(report.last_id + 1, message))
    return report
