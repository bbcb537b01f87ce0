"""One message's page and what an operator does from it: replay its parked copy, pull a scheduled retry
forward, revoke it for its sender. Every action needs the operator role, the CSRF token (checked by the
guard) and a reason, and is written to the audit log with the operator's name."""

from __future__ import annotations

import asyncio
import logging
from typing import Any, Final, Protocol
from urllib.parse import quote

import aio_pika
from aiohttp import web

from gateway.amqp.names import Names
from gateway.domain.errors import Conflict
from gateway.ops import messages as ops_messages
from gateway.ops import parking
from gateway.ops.signatures import signature_view
from gateway.storage import messages as store
from gateway.storage import retries
from gateway.storage.audit import AuditEntry, append
from gateway.web.console import PREFIX
from gateway.web.console.pages import (
    MAX_REASON,
    audit,
    form_text,
    not_found,
    operator_of,
    render,
    requires_operator,
    services_of,
    state_of,
)

log = logging.getLogger(__name__)

BROKER_ACTION_SECONDS: Final = 30.0
ACTIONS: Final = ("retry_now", "replay", "revoke")
#: What the page says after an action succeeded (``?done=<action>``).
DONE: Final = {
    "retry_now": "Attempt sent to {recipient} now; the one waiting for its time is dropped.",
    "revoke": "Revoked.",
    "replay": "Replayed to {queue}.",
}


class Fail(Protocol):
    """The page again, with why the action was refused."""

    async def __call__(self, why: str, status: int = 400) -> web.StreamResponse: ...


def _queues(request: web.Request, recipient: str, priority: str) -> tuple[str, str]:
    """The recipient's delivery queue for this message's lane, and its parking queue."""
    names = Names(state_of(request).settings.broker_namespace)
    queue = names.deliver_urgent(recipient) if priority == "urgent" else names.deliver(recipient)
    return queue, names.parking(queue)


async def render_message(
    request: web.Request, message_id: str, flash_ok: str = "", flash_error: str = "", status: int = 200
) -> web.StreamResponse:
    async with services_of(request).db.read() as conn:
        found = await ops_messages.detail(conn, message_id)
        signature = await signature_view(conn, message_id) if found is not None else None
    if found is None:
        return not_found(request, "messages", "No message with this id.")
    account = operator_of(request)
    queue, parking_queue = _queues(request, found.summary.recipient, found.priority)
    done = request.query.get("done", "")
    if done in DONE and not flash_ok and not flash_error:
        # After an action the browser is sent here (a reload then reads, never repeats the action).
        flash_ok = DONE[done].format(recipient=found.summary.recipient, queue=queue)
    if account.may_act and found.payload is not None:
        # Reading personal data is itself recorded, each time the page shows it.
        await audit(
            request,
            AuditEntry(
                actor=account.username,
                action="ops.message.payload",
                outcome="read",
                message_id=found.summary.message_id,
            ),
        )
    attempts = found.attempts
    context: dict[str, Any] = {
        "page": "messages",
        "m": found,
        "show_payload": account.may_act,
        "may_act": account.may_act,
        "queue": queue,
        "parking_queue": parking_queue,
        "can_retry_now": attempts is not None and attempts.next_attempt is not None,
        "can_replay": found.maybe_parked,
        "can_revoke": not found.not_revocable,
        "flash_ok": flash_ok,
        "flash_error": flash_error,
        "max_reason": MAX_REASON,
        "sig": signature,
    }
    return render(request, "message.html", context, status=status)


async def message_action(request: web.Request) -> web.StreamResponse:
    message_id = request.match_info["message_id"]
    if (denied := requires_operator(request)) is not None:
        return denied
    form = await request.post()
    action = form_text(form, "action")
    reason = form_text(form, "reason")

    async def fail(why: str, status: int = 400) -> web.StreamResponse:
        return await render_message(request, message_id, flash_error=why, status=status)

    if action not in ACTIONS:
        return await fail("Unknown action.")
    if not reason:
        return await fail("Give a reason: it goes into the audit log.")
    if len(reason) > MAX_REASON:
        return await fail(f"Keep the reason under {MAX_REASON} characters.")
    async with services_of(request).db.read() as conn:
        row = await store.get(conn, message_id)
    if row is None:
        return not_found(request, "messages", "No message with this id.")
    operator = operator_of(request).username
    if action == "retry_now":
        return await _retry_now(request, row, operator, reason, fail)
    if action == "revoke":
        return await _revoke(request, row, operator, reason, fail)
    return await _replay(request, row, operator, reason, fail)


async def _retry_now(
    request: web.Request, row: Any, operator: str, reason: str, fail: Fail
) -> web.StreamResponse:
    services = services_of(request)
    relay = services.documents.relay
    entry = AuditEntry(
        actor=operator,
        action="ops.message.retry_now",
        outcome="done",
        message_id=row.message_id,
        object_ref=row.recipient,
        reason=reason,
        data={"status": str(row.status)},
    )
    try:
        async with services.db.transaction() as conn:
            pending = await retries.retry_now(conn, row.message_id, operator, reason, claim=relay.claim())
            await append(conn, entry)
    except retries.NotPullable as exc:
        await audit(request, _refused(entry, str(exc)))
        return await fail(f"Nothing pulled forward: {exc}.", status=409)
    relay.hand_over([pending])
    return _done(row.message_id, "retry_now")


def _done(message_id: str, action: str) -> web.StreamResponse:
    """Done: the browser reads the page again with GET, so a reload cannot repeat the action."""
    # Returned, not raised: the guard then slides the session and adds its headers as for any page.
    location = f"{PREFIX}/messages/{quote(message_id, safe='')}?done={action}"
    return web.Response(status=303, headers={"Location": location})


def _refused(entry: AuditEntry, why: str) -> AuditEntry:
    return AuditEntry(
        actor=entry.actor,
        action=entry.action,
        outcome="refused",
        message_id=entry.message_id,
        object_ref=entry.object_ref,
        reason=entry.reason,
        data={**(entry.data or {}), "why": why},
    )


async def _revoke(
    request: web.Request, row: Any, operator: str, reason: str, fail: Fail
) -> web.StreamResponse:
    entry = AuditEntry(
        actor=operator,
        action="ops.message.revoke",
        outcome="revoked",
        message_id=row.message_id,
        object_ref=row.sender,
        reason=reason,
        data={"status": str(row.status), "for_sender": row.sender},
    )
    why = ops_messages.not_revocable(row)
    if not why:
        try:
            # The sender's own revocation, with the operator named as who did it.
            await services_of(request).messages.revoke_row(row, operator[:64], reason, entry)
        except Conflict as exc:
            why = str(exc)
    if why:
        await audit(request, _refused(entry, why))
        return await fail(f"Not revoked: {why}.", status=409)
    return _done(row.message_id, "revoke")


async def _replay(
    request: web.Request, row: Any, operator: str, reason: str, fail: Fail
) -> web.StreamResponse:
    state = state_of(request)
    names = Names(state.settings.broker_namespace)
    connection = await state.connection()
    if connection is None:
        return await fail("The broker is unreachable: nothing was done.", status=503)
    queue, _ = _queues(request, row.recipient, str(row.priority))
    outcome = parking.Outcome("replay", queue, [], [])
    failure = ""
    try:
        async with asyncio.timeout(BROKER_ACTION_SECONDS):
            await parking.act(connection, names, queue, "replay", message_ids=[row.message_id], into=outcome)
    except parking.NoSuchQueue:
        outcome.missing.append(row.message_id)
    except (TimeoutError, ConnectionError, aio_pika.exceptions.AMQPError) as exc:
        log.warning("replay of %s interrupted: %r", row.message_id, exc)
        failure = f"the broker stopped answering ({type(exc).__name__})"
    await parking.record(services_of(request).db, outcome, operator, reason, via="console")
    if failure:
        return await fail(f"Replayed {len(outcome.done)}, then {failure}.", status=503)
    if not outcome.done:
        return await fail(
            f"Not replayed: no copy is parked in {names.parking(queue)} (any more).", status=409
        )
    return _done(row.message_id, "replay")
