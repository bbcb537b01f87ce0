"""Schema migrations (Alembic), applied by ``run.py db upgrade`` and at every process start."""

from __future__ import annotations

import asyncio
import threading
from pathlib import Path

from alembic import command
from alembic.config import Config

MIGRATIONS = Path(__file__).resolve().parent.parent / "migrations"


def alembic_config(url: str) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    cfg.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return cfg


_UPGRADE_LOCK = threading.Lock()  # Alembic's `context`/`op` proxies are process-wide


def upgrade_sync(url: str, revision: str = "head") -> None:
    with _UPGRADE_LOCK:
        command.upgrade(alembic_config(url), revision)


async def upgrade(url: str, revision: str = "head") -> None:
    """Bring the database to ``revision``. Alembic's env runs its own event loop, hence the thread."""
    await asyncio.to_thread(upgrade_sync, url, revision)
