"""`python run.py audit verify` walks the hash chain and names the first record that was tampered with."""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from typing import Any

import pytest
from sqlalchemy import delete, update
from sqlalchemy.sql.expression import Executable

from gateway.cli import main
from gateway.storage.audit import AuditEntry, append
from gateway.storage.database import Database
from gateway.storage.migrate import upgrade
from gateway.storage.tables import audit_log
from tests.conftest import World


def run(coro: Coroutine[Any, Any, None]) -> None:
    asyncio.run(coro)


async def write_records(url: str, n: int) -> None:
    await upgrade(url)
    db = Database(url)
    try:
        for i in range(n):
            async with db.transaction() as conn:
                await append(conn, AuditEntry(actor="THADS-HN", action="documents.send", outcome=f"r{i}"))
    finally:
        await db.dispose()


async def tamper(url: str, statement: Executable) -> None:
    db = Database(url)
    try:
        async with db.transaction() as conn:
            await conn.execute(statement)
    finally:
        await db.dispose()


@pytest.fixture
def installation(world: World, monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.setenv("GATEWAY_CONFIG_DIR", str(world.settings.config_dir))
    monkeypatch.setenv("GATEWAY_DATABASE_URL", world.settings.database_url)
    run(write_records(world.settings.resolved_database_url, 5))
    return world.settings.resolved_database_url


def test_an_intact_chain_verifies(installation: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["audit", "verify"]) == 0
    assert "intact: 5 record(s)" in capsys.readouterr().out


def test_an_edited_record_is_named(installation: str, capsys: pytest.CaptureFixture[str]) -> None:
    run(tamper(installation, update(audit_log).where(audit_log.c.id == 3).values(outcome="edited")))
    assert main(["audit", "verify"]) == 1
    assert "broken at record 3" in capsys.readouterr().out


def test_a_deleted_record_is_named_by_the_one_after_it(
    installation: str, capsys: pytest.CaptureFixture[str]
) -> None:
    run(tamper(installation, delete(audit_log).where(audit_log.c.id == 2)))
    assert main(["audit", "verify"]) == 1
    assert "broken at record 3" in capsys.readouterr().out


def test_a_cut_tail_is_detected(installation: str, capsys: pytest.CaptureFixture[str]) -> None:
    run(tamper(installation, delete(audit_log).where(audit_log.c.id == 5)))
    assert main(["audit", "verify"]) == 1
    assert "cut from the end" in capsys.readouterr().out
