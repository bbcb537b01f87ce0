"""Refusals of unknown callers, counted rather than written one audit record each.

Every refused request used to append its own audit record, before any rate limit could apply, under the
audit chain's lock that intake shares: 1,500 unauthenticated requests in 4 s were 1,500 chained rows.
A caller that is not yet known (no token, a bad one, one already used, a body refused before the token
was checked) is now counted in :data:`~gateway.metrics.UNAUTHENTICATED_REJECTIONS` and in a tally per
route and reason; once per :data:`WINDOW_SECONDS` the tally becomes one audit record per route and
reason (``outcome = "rejected"``, ``data``: count, first and last time). A known client's refusals are
still audited one by one (``gateway.web.middleware``).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime

from aiohttp import web
from sqlalchemy.exc import SQLAlchemyError

from gateway.metrics import UNAUTHENTICATED_REJECTIONS
from gateway.storage.audit import AuditEntry, append
from gateway.storage.database import Database

log = logging.getLogger(__name__)

WINDOW_SECONDS = 60.0


@dataclass(slots=True)
class _Count:
    status: int
    count: int
    first: float
    last: float


class RejectionTally:
    """Anonymous refusals of one api process, by (route, reason), since the last flush."""

    def __init__(self) -> None:
        self._counts: dict[tuple[str, str], _Count] = {}

    def add(
        self, route: str, reason: str, status: int, audited: bool = True, at: float | None = None
    ) -> None:
        """Count one refusal (no I/O); ``audited``: on a route whose refusals the audit log records."""
        UNAUTHENTICATED_REJECTIONS.labels(route, reason).inc()
        if not audited:
            return
        at = time.time() if at is None else at
        counted = self._counts.get((route, reason))
        if counted is None:
            self._counts[(route, reason)] = _Count(status, 1, at, at)
        else:
            counted.count += 1
            counted.last = at

    def entries(self) -> list[AuditEntry]:
        """The tally as audit records (one per route and reason), and a fresh tally."""
        counts, self._counts = self._counts, {}
        return _records(counts)

    async def flush(self, db: Database) -> int:
        """Write the tally to the audit log; how many records. On a database failure the counts are
        kept, to be written with the next window's."""
        counts, self._counts = self._counts, {}
        if not counts:
            return 0
        records = _records(counts)
        try:
            async with db.transaction() as conn:
                for entry in records:
                    await append(conn, entry)
        except SQLAlchemyError:
            log.exception("could not audit %d aggregated rejection record(s)", len(records))
            for key, older in counts.items():
                newer = self._counts.get(key)
                if newer is not None:
                    older.count += newer.count
                    older.last = newer.last
                self._counts[key] = older
            return 0
        return len(records)


def _records(counts: dict[tuple[str, str], _Count]) -> list[AuditEntry]:
    return [
        AuditEntry(
            actor="anonymous",
            action=route,
            outcome="rejected",
            status_code=c.status,
            reason=f"{reason}: {c.count} request(s) refused before the caller was known",
            data={
                "aggregated": True,
                "reason": reason,
                "count": c.count,
                "first": _iso(c.first),
                "last": _iso(c.last),
            },
        )
        for (route, reason), c in sorted(counts.items())
    ]


def _iso(at: float) -> str:
    return datetime.fromtimestamp(at, UTC).isoformat().replace("+00:00", "Z")


REJECTIONS = web.AppKey("rejections", RejectionTally)


@contextlib.asynccontextmanager
async def flushing(app: web.Application, db: Database, window: float = WINDOW_SECONDS) -> AsyncIterator[None]:
    """While the app runs, write its tally every ``window`` seconds, and once more when it stops."""
    tally = app[REJECTIONS]

    async def every_window() -> None:
        while True:
            await asyncio.sleep(window)
            await tally.flush(db)

    task = asyncio.get_running_loop().create_task(every_window())
    try:
        yield
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        await tally.flush(db)
