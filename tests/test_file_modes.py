"""What the gateway keeps to itself is readable by its owner only, from the moment it is created (even
under a umask that would let anyone read): the SQLite database and its -wal/-shm files (0600) and the
directory made for it (0700), private keys made by ``run.py keys``, the demo and the gateway's first start
(0600, their directories 0700). Evidence bundles: tests/test_evidence_minimal.py."""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest

from gateway.cli import main
from gateway.demo import ensure_demo_clients
from gateway.security.signing import Signer
from gateway.settings import load_settings
from gateway.storage.audit import AuditEntry, append
from gateway.storage.database import Database
from gateway.storage.migrate import upgrade


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.fixture(autouse=True)
def careless_umask() -> Iterator[None]:
    """A umask of 0: every mode below is the gateway's own doing."""
    old = os.umask(0)
    try:
        yield
    finally:
        os.umask(old)


async def test_the_sqlite_database_and_its_wal_are_owner_only(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/var/data/gateway.db"
    await upgrade(url)
    db = Database(url)
    try:
        async with db.transaction() as conn:
            await append(conn, AuditEntry(actor="TAND-HN", action="judgments.push", outcome="accepted"))
        async with db.read() as conn:  # the files exist while a connection is open
            file = tmp_path / "var" / "data" / "gateway.db"
            for name in ("gateway.db", "gateway.db-wal", "gateway.db-shm"):
                assert mode(file.with_name(name)) == 0o600, name
    finally:
        await db.dispose()
    assert mode(tmp_path / "var") == 0o700
    assert mode(tmp_path / "var" / "data") == 0o700


async def test_a_database_left_readable_by_others_is_narrowed(tmp_path: Path) -> None:
    file = tmp_path / "gateway.db"
    file.touch(mode=0o644)
    await upgrade(f"sqlite:///{file}")
    assert mode(file) == 0o600


def test_the_configured_database_directory_is_made_owner_only(tmp_path: Path) -> None:
    settings = load_settings(config_dir=tmp_path / "config", database_url="sqlite:///var/gateway.db")
    settings.resolved_database_url  # noqa: B018 - makes the directory
    assert mode(tmp_path / "var") == 0o700


def test_keys_made_by_run_py_keys_are_owner_only(tmp_path: Path) -> None:
    out = tmp_path / "keys" / "mine"
    assert main(["keys", "--out", str(out), "--name", "court"]) == 0
    assert mode(out / "court.key") == 0o600
    assert mode(out) == 0o700 and mode(tmp_path / "keys") == 0o700


def test_a_key_file_written_over_is_narrowed(tmp_path: Path) -> None:
    (tmp_path / "court.key").touch(mode=0o644)
    assert main(["keys", "--out", str(tmp_path), "--name", "court"]) == 0
    assert mode(tmp_path / "court.key") == 0o600


def test_the_signing_key_made_on_first_start_is_owner_only(tmp_path: Path) -> None:
    path = tmp_path / "var" / "keys" / "receipt-signing.pem"
    Signer.from_file(path)
    assert mode(path) == 0o600
    assert mode(path.parent) == 0o700 and mode(tmp_path / "var") == 0o700
    assert [p.name for p in path.parent.iterdir()] == [path.name]


def test_the_demos_keys_are_owner_only(tmp_path: Path) -> None:
    made = ensure_demo_clients(tmp_path / "demo" / "keys", tmp_path / "clients")
    assert made.created
    assert mode(tmp_path / "demo" / "keys") == 0o700
    for client_id in made.created:
        assert mode(tmp_path / "demo" / "keys" / f"{client_id}.key") == 0o600
