"""Group commit on SQLite: concurrent write transactions share one commit, yet each caller sees exactly its
own transaction's outcome — a failing block is rolled back alone, nobody leaves its block before its writes
are durable, and a failed commit fails every member of the group."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from sqlalchemy import event, text

from gateway.storage.database import Database


@pytest.fixture
async def db(tmp_path: Path) -> AsyncIterator[Database]:
    database = Database(f"sqlite+aiosqlite:///{tmp_path}/g.db")
    async with database.writer.begin() as conn:
        await conn.execute(text("CREATE TABLE t (k INTEGER PRIMARY KEY)"))
    yield database
    await database.dispose()


async def rows(db: Database) -> list[int]:
    async with db.read() as conn:
        return [r.k for r in await conn.execute(text("SELECT k FROM t ORDER BY k"))]


def count_commits(db: Database) -> list[int]:
    commits: list[int] = []
    event.listen(db.writer.sync_engine, "commit", lambda _conn: commits.append(1))
    return commits


async def test_concurrent_transactions_share_commits_and_each_is_durable_when_its_block_ends(
    db: Database,
) -> None:
    commits = count_commits(db)

    async def write(k: int) -> list[int]:
        async with db.transaction() as conn:
            await conn.execute(text("INSERT INTO t (k) VALUES (:k)"), {"k": k})
        return await rows(db)  # a separate reader connection: only committed rows

    seen = await asyncio.gather(*(write(k) for k in range(100)))
    assert await rows(db) == list(range(100))
    assert all(k in after for k, after in enumerate(seen))  # durable before the block ended
    assert len(commits) < 100  # shared


async def test_a_failing_block_is_rolled_back_alone(db: Database) -> None:
    async def write(k: int) -> None:
        async with db.transaction() as conn:
            await conn.execute(text("INSERT INTO t (k) VALUES (:k)"), {"k": k})
            if k % 3 == 0:
                raise ValueError(k)

    results = await asyncio.gather(*(write(k) for k in range(30)), return_exceptions=True)
    assert [k for k, r in enumerate(results) if isinstance(r, ValueError)] == list(range(0, 30, 3))
    assert await rows(db) == [k for k in range(30) if k % 3]


async def test_a_constraint_violation_is_the_callers_alone_and_the_winner_is_visible_after(
    db: Database,
) -> None:
    async def write(k: int) -> str:
        try:
            async with db.transaction() as conn:
                await conn.execute(text("INSERT INTO t (k) VALUES (:k)"), {"k": k})
        except Exception as exc:  # the duplicate of a concurrent push
            assert await rows(db) == [7] or 7 in await rows(db)  # the winner is committed by now
            return type(exc).__name__
        return "ok"

    outcomes = await asyncio.gather(*(write(7) for _ in range(5)), write(8))
    assert sorted(outcomes) == ["IntegrityError"] * 4 + ["ok", "ok"]
    assert await rows(db) == [7, 8]


async def test_a_failed_commit_fails_every_member(db: Database) -> None:
    def refuse(_conn: object) -> None:
        raise RuntimeError("disk full")

    event.listen(db.writer.sync_engine, "commit", refuse)

    async def write(k: int) -> None:
        async with db.transaction() as conn:
            await conn.execute(text("INSERT INTO t (k) VALUES (:k)"), {"k": k})

    results = await asyncio.gather(*(write(k) for k in range(10)), return_exceptions=True)
    assert all(isinstance(r, RuntimeError) for r in results), results
    event.remove(db.writer.sync_engine, "commit", refuse)
    assert await rows(db) == []
    async with db.transaction() as conn:  # and the next group works
        await conn.execute(text("INSERT INTO t (k) VALUES (1)"))
    assert await rows(db) == [1]


async def test_a_caller_cancelled_while_queued_does_not_strand_the_group(db: Database) -> None:
    entered = asyncio.Event()
    release = asyncio.Event()

    async def slow() -> None:
        async with db.transaction() as conn:
            await conn.execute(text("INSERT INTO t (k) VALUES (1)"))
            entered.set()
            await release.wait()

    first = asyncio.create_task(slow())
    await entered.wait()

    async def queued() -> None:
        async with db.transaction() as conn:
            await conn.execute(text("INSERT INTO t (k) VALUES (2)"))

    second = asyncio.create_task(queued())
    await asyncio.sleep(0.05)
    second.cancel()  # waiting for the lock: the first must still get its commit
    release.set()
    await asyncio.wait_for(first, 10)
    assert await rows(db) == [1]
