"""The audit log is a hash chain: it stays intact under concurrent writers and betrays any edit."""

from __future__ import annotations

import asyncio
import hashlib
import json
import re

from sqlalchemy import delete, insert, select, text, update

from gateway.storage.audit import GENESIS, AuditEntry, append, verify_chain
from gateway.storage.database import Database
from gateway.storage.tables import audit_head, audit_log


def entry(n: int, reason: str | None = None) -> AuditEntry:
    return AuditEntry(
        actor="TAND-HN",
        subject="clerk",
        action="judgments.push",
        outcome="accepted",
        status_code=202,
        message_id=f"00000000-0000-4000-8000-{n:012d}",
        object_ref=f"TAND-HN|{n}/2026/DS-ST|2026-03-01",
        reason=reason,
        data={"n": n, "debtors": ["person:001*******45"]},
    )


async def append_each_in_its_own_transaction(db: Database, entries: list[AuditEntry]) -> None:
    for e in entries:
        async with db.transaction() as conn:
            await append(conn, e)


async def verify(db: Database) -> int | None:
    async with db.read() as conn:
        return await verify_chain(conn)


async def ids(db: Database) -> list[int]:
    async with db.read() as conn:
        return list((await conn.execute(select(audit_log.c.id).order_by(audit_log.c.id))).scalars())


async def test_an_empty_log_verifies(db: Database) -> None:
    assert await verify(db) is None


async def test_entries_appended_one_by_one_form_an_intact_chain(db: Database) -> None:
    await append_each_in_its_own_transaction(db, [entry(n) for n in range(10)])

    assert await verify(db) is None
    async with db.read() as conn:
        rows = (await conn.execute(select(audit_log).order_by(audit_log.c.id))).all()
        head = (await conn.execute(select(audit_head))).one()
    assert len(rows) == 10
    assert rows[0].prev_hash == GENESIS
    assert [r.prev_hash for r in rows[1:]] == [r.hash for r in rows[:-1]]
    assert (head.last_id, head.last_hash) == (rows[-1].id, rows[-1].hash)


async def test_concurrent_writers_never_fork_the_chain(db: Database) -> None:
    async def write(n: int) -> str:
        async with db.transaction() as conn:
            return await append(conn, entry(n))

    hashes = await asyncio.gather(*(write(n) for n in range(30)))

    assert await verify(db) is None
    async with db.read() as conn:
        rows = (await conn.execute(select(audit_log.c.prev_hash, audit_log.c.hash))).all()
    assert len(rows) == 30
    assert len({r.prev_hash for r in rows}) == 30
    assert {r.hash for r in rows} == set(hashes)


async def test_editing_any_row_is_detected_at_that_row(db: Database) -> None:
    await append_each_in_its_own_transaction(db, [entry(n, reason="as pushed") for n in range(5)])

    for row_id in await ids(db):
        async with db.transaction() as conn:
            await conn.execute(text("UPDATE audit_log SET reason = 'edited' WHERE id = :id"), {"id": row_id})
        assert await verify(db) == row_id

        async with db.transaction() as conn:
            await conn.execute(
                text("UPDATE audit_log SET reason = 'as pushed' WHERE id = :id"), {"id": row_id}
            )
        assert await verify(db) is None


async def test_deleting_a_middle_row_is_detected(db: Database) -> None:
    await append_each_in_its_own_transaction(db, [entry(n) for n in range(5)])
    _, second, third, *_ = await ids(db)

    async with db.transaction() as conn:
        await conn.execute(delete(audit_log).where(audit_log.c.id == second))

    assert await verify(db) == third


async def test_deleting_the_newest_row_is_detected(db: Database) -> None:
    await append_each_in_its_own_transaction(db, [entry(n) for n in range(3)])
    *_, newest = await ids(db)

    async with db.transaction() as conn:
        await conn.execute(delete(audit_log).where(audit_log.c.id == newest))

    assert await verify(db) == -1


async def test_personal_ids_in_a_reason_are_stored_masked(db: Database) -> None:
    await append_each_in_its_own_transaction(
        db, [entry(1, reason="debtor 001085012345 already has an open case (079201004321)")]
    )

    async with db.read() as conn:
        stored = (await conn.execute(select(audit_log.c.reason))).scalar_one()
    assert re.search(r"[0-9]{12}", stored) is None
    assert stored == "debtor 001*******45 already has an open case (079*******21)"
    assert await verify(db) is None


async def test_records_of_the_first_format_still_verify_but_only_in_full(db: Database) -> None:
    """Records hashed before links existed (all fields and ``prev_hash`` in one object) stay valid."""
    from datetime import UTC, datetime

    from gateway.storage.audit import holds, link, linkable, record

    at = datetime(2026, 1, 2, 3, 4, 5, 6, tzinfo=UTC)
    fields: dict[str, str | int | None] = {
        "actor": "TAND-HN",
        "action": "judgments.push",
        "outcome": "accepted",
        "subject": None,
    }
    fields |= {"status_code": 202, "message_id": None, "object_ref": None, "reason": None, "data": None}
    old = hashlib.sha256(
        json.dumps(fields | {"at": at.isoformat(), "prev_hash": GENESIS}, sort_keys=True).encode()
    ).hexdigest()
    async with db.transaction() as conn:
        await conn.execute(insert(audit_log).values(**fields, at=at, prev_hash=GENESIS, hash=old))
        await conn.execute(update(audit_head).values(last_id=1, last_hash=old))
        await append(conn, entry(1))
    assert await verify(db) is None
    async with db.read() as conn:
        first = record((await conn.execute(select(audit_log).where(audit_log.c.id == 1))).one())
    assert holds(first) and not linkable(first)
    assert not holds(link(first))
