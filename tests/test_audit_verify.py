"""`python run.py audit verify` walks the hash chain against its signed checkpoints and names the first
record that was edited, deleted, reordered, cut from the end or rewritten with the chain recomputed."""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import delete, select, update
from sqlalchemy.sql.expression import Executable

from gateway.cli import main
from gateway.security.signing import Signer
from gateway.storage.audit import AuditEntry, append
from gateway.storage.database import Database
from gateway.storage.migrate import upgrade
from gateway.storage.tables import audit_head, audit_log
from tests.conftest import World
from tests.test_audit_checkpoints import recompute_from


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


@pytest.fixture
def signed(world: World, installation: str) -> str:
    """The installation with its signing key and a checkpoint at record 5."""
    Signer.from_file(world.settings.path(world.settings.signing.private_key_file))
    assert main(["audit", "checkpoint"]) == 0
    return installation


async def more_records(url: str, n: int) -> None:
    db = Database(url)
    try:
        for i in range(n):
            async with db.transaction() as conn:
                await append(conn, AuditEntry(actor="THADS-HN", action="messages.read", outcome=f"m{i}"))
    finally:
        await db.dispose()


async def rehash_from(url: str, first_id: int) -> None:
    db = Database(url)
    try:
        await recompute_from(db, first_id, outcome="edited")
    finally:
        await db.dispose()


async def cut_tail_and_fix_head(url: str, from_id: int) -> None:
    db = Database(url)
    try:
        async with db.transaction() as conn:
            await conn.execute(delete(audit_log).where(audit_log.c.id >= from_id))
            last = (await conn.execute(select(audit_log).order_by(audit_log.c.id.desc()).limit(1))).one()
            await conn.execute(update(audit_head).values(last_id=last.id, last_hash=last.hash))
    finally:
        await db.dispose()


def test_a_checkpoint_is_signed_on_demand_and_once(signed: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["audit", "checkpoint"]) == 0
    assert "nothing new: checkpoint 1 already covers record 5" in capsys.readouterr().out
    assert main(["audit", "verify"]) == 0
    out = capsys.readouterr().out
    assert "intact: 5 record(s), 1 checkpoint(s)" in out and "last checkpoint 1: record 5" in out


def test_a_recomputed_chain_is_named(signed: str, capsys: pytest.CaptureFixture[str]) -> None:
    run(more_records(signed, 3))
    assert main(["audit", "checkpoint"]) == 0
    assert "checkpoint 2: record 8, head " in capsys.readouterr().out
    run(rehash_from(signed, 7))
    assert main(["audit", "verify"]) == 1
    out = capsys.readouterr().out
    assert "broken at record 6: records 6..8" in out and "recomputed" in out


def test_records_cut_past_a_checkpoint_are_named(signed: str, capsys: pytest.CaptureFixture[str]) -> None:
    run(cut_tail_and_fix_head(signed, 4))
    capsys.readouterr()
    assert main(["audit", "verify"]) == 1
    out = capsys.readouterr().out
    assert "broken at record 4" in out and "cut from the end" in out and "up to record 5" in out


def test_records_after_the_last_checkpoint_are_reported_unsigned(
    signed: str, capsys: pytest.CaptureFixture[str]
) -> None:
    run(more_records(signed, 2))
    capsys.readouterr()
    assert main(["audit", "verify"]) == 0
    assert "2 record(s) after the last checkpoint" in capsys.readouterr().out


async def client_changes(url: str) -> list[tuple[str, str, str | None]]:
    db = Database(url)
    try:
        async with db.read() as conn:
            query = select(audit_log.c.actor, audit_log.c.action, audit_log.c.object_ref).where(
                audit_log.c.action.like("clients.%")
            )
            return [tuple(r) for r in (await conn.execute(query.order_by(audit_log.c.id))).all()]
    finally:
        await db.dispose()


def test_client_changes_are_audited(
    installation: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("USER", "operator-on-shift")
    assert main(["keys", "--out", str(tmp_path / "keys"), "--name", "TAND-DN"]) == 0
    pub = str(tmp_path / "keys" / "TAND-DN.pub")
    assert main(["clients", "add", "--id", "TAND-DN", "--public-key", pub, "--grant", "judgments.push"]) == 0
    assert main(["clients", "revoke", "--id", "TAND-DN", "--actor", "head-of-it"]) == 0
    assert main(["clients", "list"]) == 0

    assert asyncio.run(client_changes(installation)) == [
        ("operator-on-shift", "clients.add", "TAND-DN"),
        ("head-of-it", "clients.revoke", "TAND-DN"),
    ]
    assert main(["audit", "verify"]) == 0
