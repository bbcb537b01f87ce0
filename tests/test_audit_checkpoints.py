"""Signed checkpoints anchor the audit chain: a recomputed chain, a cut tail or a deleted checkpoint is
found, and several writers never sign conflicting checkpoints."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric import ed25519
from sqlalchemy import delete, select, update

from gateway.security.signing import Signer, public_key_from_jwk, verify
from gateway.settings import AuditSettings
from gateway.storage import checkpoints
from gateway.storage.audit import GENESIS, AuditEntry, append, record, record_digest
from gateway.storage.database import Database
from gateway.storage.tables import audit_checkpoints, audit_head, audit_log
from gateway.worker import checkpoints as worker_checkpoints

SIGNER = Signer(ed25519.Ed25519PrivateKey.generate())
KEYS = {SIGNER.key_id: public_key_from_jwk(SIGNER.jwk)}


async def write(db: Database, n: int, start: int = 0) -> None:
    for i in range(start, start + n):
        async with db.transaction() as conn:
            await append(
                conn, AuditEntry(actor="THADS-HN", action="messages.read", outcome="read", reason=str(i))
            )


async def checkpoint(db: Database, **schedule: Any) -> dict[str, Any] | None:
    async with db.transaction() as conn:
        return await checkpoints.create(conn, SIGNER, **schedule)


async def report(db: Database) -> checkpoints.AuditReport:
    async with db.read() as conn:
        return await checkpoints.verify_log(conn, KEYS)


async def recompute_from(db: Database, first_id: int, **edit: Any) -> None:
    """What someone with write access to the database can do: edit a record, then rehash the chain."""
    async with db.transaction() as conn:
        rows = (await conn.execute(select(audit_log).order_by(audit_log.c.id))).all()
        prev = GENESIS
        for row in rows:
            rec = record(row)
            if rec["id"] >= first_id:
                if rec["id"] == first_id:
                    rec |= edit
                rec["prev_hash"] = prev
                rec["hash"] = record_digest(rec)
                await conn.execute(
                    update(audit_log)
                    .where(audit_log.c.id == rec["id"])
                    .values(
                        prev_hash=rec["prev_hash"], hash=rec["hash"], **edit if rec["id"] == first_id else {}
                    )
                )
            prev = rec["hash"]
        await conn.execute(update(audit_head).values(last_id=rows[-1].id, last_hash=prev))


async def test_a_checkpoint_signs_the_head_once(db: Database) -> None:
    assert await checkpoint(db) is None, "nothing to sign in an empty log"
    await write(db, 5)
    made = await checkpoint(db)
    assert made is not None and made["audit_id"] == 5 and made["previous_audit_id"] == 0
    fields = {name: made[name] for name in checkpoints.SIGNED_FIELDS}
    assert verify(KEYS[SIGNER.key_id], fields, made["signature"])
    assert await checkpoint(db) is None, "idempotent: the head is already signed"
    await write(db, 2, start=5)
    again = await checkpoint(db)
    assert again is not None and again["audit_id"] == 7 and again["previous_audit_id"] == 5

    result = await report(db)
    assert result.ok and result.records == 7 and result.checkpoints == 2 and result.unsigned == 0


async def test_the_schedule_every_n_records_or_m_minutes(db: Database) -> None:
    await write(db, 2)
    assert await checkpoints.checkpoint_if_due(db, SIGNER, every_records=3, every_minutes=60) is None
    await write(db, 1, start=2)
    made = await checkpoints.checkpoint_if_due(db, SIGNER, every_records=3, every_minutes=60)
    assert made is not None and made["audit_id"] == 3
    await write(db, 1, start=3)
    assert await checkpoints.checkpoint_if_due(db, SIGNER, every_records=3, every_minutes=60) is None
    # The oldest record not yet signed is older than the period: due, however few records came.
    late = await checkpoints.checkpoint_if_due(db, SIGNER, every_records=3, every_minutes=1e-6)
    assert late is not None and late["audit_id"] == 4


async def test_concurrent_writers_and_signers_never_conflict(db: Database) -> None:
    async def writer(n: int) -> None:
        async with db.transaction() as conn:
            await append(conn, AuditEntry(actor="TAND-HN", action="judgments.push", outcome=f"r{n}"))

    async def signer() -> None:
        await checkpoint(db)

    await asyncio.gather(*(writer(n) for n in range(20)), *(signer() for _ in range(10)))
    await checkpoint(db)
    async with db.read() as conn:
        signed = list((await conn.execute(select(audit_checkpoints.c.audit_id))).scalars())
    assert len(signed) == len(set(signed)), "one checkpoint per record at most"
    result = await report(db)
    assert result.ok, result.findings
    assert result.last_checkpoint is not None and result.last_checkpoint["audit_id"] == result.last_id


async def test_a_recomputed_chain_is_named_from_the_last_good_checkpoint(db: Database) -> None:
    await write(db, 3)
    await checkpoint(db)
    await write(db, 3, start=3)
    await checkpoint(db)
    await recompute_from(db, 5, outcome="edited")

    result = await report(db)
    first = result.ordered()[0]
    assert first.record == 4 and "records 4..6" in first.message and "recomputed" in first.message


async def test_a_tail_cut_past_a_checkpoint_is_named(db: Database) -> None:
    await write(db, 6)
    await checkpoint(db)
    async with db.transaction() as conn:
        await conn.execute(delete(audit_log).where(audit_log.c.id >= 5))
        four = (await conn.execute(select(audit_log.c.hash).where(audit_log.c.id == 4))).scalar_one()
        await conn.execute(update(audit_head).values(last_id=4, last_hash=four))

    first = (await report(db)).ordered()[0]
    assert first.record == 5 and "cut from the end" in first.message and "record 6" in first.message


async def test_a_deleted_or_forged_checkpoint_is_found(db: Database) -> None:
    for start in (0, 2, 4):
        await write(db, 2, start=start)
        await checkpoint(db)
    async with db.transaction() as conn:
        await conn.execute(delete(audit_checkpoints).where(audit_checkpoints.c.audit_id == 4))
    first = (await report(db)).ordered()[0]
    assert first.record == 6 and "signature does not verify" in first.message

    async with db.transaction() as conn:
        await conn.execute(
            update(audit_checkpoints).where(audit_checkpoints.c.audit_id == 2).values(head_hash="0" * 64)
        )
    first = (await report(db)).ordered()[0]
    assert first.record == 2 and "checkpoint" in first.message


async def test_a_broken_chain_is_never_signed(db: Database) -> None:
    await write(db, 3)
    async with db.transaction() as conn:
        await conn.execute(update(audit_log).where(audit_log.c.id == 2).values(outcome="edited"))
    with pytest.raises(checkpoints.ChainBroken) as broken:
        await checkpoint(db)
    assert broken.value.record_id == 2


async def test_the_worker_task_signs_as_records_come(db: Database) -> None:
    settings = AuditSettings(checkpoint_every_records=2, checkpoint_every_minutes=60)
    task = asyncio.create_task(worker_checkpoints.run(db, SIGNER, settings, poll_seconds=0.02))
    try:
        await write(db, 4)
        for _ in range(200):
            result = await report(db)
            if result.last_checkpoint is not None and result.unsigned < 2:
                break
            await asyncio.sleep(0.02)
        # Never more than N records unsigned once the worker has looked.
        assert result.ok and result.last_checkpoint is not None and result.unsigned < 2
        assert result.last_checkpoint["audit_id"] >= 3
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
