"""Group commit on SQLite: concurrent write transactions share one commit, yet each caller sees exactly its
own transaction's outcome — a failing block is rolled back alone, nobody leaves its block before its writes
are durable, and a failed commit fails every member of the group."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from sqlalchemy import event, text
from sqlalchemy.ext.asyncio import AsyncConnection

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


@contextmanager
def commits_refused(db: Database) -> Iterator[None]:
    """Every commit fails (a full disk, say) inside the block."""

    def refuse(_conn: object) -> None:
        raise RuntimeError("disk full")

    event.listen(db.writer.sync_engine, "commit", refuse)
    try:
        yield
    finally:
        event.remove(db.writer.sync_engine, "commit", refuse)


async def block_held_open(db: Database) -> tuple[asyncio.Task[None], asyncio.Event]:
    """A transaction block that has written k=1 and stays open until the returned event is set."""
    entered = asyncio.Event()
    release = asyncio.Event()

    async def slow() -> None:
        async with db.transaction() as conn:
            await conn.execute(text("INSERT INTO t (k) VALUES (1)"))
            entered.set()
            await release.wait()

    first = asyncio.create_task(slow())
    await entered.wait()
    return first, release


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
    async def write(k: int) -> None:
        async with db.transaction() as conn:
            await conn.execute(text("INSERT INTO t (k) VALUES (:k)"), {"k": k})

    with commits_refused(db):
        results = await asyncio.gather(*(write(k) for k in range(10)), return_exceptions=True)
    assert all(isinstance(r, RuntimeError) for r in results), results
    assert await rows(db) == []
    async with db.transaction() as conn:  # and the next group works
        await conn.execute(text("INSERT INTO t (k) VALUES (1)"))
    assert await rows(db) == [1]


async def test_a_caller_cancelled_while_queued_does_not_strand_the_group(db: Database) -> None:
    first, release = await block_held_open(db)

    async def queued() -> None:
        async with db.transaction() as conn:
            await conn.execute(text("INSERT INTO t (k) VALUES (2)"))

    second = asyncio.create_task(queued())
    await asyncio.sleep(0.05)
    second.cancel()  # waiting for the lock: the first must still get its commit
    release.set()
    await asyncio.wait_for(first, 10)
    assert await rows(db) == [1]


# --- run(body): the bodies of a group run back to back in the group's own task --------------------------


def inserting(k: int, fail: bool = False) -> Callable[[AsyncConnection], Awaitable[int]]:
    async def body(conn: AsyncConnection) -> int:
        await conn.execute(text("INSERT INTO t (k) VALUES (:k)"), {"k": k})
        if fail:
            raise ValueError(k)
        return k

    return body


async def test_run_bodies_share_commits_return_their_results_and_are_durable_on_return(db: Database) -> None:
    commits = count_commits(db)

    async def write(k: int) -> tuple[int, list[int]]:
        result = await db.write(inserting(k))
        return result, await rows(db)

    seen = await asyncio.gather(*(write(k) for k in range(100)))
    assert [result for result, _ in seen] == list(range(100))
    assert all(k in after for k, after in seen)  # durable before write() returned
    assert await rows(db) == list(range(100))
    assert len(commits) < 100


async def test_a_failing_run_body_is_rolled_back_alone(db: Database) -> None:
    results = await asyncio.gather(
        *(db.write(inserting(k, fail=k % 3 == 0)) for k in range(30)), return_exceptions=True
    )
    assert [k for k, r in enumerate(results) if isinstance(r, ValueError)] == list(range(0, 30, 3))
    assert await rows(db) == [k for k in range(30) if k % 3]


async def test_run_and_transaction_blocks_mix_in_one_group(db: Database) -> None:
    async def block(k: int) -> int:
        async with db.transaction() as conn:
            await conn.execute(text("INSERT INTO t (k) VALUES (:k)"), {"k": k})
        return k

    work = [db.write(inserting(k)) if k % 2 else block(k) for k in range(60)]
    assert await asyncio.gather(*work) == list(range(60))
    assert await rows(db) == list(range(60))


async def test_a_failed_commit_fails_every_run_body(db: Database) -> None:
    with commits_refused(db):
        results = await asyncio.gather(*(db.write(inserting(k)) for k in range(10)), return_exceptions=True)
    assert all(isinstance(r, RuntimeError) for r in results), results
    assert await rows(db) == []
    assert await db.write(inserting(1)) == 1  # and the next group works
    assert await rows(db) == [1]


async def test_a_run_caller_cancelled_before_its_body_started_leaves_nothing(db: Database) -> None:
    first, release = await block_held_open(db)
    second = asyncio.create_task(db.write(inserting(2)))
    await asyncio.sleep(0.05)
    second.cancel()  # queued behind the open block
    release.set()
    await asyncio.wait_for(first, 10)
    assert await db.write(inserting(3)) == 3
    assert await rows(db) == [1, 3]
