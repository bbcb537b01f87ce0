"""Migrations build exactly the schema the code declares, on SQLite and PostgreSQL alike."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import inspect, select, text
from sqlalchemy.engine import Connection

from gateway.storage.audit import GENESIS
from gateway.storage.database import Database
from gateway.storage.migrate import upgrade
from gateway.storage.tables import audit_head, metadata


@pytest.fixture
async def db(database_url: str) -> AsyncIterator[Database]:
    database = Database(database_url)
    yield database
    await database.dispose()


def schema_diff(conn: Connection) -> list[Any]:
    context = MigrationContext.configure(conn, opts={"compare_type": True})
    return list(compare_metadata(context, metadata))


def table_names(conn: Connection) -> set[str]:
    return set(inspect(conn).get_table_names())


async def current_revisions(db: Database) -> list[str]:
    async with db.read() as conn:
        return list((await conn.execute(text("SELECT version_num FROM alembic_version"))).scalars())


async def test_upgraded_schema_matches_the_declared_tables(database_url: str, db: Database) -> None:
    await upgrade(database_url)

    async with db.read() as conn:
        assert await conn.run_sync(schema_diff) == []
        assert await conn.run_sync(table_names) >= set(metadata.tables)


async def test_upgrading_twice_changes_nothing(database_url: str, db: Database) -> None:
    await upgrade(database_url)
    first = await current_revisions(db)

    await upgrade(database_url)

    assert await current_revisions(db) == first
    async with db.read() as conn:
        assert await conn.run_sync(schema_diff) == []
        heads = (await conn.execute(select(audit_head))).all()
    assert len(heads) == 1


async def test_concurrent_upgrades_of_a_fresh_database_both_succeed(database_url: str, db: Database) -> None:
    await asyncio.gather(upgrade(database_url), upgrade(database_url))

    assert len(await current_revisions(db)) == 1
    async with db.read() as conn:
        assert await conn.run_sync(schema_diff) == []
        heads = (await conn.execute(select(audit_head))).all()
    assert len(heads) == 1


async def test_audit_chain_starts_at_the_genesis_hash(database_url: str, db: Database) -> None:
    await upgrade(database_url)

    async with db.read() as conn:
        head = (await conn.execute(select(audit_head))).one()

    assert (head.id, head.last_id, head.last_hash) == (1, 0, GENESIS)
