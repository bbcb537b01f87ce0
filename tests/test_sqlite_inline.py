"""The inline SQLite driver (gateway/storage/sqlite_inline.py): statements run on the event loop, but a wait
for another process's write lock never blocks the loop, a lock held too long fails cleanly, a reader is not
held up by a writer, and a caller cancelled while waiting leaves a connection that still works."""

from __future__ import annotations

import asyncio
import sqlite3
import threading
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from sqlalchemy import text
from sqlalchemy.exc import OperationalError

from gateway.storage.database import Database
from gateway.storage.engine import make_engine


@pytest.fixture
async def db(tmp_path: Path) -> AsyncIterator[Database]:
    database = Database(f"sqlite+aiosqlite:///{tmp_path}/i.db")
    async with database.writer.begin() as conn:
        await conn.execute(text("CREATE TABLE t (k INTEGER PRIMARY KEY)"))
    yield database
    await database.dispose()


@contextmanager
def lock_held_elsewhere(path: Path, seconds: float) -> Iterator[threading.Event]:
    """Another connection (as another process would) takes the write lock and keeps it for ``seconds``."""
    taken = threading.Event()

    def hold() -> None:
        other = sqlite3.connect(path, isolation_level=None)
        other.execute("BEGIN IMMEDIATE")
        other.execute("INSERT INTO t (k) VALUES (-1)")
        taken.set()
        time.sleep(seconds)
        other.execute("COMMIT")
        other.close()

    thread = threading.Thread(target=hold)
    thread.start()
    taken.wait(5)
    try:
        yield taken
    finally:
        thread.join()


async def ticks_while(awaitable: asyncio.Future[object] | asyncio.Task[object]) -> int:
    """How often a 10 ms ticker ran on the loop until ``awaitable`` finished."""
    count = 0
    while not awaitable.done():
        await asyncio.sleep(0.01)
        count += 1
    return count


async def insert(db: Database, k: int) -> None:
    async with db.transaction() as conn:
        await conn.execute(text("INSERT INTO t (k) VALUES (:k)"), {"k": k})


async def keys(db: Database) -> list[int]:
    async with db.read() as conn:
        return [r.k for r in await conn.execute(text("SELECT k FROM t ORDER BY k"))]


async def test_waiting_for_another_writer_does_not_block_the_loop(db: Database, tmp_path: Path) -> None:
    with lock_held_elsewhere(tmp_path / "i.db", 0.6):
        started = time.monotonic()
        task = asyncio.create_task(insert(db, 1))
        ticks = await ticks_while(task)
        await task
    assert time.monotonic() - started >= 0.5  # it did wait for the lock
    assert ticks >= 20  # and the loop went on meanwhile (60 possible)
    assert await keys(db) == [-1, 1]


async def test_a_reader_is_not_held_up_by_a_writer(db: Database, tmp_path: Path) -> None:
    await insert(db, 1)
    with lock_held_elsewhere(tmp_path / "i.db", 1.0):
        started = time.monotonic()
        assert await keys(db) == [1]  # the other writer's row is not committed yet
        assert time.monotonic() - started < 0.5


async def test_a_lock_held_longer_than_the_timeout_fails_cleanly(tmp_path: Path) -> None:
    path = tmp_path / "i.db"
    engine = make_engine(f"sqlite+aiosqlite:///{path}", connect_args={"timeout": 0.3})
    async with engine.begin() as conn:
        await conn.execute(text("CREATE TABLE t (k INTEGER PRIMARY KEY)"))
    with lock_held_elsewhere(path, 1.5):
        started = time.monotonic()
        with pytest.raises(OperationalError, match="locked"):
            async with engine.begin() as conn:
                await conn.execute(text("INSERT INTO t (k) VALUES (1)"))
        assert 0.25 <= time.monotonic() - started < 1.4
    async with engine.begin() as conn:  # the pool's connections still work
        await conn.execute(text("INSERT INTO t (k) VALUES (2)"))
    async with engine.connect() as conn:
        assert [r.k for r in await conn.execute(text("SELECT k FROM t ORDER BY k"))] == [-1, 2]
    await engine.dispose()


async def test_a_caller_cancelled_while_waiting_leaves_nothing_half_done(
    db: Database, tmp_path: Path
) -> None:
    with lock_held_elsewhere(tmp_path / "i.db", 0.5):
        task = asyncio.create_task(insert(db, 1))
        await asyncio.sleep(0.1)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
    await insert(db, 2)
    assert await keys(db) == [-1, 2]


async def test_many_concurrent_writers_each_stored_once(db: Database) -> None:
    await asyncio.gather(*(insert(db, k) for k in range(200)))
    assert await keys(db) == list(range(200))


async def test_a_stream_reads_rows_as_asked(db: Database) -> None:
    await asyncio.gather(*(insert(db, k) for k in range(50)))
    async with db.read() as conn:
        result = await conn.stream(text("SELECT k FROM t ORDER BY k"))
        seen = [row.k async for row in result]
    assert seen == list(range(50))
