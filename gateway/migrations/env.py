"""Alembic environment: runs migrations on the gateway's async engine (SQLite or PostgreSQL)."""

from __future__ import annotations

import asyncio

from alembic import context
from sqlalchemy import text
from sqlalchemy.engine import Connection

from gateway.storage.engine import make_engine
from gateway.storage.tables import metadata

config = context.config
MIGRATION_LOCK = 7_247_001  # PostgreSQL advisory lock id: one migrator at a time


def _run(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=metadata,
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
        # SQLite's DDL is transactional, but Alembic assumes otherwise and commits after each migration:
        # another process starting at the same moment could then slip in between and run the same
        # next migration twice. One transaction for the whole upgrade keeps migrators serialised.
        transactional_ddl=True,
    )
    with context.begin_transaction():
        if connection.dialect.name == "postgresql":
            # Several processes may start at once on a fresh database; the lock lets one migrate.
            connection.execute(text(f"SELECT pg_advisory_xact_lock({MIGRATION_LOCK})"))
        context.run_migrations()


async def _main() -> None:
    # make_engine's SQLite flavour begins with BEGIN IMMEDIATE, which serialises migrators the same way.
    engine = make_engine(config.get_main_option("sqlalchemy.url") or "")
    async with engine.connect() as conn:
        await conn.run_sync(_run)
        await conn.commit()
    await engine.dispose()


asyncio.run(_main())
