"""Scheduled delivery retries, as the database knows them, and pulling one forward ("retry now").

A failed delivery is retried through a RabbitMQ delay tier (``gw.retry.<ms>``): the worker writes a
``delivery_failed`` evidence (attempt, error, delay) and publishes the next attempt there. A message in
the middle of a delay queue cannot be taken out of it, so pulling the retry forward works the other way
round: a fresh copy of the next attempt goes through the outbox to the recipient's delivery queue at once,
and the copy still waiting in the tier is *superseded* — the worker drops it when it comes out
(:func:`superseded`). One attempt, one copy delivered:

- the ``retry_now`` evidence (which attempt was pulled forward) and the outbox row of the fresh copy are
  written in one transaction: both or neither, so nothing is lost if the api dies half-way, and the
  relay publishes the copy even if this process cannot;
- the message row is locked first (an UPDATE: a row lock on PostgreSQL, the write lock on SQLite), so two
  operators pressing at once pull the attempt forward once;
- the pull is refused unless the scheduled copy is still well inside its delay (:data:`MARGIN`): a copy
  leaves the tier only after its delay, so when the evidence commits no worker can have started on the
  waiting copy, and every worker that takes it later reads the evidence and drops it. A retry already due
  is being delivered anyway.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Final

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from gateway.domain.status import Status
from gateway.storage import outbox
from gateway.storage.messages import add_evidence
from gateway.storage.tables import evidences, messages
from gateway.storage.timestamps import as_utc, iso, now

#: Header of the worker's attempt number (``gateway/worker/delivery.py``).
ATTEMPT_HEADER: Final = "x-delivery-attempt"
#: Header of a pulled-forward copy: the attempt it was pulled forward for.
RETRY_NOW_HEADER: Final = "x-retry-now"
#: Header of a copy waiting in a retry tier: the ``retry_id`` of the ``delivery_failed`` evidence that
#: scheduled it. A pull names the retry it replaces by this id, so attempts numbered again after a
#: replay from parking are never mistaken for the pulled one.
RETRY_ID_HEADER: Final = "x-retry-id"
#: Evidence of a pull: ``{"attempt": n, "by": operator, "reason": ...}``.
RETRY_NOW_EVENT: Final = "retry_now"
#: Evidence of the waiting copy dropped when it came out of its tier.
SUPERSEDED_EVENT: Final = "retry_superseded"
#: How long before its time a scheduled retry may still be pulled forward (covers clock differences
#: between the api and worker hosts).
MARGIN: Final = timedelta(seconds=2)
#: Statuses in which a document may still be waiting for a retry.
WAITING: Final = frozenset({Status.RECEIVED.value, Status.QUEUED.value, Status.OVERDUE.value})
#: Evidences that end a wait for a scheduled attempt (it was taken, or the document left delivery).
_AFTER_FAILURE: Final = frozenset(
    {
        "delivered",
        "redelivered",
        "failed",
        "revoked",
        "not_delivered_revoked",
        "duplicate_suppressed",
        RETRY_NOW_EVENT,
        "discarded_from_parking",
        "replayed_from_parking",
    }
)


@dataclass(frozen=True, slots=True)
class Attempts:
    """What a document's delivery attempts look like from its evidence."""

    failures: int  # failed attempts recorded
    last_error: str
    last_failure_at: datetime | None
    #: The attempt waiting in a retry tier, and when it comes out (None: no retry is waiting).
    next_attempt: int | None
    next_attempt_at: datetime | None
    delivered_after: int | None  # the attempt that delivered it, if delivered
    #: The waiting copy's ``retry_id`` ("" when its failure was recorded without one).
    retry_id: str = ""


class NotPullable(Exception):
    """Why a retry cannot be pulled forward (shown to the operator as is)."""


def _detail(raw: str | None) -> dict[str, Any]:
    try:
        value = json.loads(raw) if raw else {}
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}


def _int(value: Any, default: int = 0) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) else default


async def evidence_of(conn: AsyncConnection, message_id: str) -> list[tuple[str, datetime, dict[str, Any]]]:
    rows = await conn.execute(
        select(evidences.c.event, evidences.c.at, evidences.c.detail)
        .where(evidences.c.message_id == message_id)
        .order_by(evidences.c.at, evidences.c.id)
    )
    return [(r.event, as_utc(r.at), _detail(r.detail)) for r in rows]


def summarise(events: list[tuple[str, datetime, dict[str, Any]]], status: str) -> Attempts:
    """Attempts from a timeline (oldest first): failures, the last error, the retry still waiting."""
    failures = 0
    last_error = ""
    last_at: datetime | None = None
    waiting: tuple[int, datetime, str] | None = None
    delivered_after: int | None = None
    attempt_seen = 1
    for event, at, detail in events:
        if event == "delivery_failed":
            failures += 1
            last_error = str(detail.get("error") or "")
            last_at = at
            attempt = _int(detail.get("attempt"), failures)
            attempt_seen = attempt
            due = at + timedelta(milliseconds=_int(detail.get("retry_in_ms")))
            waiting = (attempt + 1, due, str(detail.get("retry_id") or ""))
        elif event == "failed" and detail.get("error"):
            failures += 1
            last_error = str(detail.get("error"))
            last_at = at
            attempt_seen = _int(detail.get("attempts"), attempt_seen)
            waiting = None
        elif event == "redelivered":
            attempt_seen = max(attempt_seen, _int(detail.get("attempt"), attempt_seen))
            waiting = None
        elif event == "delivered":
            delivered_after = _int(detail.get("attempt"), attempt_seen) or attempt_seen
            waiting = None
        elif event in _AFTER_FAILURE:
            waiting = None
    if status not in WAITING:
        waiting = None
    return Attempts(
        failures=failures,
        last_error=last_error,
        last_failure_at=last_at,
        next_attempt=waiting[0] if waiting else None,
        next_attempt_at=waiting[1] if waiting else None,
        delivered_after=delivered_after,
        retry_id=waiting[2] if waiting else "",
    )


async def attempts(conn: AsyncConnection, message_id: str, status: str) -> Attempts:
    return summarise(await evidence_of(conn, message_id), status)


def _headers(row: Any, attempt: int) -> dict[str, Any]:
    """The headers of a document's delivery copy (as ``gateway/services/document_records.py`` writes
    them), for ``attempt``, marked as pulled forward."""
    try:
        receipt = json.loads(row.receipt or "{}")
    except ValueError:
        receipt = {}
    receipt = receipt if isinstance(receipt, dict) else {}
    headers: dict[str, Any] = {
        "message_type": row.message_type,
        "sender": row.sender,
        "recipient": row.recipient,
        "correlation_id": row.correlation_id or row.message_id,
        "sha256": row.sha256,
        "receipt_id": str(receipt.get("receipt_id") or ""),
        "received_at": str(receipt.get("received_at") or iso(row.received_at) or ""),
        "priority": row.priority,
        ATTEMPT_HEADER: attempt,
        RETRY_NOW_HEADER: attempt,
    }
    if row.in_reply_to:
        headers["in_reply_to"] = row.in_reply_to
    if row.due_at is not None:
        headers["due_at"] = iso(row.due_at)
    return headers


async def retry_now(
    conn: AsyncConnection,
    message_id: str,
    actor: str,
    reason: str,
    claim: outbox.Claim | None = None,
) -> outbox.Pending:
    """Pull the waiting retry of ``message_id`` forward, in the caller's transaction: the ``retry_now``
    evidence and an outbox row carrying the next attempt at once. Raises :class:`NotPullable` when no
    retry is waiting, or it is due already. The caller hands the returned row to its relay after the
    commit (or leaves it to any relay's fallback pass)."""
    at = now()
    # Lock first: a second pull of the same attempt waits here and then finds the first one's evidence.
    locked = await conn.execute(
        update(messages).where(messages.c.message_id == message_id).values(updated_at=messages.c.updated_at)
    )
    if locked.rowcount != 1:
        raise NotPullable("no such message")
    row = (await conn.execute(select(messages).where(messages.c.message_id == message_id))).one()
    state = summarise(await evidence_of(conn, message_id), str(row.status))
    if state.next_attempt is None or state.next_attempt_at is None:
        raise NotPullable(f"no retry is waiting (the message is {row.status})")
    if state.next_attempt_at <= at + MARGIN:
        raise NotPullable("the retry is due now: a worker is taking it")
    if not state.retry_id:
        raise NotPullable("this retry was scheduled by an older worker: it cannot be pulled forward")
    if not row.payload:
        raise NotPullable("the document's payload is no longer kept")
    await add_evidence(
        conn,
        message_id,
        RETRY_NOW_EVENT,
        actor[:64],
        {
            "attempt": state.next_attempt,
            "retry_id": state.retry_id,
            "by": actor,
            "reason": reason,
            "was_due_at": iso(state.next_attempt_at),
        },
        at=at,
    )
    return await outbox.insert(
        conn,
        message_id=message_id,
        exchange=outbox.DOCUMENTS,
        routing_key=row.recipient,
        headers=_headers(row, state.next_attempt),
        body=row.payload,
        at=at,
        priority=5 if row.priority == "urgent" else 0,
        claim=claim,
    )


async def superseded(conn: AsyncConnection, message_id: str, headers: dict[str, Any]) -> bool:
    """Whether this copy, out of a retry tier, was replaced by a pulled-forward one: a ``retry_now``
    evidence names its ``retry_id``. Copies without one (first attempts, pulled copies) cost no read."""
    retry_id = headers.get(RETRY_ID_HEADER)
    if not isinstance(retry_id, str) or not retry_id:
        return False
    rows = await conn.execute(
        select(evidences.c.detail).where(
            evidences.c.message_id == message_id, evidences.c.event == RETRY_NOW_EVENT
        )
    )
    return any(_detail(r.detail).get("retry_id") == retry_id for r in rows)
