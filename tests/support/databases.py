"""The database a test runs on, chosen in one place.

By default a test's installation gets a SQLite file in its own directory. When ``GATEWAY_DATABASE_URL``
names PostgreSQL (``make test-pg``), every such installation gets a fresh PostgreSQL database on that
server instead, created through the server's ``postgres`` database and dropped ``WITH (FORCE)`` when
the test is done. Tests parametrised over both backends (the ``database_url`` fixture) always reach
PostgreSQL at ``postgresql+asyncpg://postgres@127.0.0.1:5432`` unless the variable names another server.

The variable only selects the backend of the test suite: :func:`take_configured_url` removes it from
the environment, so no test or spawned process falls back on the server's own ``postgres`` database.

When no PostgreSQL server answers, tests that need one are skipped with :data:`UNREACHABLE` in their
reason (conftest counts them in the terminal summary); when the variable asked for PostgreSQL
explicitly, the session stops before any test instead.
"""

from __future__ import annotations

import asyncio
import functools
import os
import time
import uuid
from collections.abc import Awaitable, Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path
from typing import Literal, TypeVar

import asyncpg
import pytest
from sqlalchemy.engine import URL, make_url

T = TypeVar("T")
Backend = Literal["sqlite", "postgres"]

ENV = "GATEWAY_DATABASE_URL"
DEFAULT_SERVER = "postgresql+asyncpg://postgres@127.0.0.1:5432/postgres"
#: Start of every skip reason for a missing server (the terminal summary counts these).
UNREACHABLE = "PostgreSQL not reachable"
#: A test database older than this was left by an interrupted run (a younger one may belong to a
#: session running beside this one).
LEAK_AGE_SECONDS = 3600
PREFIX = "gw_test_"

_configured: str | None = None


def take_configured_url() -> None:
    """Read ``GATEWAY_DATABASE_URL`` once and remove it from this process's environment."""
    global _configured
    if _configured is None:
        _configured = os.environ.pop(ENV, "")


def configured_backend() -> Backend:
    """``postgres`` when the session was asked to run on PostgreSQL, else ``sqlite``."""
    return "postgres" if (_configured or "").startswith("postgresql") else "sqlite"


def _server() -> URL:
    url = make_url((_configured or "") if configured_backend() == "postgres" else DEFAULT_SERVER)
    return url.set(drivername="postgresql+asyncpg")


def server_description() -> str:
    url = _server()
    return f"{url.host or 'localhost'}:{url.port or 5432}"


def admin_dsn() -> str:
    """asyncpg DSN of the server's maintenance database (where databases are created and dropped)."""
    return _server().set(drivername="postgresql", database="postgres").render_as_string(hide_password=False)


def pg_url(name: str) -> str:
    """The gateway's URL for database ``name`` on the configured server."""
    return _server().set(database=name).render_as_string(hide_password=False)


def run_sync(make: Callable[[], Awaitable[T]]) -> T:
    """Run a coroutine to completion from sync or async code alike (on a loop of its own thread)."""

    async def main() -> T:
        return await make()

    with ThreadPoolExecutor(1) as pool:
        return pool.submit(asyncio.run, main()).result()


@functools.cache
def unreachable_reason() -> str | None:
    """Why no PostgreSQL server answers (asked once per session), or None when one does."""

    async def probe() -> None:
        conn = await asyncpg.connect(admin_dsn(), timeout=5)
        try:
            await conn.execute("SELECT 1")
            await _drop_leaked(conn)
        finally:
            await conn.close()

    try:
        run_sync(probe)
    except (OSError, TimeoutError, asyncpg.PostgresError) as exc:
        return f"{UNREACHABLE} at {server_description()} ({type(exc).__name__}: {exc})"
    return None


def require_postgres() -> None:
    """Skip the calling test loudly when no PostgreSQL server answers."""
    reason = unreachable_reason()
    if reason is not None:
        pytest.skip(f"{reason}; start it (make services) to run this test")


def _new_name() -> str:
    # t + creation time, like broker namespaces: an old one can be told from one in use next door.
    return f"{PREFIX}{int(time.time()):08x}{uuid.uuid4().hex[:8]}"


async def _drop_leaked(conn: asyncpg.Connection) -> None:
    names = await conn.fetch("SELECT datname FROM pg_database WHERE datname LIKE $1", PREFIX + "%")
    now = time.time()
    for row in names:
        stamp = row["datname"][len(PREFIX) : len(PREFIX) + 8]
        try:
            created = int(stamp, 16)
        except ValueError:
            continue
        if now - created > LEAK_AGE_SECONDS:
            await conn.execute(f'DROP DATABASE IF EXISTS "{row["datname"]}" WITH (FORCE)')


async def create_pg_database() -> str:
    """A new, empty database on the server; returns its name."""
    name = _new_name()
    conn = await asyncpg.connect(admin_dsn())
    try:
        await conn.execute(f'CREATE DATABASE "{name}"')
    finally:
        await conn.close()
    return name


async def drop_pg_database(name: str) -> None:
    conn = await asyncpg.connect(admin_dsn())
    try:
        await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await conn.close()


@contextmanager
def scratch_database(home: Path, backend: Backend | None = None) -> Iterator[str]:
    """The URL of an empty database for an installation in ``home``, gone afterwards.

    ``backend`` forces one; by default it is the session's (:func:`configured_backend`). A PostgreSQL
    database is created on entry (the test is skipped when no server answers) and dropped on exit, even
    while processes of the installation are still connected to it."""
    if (backend or configured_backend()) == "sqlite":
        yield f"sqlite+aiosqlite:///{home}/gateway.db"
        return
    require_postgres()
    name = run_sync(create_pg_database)
    try:
        yield pg_url(name)
    finally:
        run_sync(lambda: drop_pg_database(name))
