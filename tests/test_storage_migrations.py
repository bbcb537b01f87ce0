"""Migrations build exactly the schema the code declares, on SQLite and PostgreSQL alike."""

from __future__ import annotations

import asyncio
import json
import sys
from collections.abc import AsyncIterator
from typing import Any

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import select, text
from sqlalchemy.engine import Connection

from gateway.storage.audit import GENESIS
from gateway.storage.database import Database
from gateway.storage.migrate import upgrade
from gateway.storage.tables import audit_head, metadata
from tests.conftest import ROOT


@pytest.fixture
async def db(database_url: str) -> AsyncIterator[Database]:
    database = Database(database_url)
    yield database
    await database.dispose()


def schema_diff(conn: Connection) -> list[Any]:
    context = MigrationContext.configure(conn, opts={"compare_type": True})
    return list(compare_metadata(context, metadata))


async def current_revisions(db: Database) -> list[str]:
    async with db.read() as conn:
        return list((await conn.execute(text("SELECT version_num FROM alembic_version"))).scalars())


async def test_the_comparison_sees_a_missing_schema(db: Database) -> None:
    async with db.read() as conn:
        diff = await conn.run_sync(schema_diff)

    assert {d[1].name for d in diff if d[0] == "add_table"} == set(metadata.tables)


async def test_upgraded_schema_matches_the_declared_tables(database_url: str, db: Database) -> None:
    await upgrade(database_url)

    async with db.read() as conn:
        assert await conn.run_sync(schema_diff) == []


async def test_upgrading_twice_changes_nothing(database_url: str, db: Database) -> None:
    await upgrade(database_url)
    first = await current_revisions(db)

    await upgrade(database_url)

    assert await current_revisions(db) == first
    async with db.read() as conn:
        assert await conn.run_sync(schema_diff) == []
        heads = (await conn.execute(select(audit_head))).all()
    assert len(heads) == 1


async def upgrade_in_another_process(url: str) -> tuple[int | None, str]:
    """What each gateway process does at start-up, run as a separate process."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        "import sys; from gateway.storage.migrate import upgrade_sync; upgrade_sync(sys.argv[1])",
        url,
        cwd=ROOT,
        stderr=asyncio.subprocess.PIPE,
    )
    _, err = await proc.communicate()
    return proc.returncode, err.decode()


async def test_processes_starting_together_on_a_fresh_database_all_succeed(
    database_url: str, db: Database
) -> None:
    outcomes = await asyncio.gather(*(upgrade_in_another_process(database_url) for _ in range(3)))

    assert [code for code, _ in outcomes] == [0, 0, 0], outcomes
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


async def test_concurrent_upgrades_in_one_process(database_url: str) -> None:
    # api and worker may share a process (tests, embedding): Alembic's global context must not clash.
    await asyncio.wait_for(asyncio.gather(upgrade(database_url), upgrade(database_url)), timeout=60)


async def test_the_person_index_is_filled_for_audit_records_written_before_it(
    database_url: str, db: Database
) -> None:
    person, debtor = "a" * 64, "b" * 64
    await upgrade(database_url, "0007")
    rows = [
        json.dumps({"message_type": "notice.citizen", "persons": [person]}),
        json.dumps({"debtor": debtor, "sources": ["land"]}),
        '{"debtor": "001*******45"}',  # a masked ID is no pseudonym
        None,
    ]
    async with db.transaction() as conn:
        for n, data in enumerate(rows):
            await conn.execute(
                text(
                    "INSERT INTO audit_log (at, actor, action, outcome, data, prev_hash, hash) VALUES "
                    "(CURRENT_TIMESTAMP, 'THADS-HN', 'documents.send', 'accepted', :data, :prev, :hash)"
                ),
                {"data": data, "prev": GENESIS, "hash": f"{n:064d}"},
            )
    await upgrade(database_url)
    async with db.read() as conn:
        indexed = (await conn.execute(text("SELECT person_ref FROM audit_persons ORDER BY person_ref"))).all()
    assert [r.person_ref for r in indexed] == [person, debtor]
