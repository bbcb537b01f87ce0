"""The deadline watcher: reminds a document's sender before its deadline and escalates after it.

Each document whose type has a deadline (``config/documents.toml``) gets ``due_at`` at intake, for the step
it waits for: its delivery, or its answer when the type is answered (an order by its report). Before
``due_at`` the sender gets a ``reminder`` ``event.deadline``; once it has passed, the document becomes
``overdue`` (an evidence in its timeline) and the sender gets an ``escalation``. Several workers may run
it: the conditional updates (``reminded_at``, the move to ``overdue``) let exactly one of them act. The
event's ``message_id`` is the gateway's (``DocumentService.issue``: keyed with a secret, from the document
and the kind), so a repeat is still a duplicate and no client can know it beforehand to claim it.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

from prometheus_client import Counter

from gateway.domain.issued import DEADLINE_EVENT
from gateway.domain.status import Status
from gateway.problems import Problem
from gateway.security.clients import ClientStore
from gateway.services.documents import DocumentService
from gateway.storage import deadlines as store
from gateway.storage import messages
from gateway.storage.database import Database
from gateway.storage.timestamps import as_utc, iso, now

log = logging.getLogger(__name__)

EVENTS = Counter("gateway_deadline_events_total", "Reminders and escalations issued", ["kind"])
ACTOR = "gateway.deadlines"


class DeadlineWatcher:
    def __init__(
        self,
        db: Database,
        documents: DocumentService,
        clients: ClientStore,
        agency_code: str,
        reminder_lead: timedelta,
        interval_seconds: float,
        clock: Callable[[], datetime] = now,
    ) -> None:
        self._db = db
        self._documents = documents
        self._clients = clients
        self._agency = agency_code
        self._lead = reminder_lead
        self._interval = interval_seconds
        self._clock = clock

    async def run(self) -> None:
        while True:
            try:
                await self.scan_once()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("deadline scan failed; retrying")
            await asyncio.sleep(self._interval)

    async def scan_once(self) -> tuple[int, int]:
        """One pass: (reminders, escalations) issued."""
        at = as_utc(self._clock())  # SQLite compares timestamps as text: always UTC
        async with self._db.read() as conn:
            upcoming = await store.due_for_reminder(conn, at, at + self._lead)
            overdue = await store.past_due(conn, at)
        reminded = escalated = 0
        for row in upcoming:
            if row.due_at is not None and as_utc(row.due_at) > at:
                async with self._db.transaction() as conn:
                    claimed = await store.mark_reminded(conn, row.message_id, at)
                    if claimed:
                        await messages.add_evidence(conn, row.message_id, "reminder", ACTOR, _due(row), at)
                if claimed:
                    reminded += await self._notify(row, "reminder", at)
        for row in overdue:
            async with self._db.transaction() as conn:
                moved = await messages.transition(
                    conn, row.message_id, Status.OVERDUE, ACTOR, _due(row), at=at
                )
            if moved:
                escalated += await self._notify(row, "escalation", at)
        return reminded, escalated

    async def _notify(self, row: Any, kind: str, at: datetime) -> int:
        """Tell the sender, when it is a client that takes deliveries (a partner sees its own deadlines)."""
        EVENTS.labels(kind).inc()
        sender = self._clients.get(row.sender)
        if sender is None or sender.deliver_to is None or sender.revoked:
            return 1
        event: dict[str, Any] = {
            "message_id": str(uuid.uuid4()),  # replaced by the gateway's own id in issue()
            "message_type": DEADLINE_EVENT,
            "schema_version": "1",
            "created_at": iso(at),
            "sender": self._agency,
            "recipient": row.sender,
            "correlation_id": row.correlation_id or row.message_id,
            "priority": "urgent" if kind == "escalation" else "normal",
            "body": {
                "subject_message_id": row.message_id,
                "subject_type": row.message_type,
                "kind": kind,
                "due_at": iso(row.due_at),
                "status": Status.OVERDUE.value if kind == "escalation" else row.status,
            },
        }
        if row.case_ref:
            event["case_ref"] = row.case_ref
        try:
            await self._documents.issue(event)
        except Problem as problem:
            log.error(
                "could not issue the %s for %s: %s %s", kind, row.message_id, problem, problem.violations
            )
        return 1


def _due(row: Any) -> dict[str, Any]:
    return {"due_at": iso(row.due_at)}
