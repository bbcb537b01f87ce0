"""Parked messages, one by one: browse, show, replay the selected ones or all matching a filter, and
discard. Builds on :mod:`gateway.amqp.parking` (depths, whole-queue replay).

Browsing takes messages with ``basic.get`` without acknowledging them and then closes the channel: the
broker puts every one of them back. Replay republishes a message (persistent, confirmed, same
``message_id``, attempt headers reset) *before* acknowledging it in the parking queue, so a crash in
between duplicates at worst, and consumers de-duplicate on ``message_id``: a replayed document reaches
its recipient once. Discard acknowledges the selected messages away; the caller records who, why and
which message in the audit log and in the message's timeline (:func:`record`).
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal

import aio_pika
from aio_pika.abc import AbstractChannel, AbstractConnection, AbstractIncomingMessage

from gateway.amqp.names import Names
from gateway.amqp.parking import republish
from gateway.domain.identifiers import scrub
from gateway.domain.status import Status
from gateway.storage import messages as store
from gateway.storage.audit import AuditEntry, append
from gateway.storage.database import Database

#: How many parked messages one operation looks at, at most (all are held unacknowledged meanwhile).
SCAN_LIMIT = 5000

Action = Literal["replay", "discard"]


class NoSuchQueue(LookupError):
    """The queue or its parking queue does not exist on the broker."""


@dataclass(frozen=True, slots=True)
class ParkingFilter:
    """Matches parked messages; empty fields match everything. ``reason`` is a case-insensitive
    substring of why the message was parked (``rejected``, ``delivery_limit``, the delivery error)."""

    message_type: str = ""
    sender: str = ""
    recipient: str = ""
    reason: str = ""
    #: Parked strictly before this time (a message whose parking time is unknown does not match).
    parked_before: datetime | None = None

    def matches(self, parked: ParkedMessage) -> bool:
        return (
            (not self.message_type or parked.message_type == self.message_type)
            and (not self.sender or parked.sender == self.sender)
            and (not self.recipient or parked.recipient == self.recipient)
            and (not self.reason or self.reason.lower() in parked.reason.lower())
            and (
                self.parked_before is None
                or (parked.parked_at is not None and parked.parked_at < self.parked_before)
            )
        )

    @property
    def empty(self) -> bool:
        return not (self.message_type or self.sender or self.recipient or self.reason or self.parked_before)

    def as_dict(self) -> dict[str, str]:
        return {
            k: v
            for k, v in {
                "type": self.message_type,
                "sender": self.sender,
                "recipient": self.recipient,
                "reason": self.reason,
                "parked_before": self.parked_before.isoformat() if self.parked_before else "",
            }.items()
            if v
        }


@dataclass(frozen=True, slots=True)
class ParkedMessage:
    message_id: str
    message_type: str
    sender: str
    recipient: str
    reason: str  # why the broker dead-lettered it: rejected | delivery_limit | expired ...
    parked_at: datetime | None
    deaths: int
    size: int
    headers: dict[str, str] = field(default_factory=dict)
    body: str = ""  # scrubbed of 12-digit identifiers; shown only to roles that may see payloads


@dataclass(frozen=True, slots=True)
class Outcome:
    """What an operation did: message ids acted on, and those selected but not found any more."""

    action: Action
    queue: str
    done: list[str]
    missing: list[str]
    # When each message was put back or dropped: its timeline entry carries this time, so the replay
    # shows before the delivery it caused even when the worker delivers before the audit is written.
    acted_at: dict[str, datetime] = field(default_factory=dict)


def _text(value: Any) -> str:
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    return "" if value is None else str(value)


def _death(headers: dict[str, Any], queue: str) -> tuple[str, datetime | None, int]:
    """Why and when the message was dead-lettered from ``queue``: its ``x-death`` entry for that queue
    (a message may also have died elsewhere first, e.g. expired in a retry tier), else the most recent
    death, else the ``x-*-death-reason`` headers."""
    deaths = headers.get("x-death")
    entries = [d for d in deaths if isinstance(d, dict)] if isinstance(deaths, list) else []
    entry = next((d for d in entries if _text(d.get("queue")) == queue), entries[0] if entries else None)
    reason = _text(entry.get("reason")) if entry else ""
    reason = reason or _text(headers.get("x-last-death-reason")) or _text(headers.get("x-first-death-reason"))
    at: datetime | None = None
    when = entry.get("time") if entry else None
    if isinstance(when, datetime):
        at = when if when.tzinfo else when.replace(tzinfo=UTC)
    count = sum(int(d.get("count") or 0) for d in entries)
    return reason or "unknown", at, count


def describe(message: AbstractIncomingMessage, queue: str = "") -> ParkedMessage:
    """A parked message as operators see it; ``queue`` is the queue it was parked from."""
    headers = dict(message.headers or {})
    reason, at, deaths = _death(headers, queue)
    shown = {
        k: scrub(_text(v))
        for k, v in sorted(headers.items())
        if k != "x-death" and isinstance(v, str | bytes | int | float | bool)
    }
    return ParkedMessage(
        message_id=message.message_id or "",
        message_type=message.type or _text(headers.get("message_type")),
        sender=_text(headers.get("sender")),
        recipient=_text(headers.get("recipient")),
        reason=reason,
        parked_at=at,
        deaths=deaths,
        size=len(message.body),
        headers=shown,
        body=scrub(message.body.decode("utf-8", "replace")),
    )


async def _parking_queue(
    connection: AbstractConnection, names: Names, queue: str, confirms: bool = False
) -> tuple[AbstractChannel, aio_pika.abc.AbstractQueue]:
    channel = await connection.channel(publisher_confirms=confirms, on_return_raises=confirms)
    try:
        parking = await channel.declare_queue(names.parking(queue), passive=True)
    except aio_pika.exceptions.ChannelClosed as exc:
        raise NoSuchQueue(names.parking(queue)) from exc
    return channel, parking


async def browse(
    connection: AbstractConnection,
    names: Names,
    queue: str,
    where: ParkingFilter | None = None,
    limit: int = 200,
) -> tuple[list[ParkedMessage], int]:
    """Up to ``limit`` parked messages of ``queue`` matching ``where``, and how many were looked at.
    Nothing is acknowledged: closing the channel returns every message to the parking queue."""
    where = where or ParkingFilter()
    channel, parking = await _parking_queue(connection, names, queue)
    found: list[ParkedMessage] = []
    seen = 0
    try:
        while seen < SCAN_LIMIT and len(found) < limit:
            message = await parking.get(no_ack=False, fail=False)
            if message is None:
                break
            seen += 1
            parked = describe(message, queue)
            if where.matches(parked):
                found.append(parked)
    finally:
        await channel.close()
    return found, seen


async def show(
    connection: AbstractConnection, names: Names, queue: str, message_id: str
) -> ParkedMessage | None:
    channel, parking = await _parking_queue(connection, names, queue)
    try:
        for _ in range(SCAN_LIMIT):
            message = await parking.get(no_ack=False, fail=False)
            if message is None:
                return None
            if message.message_id == message_id:
                return describe(message, queue)
        return None
    finally:
        await channel.close()


async def act(
    connection: AbstractConnection,
    names: Names,
    queue: str,
    action: Action,
    message_ids: Iterable[str] | None = None,
    where: ParkingFilter | None = None,
    limit: int | None = None,
    into: Outcome | None = None,
) -> Outcome:
    """Replay or discard the parked messages of ``queue`` named in ``message_ids``, or, without ids,
    every one matching ``where`` (at most ``limit``). Messages not chosen are returned untouched (the
    channel closes without acknowledging them).

    Pass ``into`` to see what was done even if this raises (broker gone, timeout): its ``done`` grows
    as each message is acknowledged, so the caller can still audit every one of them."""
    outcome = into if into is not None else Outcome(action, queue, [], [])
    wanted = None if message_ids is None else {m for m in message_ids if m}
    if wanted is not None and not wanted:
        return outcome
    where = where or ParkingFilter()
    channel, parking = await _parking_queue(connection, names, queue, confirms=action == "replay")
    done = outcome.done
    acted: set[str] = set()
    try:
        if action == "replay":
            try:
                await channel.declare_queue(queue, passive=True)
            except aio_pika.exceptions.ChannelClosed as exc:
                raise NoSuchQueue(queue) from exc
        for _ in range(SCAN_LIMIT):
            message = await parking.get(no_ack=False, fail=False)
            if message is None:
                break
            if message.message_id in acted:
                # Replayed a moment ago and parked again meanwhile (its delivery failed at once): it
                # waits for the next operation, never replayed twice by one.
                continue
            chosen = (
                message.message_id in wanted
                if wanted is not None
                else where.matches(describe(message, queue))
            )
            if not chosen:
                continue
            outcome.acted_at[message.message_id or ""] = datetime.now(UTC)
            if action == "replay":
                await republish(channel, queue, message)
            # Taken with basic.get, not consumed: no gateway.amqp.consume policy (no retry, no park) and
            # no settle() that would log a failed ack away. It must raise: ``done`` is what the caller
            # audits, and a discard whose ack failed left the message parked.
            await message.ack()
            done.append(message.message_id or "")
            acted.add(message.message_id or "")
            if (wanted is not None and wanted <= set(done)) or (limit is not None and len(done) >= limit):
                break
    finally:
        await channel.close()
    if wanted is not None:
        outcome.missing.extend(sorted(wanted - set(done)))
    return outcome


async def record(db: Database, outcome: Outcome, actor: str, reason: str, via: str) -> None:
    """One audit record per message acted on (who, what, which queue, why), and the message's own
    timeline: ``replayed`` or ``discarded``. A discarded document that still claimed to be on its way
    is marked ``failed`` with the operator's reason, so its status no longer pretends it is in flight."""
    action = f"ops.parking.{outcome.action}"
    async with db.transaction() as conn:
        for message_id in outcome.done:
            row = await store.get(conn, message_id) if message_id else None
            detail = {"queue": outcome.queue, "by": actor, "reason": scrub(reason), "via": via}
            if row is not None:
                if outcome.action == "discard":
                    await store.transition(
                        conn,
                        message_id,
                        Status.FAILED,
                        actor,
                        detail,
                        reason=scrub(f"discarded from parking by {actor}: {reason}"),
                    )
                await store.add_evidence(
                    conn,
                    message_id,
                    f"{outcome.action}ed_from_parking",
                    actor,
                    detail,
                    at=outcome.acted_at.get(message_id),
                )
            await append(
                conn,
                AuditEntry(
                    actor=actor,
                    action=action,
                    outcome="done",
                    message_id=message_id[:36] or None,
                    object_ref=outcome.queue,
                    reason=reason,
                    data={"via": via, "status": row.status if row is not None else None},
                ),
            )
        for message_id in outcome.missing:
            await append(
                conn,
                AuditEntry(
                    actor=actor,
                    action=action,
                    outcome="not_found",
                    message_id=message_id[:36],
                    object_ref=outcome.queue,
                    reason=reason,
                    data={"via": via},
                ),
            )


#: The most messages one operation across parking queues acts on (the page states it).
BULK_CAP = 500


@dataclass(frozen=True, slots=True)
class Preview:
    """How many parked messages a filter matches, per queue (each counted up to the cap)."""

    per_queue: list[tuple[str, int]]
    looked_at: int

    @property
    def total(self) -> int:
        return sum(n for _, n in self.per_queue)

    @property
    def affected(self) -> int:
        """How many one operation will act on: the cap applies."""
        return min(self.total, BULK_CAP)


async def preview(
    connection: AbstractConnection, names: Names, queues: Iterable[str], where: ParkingFilter
) -> Preview:
    """Counts matches of ``where`` in the parking queue of each of ``queues`` (nothing is taken)."""
    per_queue: list[tuple[str, int]] = []
    looked = 0
    for queue in queues:
        try:
            found, seen = await browse(connection, names, queue, where, limit=BULK_CAP + 1)
        except NoSuchQueue:
            continue
        looked += seen
        if found:
            per_queue.append((queue, len(found)))
    return Preview(per_queue, looked)


async def act_across(
    connection: AbstractConnection,
    names: Names,
    queues: Iterable[str],
    action: Action,
    where: ParkingFilter,
    outcomes: list[Outcome],
    cap: int = BULK_CAP,
) -> None:
    """:func:`act` on every queue of ``queues`` with ``where``, at most ``cap`` messages in all. Each
    queue's :class:`Outcome` is appended to ``outcomes`` before it starts, so the caller audits what was
    done also if this raises half-way."""
    remaining = cap
    for queue in queues:
        if remaining <= 0:
            break
        outcome = Outcome(action, queue, [], [])
        outcomes.append(outcome)
        try:
            await act(connection, names, queue, action, where=where, limit=remaining, into=outcome)
        except NoSuchQueue:
            continue
        remaining -= len(outcome.done)


def body_preview(parked: ParkedMessage, limit: int = 20_000) -> str:
    """The body, pretty-printed when it is JSON, cut at ``limit`` characters."""
    try:
        text = json.dumps(json.loads(parked.body), indent=2, ensure_ascii=False)
    except ValueError:
        text = parked.body
    return text if len(text) <= limit else text[:limit] + "\n…"
