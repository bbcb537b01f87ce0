"""Each worker's view of its partners, written to ``partner_health`` for the operators' console.

One row per (partner, worker): the breaker, calls and failures over the last few minutes, p50/p95
latency, calls in flight and the last error (scrubbed). Written every ``interval`` seconds and at once
when a breaker changes state, so a partner that goes down shows red within a moment of its breaker
opening. Several workers each keep their own rows: each judges a partner by what it sees itself.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
from collections.abc import Mapping
from typing import Any

from sqlalchemy import delete
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncConnection

from gateway.connectors.resilience import GuardedConnector, HealthSnapshot
from gateway.storage.database import Database
from gateway.storage.engine import is_sqlite
from gateway.storage.tables import partner_health
from gateway.storage.timestamps import now

log = logging.getLogger(__name__)

INTERVAL_SECONDS = 2.0
_UPDATED = (
    "updated_at",
    "breaker",
    "calls",
    "failures",
    "p50_ms",
    "p95_ms",
    "in_flight",
    "last_error",
    "last_error_at",
)


def worker_id() -> str:
    """``hostname:pid``, cut to the column's width."""
    return f"{socket.gethostname()}:{os.getpid()}"[-64:]


class PartnerHealthWriter:
    def __init__(
        self,
        db: Database,
        guards: Mapping[str, GuardedConnector],
        worker: str | None = None,
        interval_seconds: float = INTERVAL_SECONDS,
    ) -> None:
        self._db = db
        self._guards = guards
        self.worker = worker or worker_id()
        self._interval = interval_seconds
        self._wake = asyncio.Event()
        for guard in guards.values():
            guard.on_breaker_change = self._breaker_changed

    def _breaker_changed(self, _partner: str) -> None:
        self._wake.set()

    async def run(self) -> None:
        """Forever: write a snapshot, then wait for the interval or a breaker change."""
        try:
            while True:
                self._wake.clear()
                try:
                    await self.write_once()
                except asyncio.CancelledError:
                    raise
                except Exception:  # the console's view must never stop the worker
                    log.warning("partner health snapshot not written", exc_info=True)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), timeout=self._interval)
        finally:
            await asyncio.shield(self._forget())

    async def write_once(self) -> None:
        snapshots = [guard.health() for guard in self._guards.values()]
        if not snapshots:
            return
        at = now()
        rows = [_row(s, self.worker, at) for s in snapshots]
        async with self._db.transaction() as conn:
            await _upsert(conn, self._db.url, rows)

    async def _forget(self) -> None:
        """A worker that stops has no view any more: its rows go (a killed one's just grow old)."""
        try:
            async with self._db.transaction() as conn:
                await conn.execute(delete(partner_health).where(partner_health.c.worker == self.worker))
        except Exception:
            log.debug("partner health rows not removed", exc_info=True)


def _row(s: HealthSnapshot, worker: str, at: Any) -> dict[str, Any]:
    return {
        "partner": s.partner,
        "worker": worker,
        "updated_at": at,
        "breaker": s.breaker,
        "calls": s.calls,
        "failures": s.failures,
        "p50_ms": s.p50_ms,
        "p95_ms": s.p95_ms,
        "in_flight": s.in_flight,
        "last_error": s.last_error,
        "last_error_at": s.last_error_at,
    }


async def _upsert(conn: AsyncConnection, url: str, rows: list[dict[str, Any]]) -> None:
    dialect: Any = sqlite if is_sqlite(url) else postgresql
    stmt = dialect.insert(partner_health).values(rows)
    columns = {c: stmt.excluded[c] for c in _UPDATED}
    await conn.execute(stmt.on_conflict_do_update(index_elements=["partner", "worker"], set_=columns))
