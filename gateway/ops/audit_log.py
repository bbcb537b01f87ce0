"""Reading the audit log as an operator: search by actor, action, subject and time, newest first, paged
by record id; and the chain's verification, run off the caller's event loop within a time bound.

Each page looks at a bounded stretch of the log (:data:`SCAN_WINDOW` records by id), whatever the filter:
a search for something rare costs one window per page, and the page offers to search further back.
"""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from typing import Any, Final

from cryptography.hazmat.primitives.asymmetric import ed25519
from sqlalchemy import ColumnElement, and_, func, or_, select
from sqlalchemy.ext.asyncio import AsyncConnection

from gateway.domain.identifiers import scrub
from gateway.ops.messages import parse_day
from gateway.storage.audit import read_head
from gateway.storage.checkpoints import AuditReport, verify_log
from gateway.storage.database import Database
from gateway.storage.tables import audit_log
from gateway.storage.timestamps import as_utc

PAGE_SIZE: Final = 50
MAX_PAGE_SIZE: Final = 200
#: The most records one page looks at: a search that finds fewer offers to go on further back.
SCAN_WINDOW: Final = 50_000
#: The longest a verification of the chain may run from the console; ``run.py audit verify`` has none.
VERIFY_TIMEOUT_SECONDS: Final = 60.0


@dataclass(frozen=True, slots=True)
class AuditQuery:
    actor: str = ""
    action: str = ""  # exact, or a prefix when it ends with "." or "*" (``ops.`` = every console action)
    subject: str = ""  # the record's subject, message id or object (queue, partner, ...)
    since: date | None = None
    until: date | None = None  # inclusive: the whole day (UTC)
    before: int | None = None  # the page starts below this record id
    size: int = PAGE_SIZE

    @property
    def empty(self) -> bool:
        return not any((self.actor, self.action, self.subject, self.since, self.until))

    def params(self) -> dict[str, str]:
        """The URL parameters of the filter (no cursor)."""
        out = {
            "actor": self.actor,
            "action": self.action,
            "subject": self.subject,
            "from": self.since.isoformat() if self.since else "",
            "to": self.until.isoformat() if self.until else "",
            "size": str(self.size) if self.size != PAGE_SIZE else "",
        }
        return {k: v for k, v in out.items() if v}


def parse_query(params: Mapping[str, str]) -> AuditQuery:
    try:
        before: int | None = int(params.get("before", ""))
    except ValueError:
        before = None
    try:
        size = max(1, min(MAX_PAGE_SIZE, int(params.get("size", ""))))
    except ValueError:
        size = PAGE_SIZE
    return AuditQuery(
        actor=params.get("actor", "").strip()[:64],
        action=params.get("action", "").strip()[:64],
        # Personal IDs are stored masked: searched masked, and never echoed back in clear.
        subject=scrub(params.get("subject", "").strip()[:200]),
        since=parse_day(params.get("from")),
        until=parse_day(params.get("to")),
        before=before if before is not None and before > 0 else None,
        size=size,
    )


def conditions(query: AuditQuery) -> list[ColumnElement[bool]]:
    where: list[ColumnElement[bool]] = []
    if query.actor:
        where.append(audit_log.c.actor == query.actor)
    if query.action:
        if query.action.endswith(("*", ".")):
            where.append(audit_log.c.action.startswith(query.action.rstrip("*"), autoescape=True))
        else:
            where.append(audit_log.c.action == query.action)
    if query.subject:
        where.append(
            or_(
                audit_log.c.subject == query.subject,
                audit_log.c.message_id == query.subject,
                audit_log.c.object_ref == query.subject,
            )
        )
    if query.since:
        where.append(audit_log.c.at >= datetime.combine(query.since, time(), UTC))
    if query.until:
        where.append(audit_log.c.at < datetime.combine(query.until, time(), UTC) + timedelta(days=1))
    return where


@dataclass(frozen=True, slots=True)
class AuditLine:
    id: int
    at: datetime
    actor: str
    action: str
    outcome: str
    subject: str
    status_code: int | None
    message_id: str
    object_ref: str
    reason: str
    detail: str  # the record's data, pretty JSON (masked), "" when none
    hash: str


def _line(row: Any) -> AuditLine:
    detail = ""
    if row.data:
        try:
            detail = json.dumps(json.loads(row.data), indent=2, ensure_ascii=False, sort_keys=True)
        except ValueError:
            detail = row.data
    return AuditLine(
        id=int(row.id),
        at=as_utc(row.at),
        actor=scrub(row.actor or ""),
        action=row.action,
        outcome=row.outcome,
        subject=scrub(row.subject or ""),
        status_code=row.status_code,
        message_id=row.message_id or "",
        object_ref=scrub(row.object_ref or ""),
        reason=scrub(row.reason or ""),
        detail=scrub(detail),
        hash=row.hash,
    )


@dataclass(frozen=True, slots=True)
class AuditPage:
    rows: list[AuditLine]
    #: Where the next page starts (``before=``), None at the start of the log.
    next_before: int | None
    #: The stretch of record ids this page looked at (lowest, highest).
    scanned: tuple[int, int]
    #: The page is short because its window ended, not because the log did: more may match further back.
    window_ended: bool = False
    first_id: int = 0  # the lowest record id in the log
    extra: dict[str, Any] = field(default_factory=dict)


async def search(conn: AsyncConnection, query: AuditQuery, window: int | None = None) -> AuditPage:
    """Newest first, ``query.size`` records below ``query.before``, among at most ``window`` record ids."""
    window = SCAN_WINDOW if window is None else window
    head_id, _ = await read_head(conn)
    top = min(query.before, head_id + 1) if query.before is not None else head_id + 1
    low = max(1, top - window)
    where = [*conditions(query), audit_log.c.id < top, audit_log.c.id >= low]
    stmt = select(audit_log).where(and_(*where)).order_by(audit_log.c.id.desc()).limit(query.size + 1)
    rows = list((await conn.execute(stmt)).all())
    first_id = (await conn.execute(select(func.min(audit_log.c.id)))).scalar() or 0
    if len(rows) > query.size:
        rows = rows[: query.size]
        return AuditPage([_line(r) for r in rows], int(rows[-1].id), (low, top - 1), False, int(first_id))
    more_below = low > first_id
    if more_below and query.since is not None:
        # The log is written in time order: below a record older than ``since`` nothing can match.
        edge = (await conn.execute(select(audit_log.c.at).where(audit_log.c.id == low))).scalar()
        if edge is not None and as_utc(edge) < datetime.combine(query.since, time(), UTC):
            more_below = False
    return AuditPage(
        [_line(r) for r in rows],
        low if more_below else None,
        (low, top - 1),
        window_ended=more_below,
        first_id=int(first_id),
    )


async def latest_of(conn: AsyncConnection, actors: list[str]) -> dict[str, tuple[datetime, str]]:
    """actor -> (time, action) of their latest record, for those of ``actors`` the log names: one index
    seek each (``ix_audit_log_actor_id``)."""
    found: dict[str, tuple[datetime, str]] = {}
    for actor in actors:
        row = (
            await conn.execute(
                select(audit_log.c.at, audit_log.c.action)
                .where(audit_log.c.actor == actor)
                .order_by(audit_log.c.id.desc())
                .limit(1)
            )
        ).first()
        if row is not None:
            found[actor] = (as_utc(row.at), row.action)
    return found


# --- verification ---------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Verification:
    outcome: str  # "intact" | "broken" | "timeout" | "busy" | "error"
    report: AuditReport | None = None
    seconds: float = 0.0
    detail: str = ""


_verifying = threading.Lock()


def _verify_in_thread(url: str, keys: Mapping[str, ed25519.Ed25519PublicKey], timeout: float) -> AuditReport:
    """The whole verification on a loop of this thread, with its own database engine: the hashing of
    every record never runs on the api's event loop, and the bound cancels the walk itself."""

    async def run() -> AuditReport:
        db = Database(url)
        try:
            async with db.read() as conn:
                return await asyncio.wait_for(verify_log(conn, keys), timeout)
        finally:
            await db.dispose()

    return asyncio.run(run())


def _release(walk: asyncio.Future[AuditReport]) -> None:
    if not walk.cancelled():
        walk.exception()  # retrieved here, whether or not a request still waits for it
    _verifying.release()


async def verify(
    url: str, keys: Mapping[str, ed25519.Ed25519PublicKey], limit_seconds: float = VERIFY_TIMEOUT_SECONDS
) -> Verification:
    """:func:`~gateway.storage.checkpoints.verify_log` on a worker thread, one at a time per process,
    given up after ``limit_seconds``."""
    if not _verifying.acquire(blocking=False):
        return Verification("busy", detail="a verification is already running in this process")
    started = datetime.now(UTC)
    walk = asyncio.ensure_future(asyncio.to_thread(_verify_in_thread, url, keys, limit_seconds))
    # The lock is held until the walk itself ends: a request that goes away (and is cancelled) leaves
    # its walk to finish within its bound, and no second one starts beside it meanwhile.
    walk.add_done_callback(_release)
    try:
        report = await asyncio.shield(walk)
    except TimeoutError:
        return Verification(
            "timeout", seconds=limit_seconds, detail=f"not finished within {limit_seconds:g} s"
        )
    except Exception as exc:  # the database went away mid-walk: say so, never a 500
        return Verification("error", detail=scrub(str(exc))[:300])
    seconds = (datetime.now(UTC) - started).total_seconds()
    return Verification("intact" if report.ok else "broken", report, seconds)
