"""SQLite for SQLAlchemy's asyncio engine, run on the event loop except where SQLite may wait.

Through aiosqlite every statement crossed to the driver's thread and back, several times (cursor, execute,
fetch, close): measured 550 µs per ``SELECT 1`` on this stack against about 1 µs for the statement itself in
``sqlite3``. An intake is about fifteen statements, serial on SQLite's one writer, so those hand-offs — not
SQLite — set the gateway's ceiling (``BENCHMARKS.md``).

Here the statements run inline: with WAL, a reader never waits for a lock, and a writer holds the write lock
from its ``BEGIN IMMEDIATE`` until its ``COMMIT``, so a statement in between never waits either; it only
costs its own CPU. The calls that can wait are sent to a thread: ``BEGIN IMMEDIATE`` (another process may
hold the write lock; SQLite's busy handler sleeps until it is free), ``COMMIT`` (the fsync that
``synchronous=FULL`` asks for, and a WAL checkpoint now and then), and any statement that writes outside a
transaction.

Waiting for the write lock is done here, not by SQLite's busy handler: that one sleeps 1, 2, 5, 10 … up to
100 ms between tries, so with the api and the worker taking turns on the lock every few milliseconds a
``BEGIN IMMEDIATE`` waited 80–130 ms on average for a lock held for 5 (measured). SQLite's handler is set
to 1 ms, and a call that still finds the lock taken (``SQLITE_BUSY``; never a stale snapshot, which no wait
cures) is tried again from a thread every fraction of a millisecond until the connection's ``timeout``.
A thread call is never abandoned half-way: cancelling the caller waits for the call to finish
before the cancellation goes on, so the connection is not used by two threads at once.

No maintained library offers this: aiosqlite (the driver SQLAlchemy ships a dialect for) is the hand-off
itself. ``tests/test_sqlite_inline.py`` keeps its promises; the whole suite runs on it.
"""

from __future__ import annotations

import asyncio
import re
import sqlite3
import time
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from typing import Any, TypeVar

from sqlalchemy import pool
from sqlalchemy.dialects.sqlite.base import SQLiteExecutionContext
from sqlalchemy.dialects.sqlite.pysqlite import SQLiteDialect_pysqlite
from sqlalchemy.engine import AdaptedConnection
from sqlalchemy.engine.url import URL
from sqlalchemy.util.concurrency import await_, in_greenlet

T = TypeVar("T")

# Statements that may wait for another process's write lock or for the disk.
_WAITS = re.compile(r"^\s*(BEGIN|COMMIT|END|VACUUM|PRAGMA\s+wal_checkpoint)", re.IGNORECASE)
_READS = re.compile(r"^\s*(SELECT|WITH|PRAGMA|EXPLAIN|SAVEPOINT|RELEASE|ROLLBACK)", re.IGNORECASE)


async def _in_thread(call: Callable[[], T]) -> T:
    """Run ``call`` in the loop's executor; a cancelled caller still waits for it to end."""
    future = asyncio.get_running_loop().run_in_executor(None, call)
    try:
        return await asyncio.shield(future)
    except asyncio.CancelledError:
        while not future.done():
            try:
                await asyncio.shield(future)
            except asyncio.CancelledError:
                continue
            except BaseException:
                break
        raise


async def _now(value: T) -> T:
    return value


def _inline(value: T) -> T:
    # SQLAlchemy's AsyncConnection insists that a statement awaited something (else it takes the driver for a
    # synchronous one by mistake): hand the result over through one await that never suspends.
    return await_(_now(value)) if in_greenlet() else value


#: SQLite's own busy handler: one short sleep, then the call comes back to :func:`_patiently`.
_SQLITE_BUSY_MS = 1
_FIRST_PAUSE, _LONGEST_PAUSE = 0.0002, 0.002


def _locked(exc: BaseException) -> bool:
    return isinstance(exc, sqlite3.OperationalError) and getattr(exc, "sqlite_errorcode", None) == 5


def _patiently(call: Callable[[], T], patience: float) -> Callable[[], T]:
    """``call``, tried again while another connection holds the lock, for up to ``patience`` seconds."""

    def run() -> T:
        deadline = time.monotonic() + patience
        pause = _FIRST_PAUSE
        while True:
            try:
                return call()
            except sqlite3.OperationalError as exc:
                if not _locked(exc) or time.monotonic() >= deadline:
                    raise
            time.sleep(pause)
            pause = min(pause * 2, _LONGEST_PAUSE)

    return run


def _off_loop(call: Callable[[], T]) -> T:
    # Inside SQLAlchemy's greenlet (every AsyncEngine call): wait on the loop without blocking it. Outside
    # one (a pool finaliser at shutdown, say) there is no loop to protect: run it here.
    if in_greenlet():
        return await_(_in_thread(call))
    return call()


class _Cursor:
    """A DBAPI cursor over ``sqlite3``'s, deciding per statement where it runs. Rows are read when the
    statement runs, as the other asyncio drivers do: an unfinished statement would hold its read snapshot
    (and hold back WAL checkpoints) until someone stepped it to the end."""

    __slots__ = ("_conn", "_cursor", "_rows")

    server_side = False

    def __init__(self, conn: InlineConnection) -> None:
        self._conn = conn
        self._cursor = conn._connection.cursor()
        self._rows: deque[Any] = deque()

    def _must_wait_off_loop(self, operation: str) -> bool:
        if _WAITS.match(operation):
            return True
        # A write outside a transaction takes the write lock itself: it may wait, and it commits (fsync).
        return not self._conn._connection.in_transaction and not _READS.match(operation)

    def _run(self, call: Callable[[], Any], operation: str) -> Any:
        patient = _patiently(call, self._conn.patience)
        if self._must_wait_off_loop(operation):
            result = _off_loop(patient)
        else:
            try:
                result = _inline(call())
            except sqlite3.OperationalError as exc:
                if not _locked(exc):
                    raise
                result = _off_loop(patient)  # rare for a read in WAL mode (a checkpoint restarting the log)
        if not self.server_side and self._cursor.description:
            self._rows = deque(self._cursor.fetchall())
        return result

    def execute(self, operation: str, parameters: Sequence[Any] | dict[str, Any] = ()) -> Any:
        return self._run(lambda: self._cursor.execute(operation, parameters), operation)

    def executemany(self, operation: str, seq_of_parameters: Any) -> Any:
        return self._run(lambda: self._cursor.executemany(operation, seq_of_parameters), operation)

    @property
    def description(self) -> Any:
        return self._cursor.description

    @property
    def rowcount(self) -> int:
        return self._cursor.rowcount

    @property
    def lastrowid(self) -> int | None:
        return self._cursor.lastrowid

    @property
    def arraysize(self) -> int:
        return self._cursor.arraysize

    @arraysize.setter
    def arraysize(self, value: int) -> None:
        self._cursor.arraysize = value

    def fetchone(self) -> Any:
        return self._rows.popleft() if self._rows else None

    def fetchmany(self, size: int | None = None) -> list[Any]:
        count = min(self._cursor.arraysize if size is None else size, len(self._rows))
        return [self._rows.popleft() for _ in range(count)]

    def fetchall(self) -> list[Any]:
        rows = list(self._rows)
        self._rows.clear()
        return rows

    def __iter__(self) -> Iterator[Any]:
        while self._rows:
            yield self._rows.popleft()

    def setinputsizes(self, *sizes: Any) -> None:
        pass

    async def _async_soft_close(self) -> None:
        # Called by AsyncConnection.execute: the rows are already read, the statement is done.
        pass

    def close(self) -> None:
        self._rows.clear()
        self._cursor.close()


class _ServerSideCursor(_Cursor):
    """For ``AsyncConnection.stream``: rows are stepped from SQLite as they are asked for."""

    __slots__ = ()
    server_side = True

    def fetchone(self) -> Any:
        return self._cursor.fetchone()

    def fetchmany(self, size: int | None = None) -> list[Any]:
        return self._cursor.fetchmany(self._cursor.arraysize if size is None else size)

    def fetchall(self) -> list[Any]:
        return self._cursor.fetchall()

    def __iter__(self) -> Iterator[Any]:
        return iter(self._cursor)


class InlineConnection(AdaptedConnection):
    __slots__ = ("dbapi", "patience")

    _connection: sqlite3.Connection  # type: ignore[assignment]

    def __init__(self, dbapi: Any, connection: sqlite3.Connection, patience: float) -> None:
        self.dbapi = dbapi
        self._connection = connection
        self.patience = patience  # seconds a call waits for another connection's lock before failing

    def cursor(self, server_side: bool = False) -> _Cursor:
        return _ServerSideCursor(self) if server_side else _Cursor(self)

    def execute(self, operation: str, parameters: Sequence[Any] = ()) -> _Cursor:
        cursor = self.cursor()
        cursor.execute(operation, parameters)
        return cursor

    @property
    def isolation_level(self) -> str | None:
        return self._connection.isolation_level

    @isolation_level.setter
    def isolation_level(self, value: str | None) -> None:
        self._connection.isolation_level = value  # type: ignore[assignment]  # sqlite3 checks it

    def create_function(self, *args: Any, **kwargs: Any) -> None:
        self._connection.create_function(*args, **kwargs)

    def commit(self) -> None:
        if self._connection.in_transaction:
            _off_loop(_patiently(self._connection.commit, self.patience))

    def rollback(self) -> None:
        self._connection.rollback()

    def close(self) -> None:
        self._connection.close()


class _DBAPI:
    """``sqlite3`` as the dialect sees it, with :class:`InlineConnection` from ``connect``."""

    paramstyle = "qmark"

    def __init__(self) -> None:
        for name in (
            "DatabaseError",
            "DataError",
            "Error",
            "IntegrityError",
            "InterfaceError",
            "InternalError",
            "NotSupportedError",
            "OperationalError",
            "ProgrammingError",
            "Warning",
            "sqlite_version",
            "sqlite_version_info",
            "version",
            "version_info",
            "PARSE_COLNAMES",
            "PARSE_DECLTYPES",
            "Binary",
        ):
            if hasattr(sqlite3, name):
                setattr(self, name, getattr(sqlite3, name))

    def connect(self, *args: Any, **kwargs: Any) -> InlineConnection:
        # Commits run in the executor's threads, one at a time per connection.
        kwargs["check_same_thread"] = False
        patience = float(kwargs.pop("timeout", 5.0))  # sqlite3's own default
        kwargs["timeout"] = _SQLITE_BUSY_MS / 1000
        connection = _off_loop(lambda: sqlite3.connect(*args, **kwargs))
        return InlineConnection(self, connection, patience)


class SQLiteExecutionContext_inline(SQLiteExecutionContext):
    def create_server_side_cursor(self) -> Any:
        return self._dbapi_connection.cursor(server_side=True)


class SQLiteDialect_inline(SQLiteDialect_pysqlite):
    driver = "inline"
    is_async = True
    supports_statement_cache = True
    supports_server_side_cursors = True
    execution_ctx_cls = SQLiteExecutionContext_inline

    @classmethod
    def import_dbapi(cls) -> Any:
        return _DBAPI()

    @classmethod
    def get_pool_class(cls, url: URL) -> type[pool.Pool]:
        if cls._is_url_file_db(url):
            return pool.AsyncAdaptedQueuePool
        return pool.StaticPool

    def get_driver_connection(self, connection: Any) -> Any:
        return connection._connection


dialect = SQLiteDialect_inline
