"""PostgreSQL's connection pool is sized by the ``[database]`` settings (SQLite has no pool to size)."""

from __future__ import annotations

from pathlib import Path

import pytest

from gateway.settings import DatabaseSettings, Settings
from gateway.storage.database import Database

# Never connected to: building the engine opens nothing.
URL = "postgresql+asyncpg://gateway@127.0.0.1:9/gateway"


async def test_the_pool_follows_the_database_settings() -> None:
    pool_settings = DatabaseSettings(
        pool_size=3, max_overflow=2, pool_timeout_seconds=5, pool_recycle_seconds=600
    )
    db = Database(URL, pool_settings)
    try:
        pool = db.writer.pool
        assert db.reader is db.writer
        assert (pool.size(), pool._max_overflow, pool._timeout, pool._recycle) == (3, 2, 5, 600)  # type: ignore[attr-defined]
    finally:
        await db.dispose()


async def test_recycle_zero_keeps_connections_and_defaults_are_ten_plus_ten() -> None:
    db = Database(URL, DatabaseSettings(pool_recycle_seconds=0))
    try:
        pool = db.writer.pool
        assert (pool.size(), pool._max_overflow, pool._recycle) == (10, 10, -1)  # type: ignore[attr-defined]
    finally:
        await db.dispose()


def test_pool_settings_come_from_the_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GATEWAY_DATABASE__POOL_SIZE", "4")
    monkeypatch.setenv("GATEWAY_DATABASE__POOL_TIMEOUT_SECONDS", "2.5")
    settings = Settings(config_dir=tmp_path)
    assert settings.database.pool_size == 4 and settings.database.pool_timeout_seconds == 2.5
    assert settings.database.max_overflow == 10
