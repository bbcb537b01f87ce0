"""The database handle: a writer engine and a reader engine (the same one on PostgreSQL)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import TypeVar

from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from gateway.settings import DatabaseSettings
from gateway.storage.engine import is_sqlite, make_engine, sqlite_engine
from gateway.storage.group_commit import GroupCommit

T = TypeVar("T")


class Database:
    def __init__(
        self, url: str, pool: DatabaseSettings | None = None, group_commit: bool | None = None
    ) -> None:
        """``pool``: PostgreSQL's connection pool of this process (the ``[database]`` settings).
        ``group_commit``: write transactions arriving together share one commit (default: on SQLite, whose
        single writer and fsync per commit it is for; PostgreSQL runs concurrent writers itself)."""
        self.url = url
        self.writer: AsyncEngine = make_engine(url, pool)
        use_group = is_sqlite(url) if group_commit is None else group_commit
        self._group: GroupCommit | None = GroupCommit(self.writer) if use_group else None
        # SQLite: reads skip BEGIN IMMEDIATE so they never wait behind writers (WAL gives them a snapshot).
        self.reader: AsyncEngine = sqlite_engine(url) if is_sqlite(url) else self.writer

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[AsyncConnection]:
        """A write transaction: committed when the block ends (the block's writes alone are rolled back if
        it raises); the block does not end before its writes are durable."""
        if self._group is not None:
            async with self._group.transaction() as conn:
                yield conn
            return
        async with self.writer.begin() as conn:
            yield conn

    async def write(self, body: Callable[[AsyncConnection], Awaitable[T]]) -> T:
        """``await body(conn)`` in a write transaction; its result once durable. The same promise as
        :meth:`transaction`, for a body that only talks to the database: on SQLite the bodies that arrive
        together run back to back in one task, so the write lock is not held while the loop does other
        work (:mod:`gateway.storage.group_commit`)."""
        if self._group is not None:
            return await self._group.run(body)
        async with self.writer.begin() as conn:
            return await body(conn)

    @asynccontextmanager
    async def read(self) -> AsyncIterator[AsyncConnection]:
        async with self.reader.connect() as conn:
            yield conn

    async def dispose(self) -> None:
        await self.writer.dispose()
        if self.reader is not self.writer:
            await self.reader.dispose()
