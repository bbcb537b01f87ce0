"""Verifying the audit log while traffic is appended to it is never a false tamper alarm: the verifier
reads the checkpoints, then the head, then the records up to that head (one snapshot on PostgreSQL), so
records and checkpoints written meanwhile are neither "cut from the end" nor a broken link; a real edit
made while traffic flows is still named."""

from __future__ import annotations

import asyncio

from sqlalchemy import select, update

from gateway.storage import checkpoints
from gateway.storage.audit import AuditEntry, append, verify_chain
from gateway.storage.database import Database
from gateway.storage.tables import audit_log
from tests.test_audit_checkpoints import KEYS, SIGNER

RUNS = 50


async def traffic(db: Database, stop: asyncio.Event) -> int:
    """Audit records one after another, a checkpoint every seventh, until told to stop."""
    n = 0
    while not stop.is_set():
        async with db.transaction() as conn:
            await append(
                conn, AuditEntry(actor="THADS-HN", action="messages.read", outcome="read", reason=str(n))
            )
        n += 1
        if n % 7 == 0:
            async with db.transaction() as conn:
                await checkpoints.create(conn, SIGNER)
        await asyncio.sleep(0)
    return n


async def verify_while_appending(db: Database) -> tuple[list[str], int]:
    stop = asyncio.Event()
    writer = asyncio.create_task(traffic(db, stop))
    findings: list[str] = []
    try:
        for _ in range(RUNS):
            async with db.read() as conn:
                report = await checkpoints.verify_log(conn, KEYS)
            findings += [f.message for f in report.findings]
            async with db.read() as conn:
                broken = await verify_chain(conn)
            if broken is not None:
                findings.append(f"verify_chain: {broken}")
            await asyncio.sleep(0)
    finally:
        stop.set()
        written = await writer
    return findings, written


async def test_verify_under_live_traffic_raises_no_false_alarm(db: Database) -> None:
    findings, written = await verify_while_appending(db)
    assert findings == []
    assert written > RUNS / 5, "the traffic ran alongside the verifications"


async def test_an_edit_is_still_found_under_live_traffic(db: Database) -> None:
    async with db.transaction() as conn:
        for i in range(5):
            await append(
                conn, AuditEntry(actor="THADS-HN", action="messages.read", outcome="read", reason=str(i))
            )
        await checkpoints.create(conn, SIGNER)
    async with db.transaction() as conn:
        third = (
            await conn.execute(select(audit_log.c.id).order_by(audit_log.c.id).limit(1).offset(2))
        ).scalar_one()
        await conn.execute(update(audit_log).where(audit_log.c.id == third).values(outcome="edited"))
    findings, _ = await verify_while_appending(db)
    assert findings and all(str(third) in f for f in findings), findings[:3]
