"""One code path for SQLite (default, embedded) and PostgreSQL (when configured)."""

from __future__ import annotations

import os
import stat
from pathlib import Path
from typing import Any

from sqlalchemy import event, make_url
from sqlalchemy.dialects import registry
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from gateway.security.keys import PRIVATE_FILE, private_dir
from gateway.settings import DatabaseSettings

registry.register("sqlite.inline", "gateway.storage.sqlite_inline", "SQLiteDialect_inline")


def is_sqlite(url: str) -> bool:
    return url.startswith("sqlite")


def private_sqlite_file(url: str) -> None:
    """Create the database file of a SQLite URL readable by its owner only (0600, its directory 0700 if
    new) before SQLite opens it; SQLite gives its -wal and -shm files the database file's mode. A file
    from before, or its -wal/-shm, readable by others is narrowed to 0600."""
    database = make_url(url).database
    if not database or database == ":memory:" or database.startswith("file:"):
        return
    path = Path(database)
    private_dir(path.parent)
    os.close(os.open(path, os.O_RDONLY | os.O_CREAT, PRIVATE_FILE))
    for file in (path, path.with_name(path.name + "-wal"), path.with_name(path.name + "-shm")):
        try:
            mode = file.stat().st_mode
        except FileNotFoundError:
            continue
        if mode & (stat.S_IRWXG | stat.S_IRWXO):
            file.chmod(PRIVATE_FILE)


def sqlite_engine(url: str, **kwargs: Any) -> AsyncEngine:
    """An engine on the gateway's inline SQLite driver (:mod:`gateway.storage.sqlite_inline`), whatever
    driver the URL names (``sqlite://``; ``sqlite+aiosqlite://`` of older configurations runs on it too)."""
    private_sqlite_file(url)
    _scheme, _, rest = url.partition("://")
    # timeout: how long a writer waits for another process's write lock before failing.
    kwargs["connect_args"] = {"timeout": 60, **kwargs.get("connect_args", {})}
    return create_async_engine(f"sqlite+inline://{rest}", **kwargs)


def make_engine(url: str, pool: DatabaseSettings | None = None, **kwargs: Any) -> AsyncEngine:
    """Create the async engine with the settings each backend needs to keep our promises; ``pool`` sizes
    PostgreSQL's connection pool (defaults: :class:`DatabaseSettings`)."""
    if not is_sqlite(url):
        pool = pool or DatabaseSettings()
        return create_async_engine(
            url,
            pool_pre_ping=True,  # a connection the server closed (restart, failover) is replaced, not used
            pool_size=pool.pool_size,
            max_overflow=pool.max_overflow,
            pool_timeout=pool.pool_timeout_seconds,
            pool_recycle=pool.pool_recycle_seconds or -1,
            **kwargs,
        )

    engine = sqlite_engine(url, **kwargs)

    @event.listens_for(engine.sync_engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # Let SQLAlchemy, not the driver, decide when transactions begin (see _on_begin).
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        # WAL: readers never block the writer. synchronous=FULL: a commit survives power loss, which
        # "accepted means stored" needs. Writers from several processes queue, not fail: the inline driver
        # waits for the lock up to connect_args' timeout (see sqlite_inline).
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=FULL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.close()

    @event.listens_for(engine.sync_engine, "begin")
    def _on_begin(conn: Any) -> None:
        # Take the write lock up front: a deferred transaction that reads then writes can fail with
        # SQLITE_BUSY instead of waiting, when another process wrote in between.
        conn.exec_driver_sql("BEGIN IMMEDIATE")

    return engine
