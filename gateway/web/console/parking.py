"""Parking queues: their counts, the messages parked in one (filtered), one parked message, and an
operator's replay or discard (with a reason, audited also when the broker fails half-way)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any, Final
from zoneinfo import ZoneInfo

import aio_pika
from aiohttp import web

from gateway.amqp.names import Names
from gateway.ops import messages as ops_messages
from gateway.ops import parking, queues
from gateway.settings import Settings
from gateway.web.console.overview import snapshot
from gateway.web.console.pages import (
    MAX_REASON,
    form_text,
    not_found,
    operator_of,
    render,
    requires_operator,
    services_of,
    state_of,
)

log = logging.getLogger(__name__)

#: A broker that stops answering must not hang a page.
BROKER_READ_SECONDS: Final = 15.0
BROKER_ACTION_SECONDS: Final = 120.0
PARKING_PAGE: Final = 200


def _known_queues(settings: Settings) -> dict[str, str]:
    return dict(queues.gateway_queues(settings))


def _parking_filter(source: Mapping[str, Any], zone: ZoneInfo | None = None) -> parking.ParkingFilter:
    def text(name: str) -> str:
        value = source.get(name)
        return value.strip()[:200] if isinstance(value, str) else ""

    return parking.ParkingFilter(
        message_type=text("type"),
        sender=text("sender"),
        recipient=text("recipient"),
        reason=text("reason_filter"),
        parked_before=_local_time(text("before"), zone),
    )


def _local_time(value: str, zone: ZoneInfo | None) -> datetime | None:
    """``2026-12-07T09:30`` (the form's datetime-local, in the operator's zone) → an aware datetime;
    anything else → None (the field is then ignored)."""
    if not value:
        return None
    try:
        at = datetime.fromisoformat(value)
    except ValueError:
        return None
    if at.tzinfo is None:
        at = at.replace(tzinfo=zone or UTC)
    return at.astimezone(UTC)


def _zone(request: web.Request) -> ZoneInfo:
    return ZoneInfo(state_of(request).settings.ops.time_zone)


async def parking_list(request: web.Request) -> web.StreamResponse:
    return await _parking_overview(request, _parking_filter(request.query, _zone(request)), request.query)


async def _parking_overview(
    request: web.Request,
    where: parking.ParkingFilter,
    form: Mapping[str, Any],
    flash_ok: str = "",
    flash_error: str = "",
    status: int = 200,
) -> web.Response:
    """Every parking queue with a total, the empty ones folded; with a filter, how many messages it
    matches across them (the confirmation of a bulk action)."""
    snap = await snapshot(request)
    rows = snap.queues.rows if snap.queues else []
    full = [r for r in rows if (r.parked or 0) > 0]
    empty = [r for r in rows if not (r.parked or 0) > 0]
    found: parking.Preview | None = None
    broker_error = ""
    if not where.empty:
        state = state_of(request)
        connection = await state.connection()
        if connection is None:
            broker_error = "The broker is unreachable: parked messages cannot be counted now."
        else:
            try:
                async with asyncio.timeout(BROKER_READ_SECONDS * 2):
                    # Every parking queue, not only those the overview counted: the management
                    # API's counts lag by seconds, and a count is what the operator confirms.
                    found = await parking.preview(
                        connection,
                        Names(state.settings.broker_namespace),
                        _known_queues(state.settings),
                        where,
                    )
            except (TimeoutError, ConnectionError, aio_pika.exceptions.AMQPError) as exc:
                broker_error = f"The broker did not answer ({type(exc).__name__}): nothing counted."
    context = {
        "page": "parking",
        "snap": snap,
        "rows": rows,
        "full": full,
        "empty": empty,
        "total": sum(r.parked or 0 for r in full),
        "where": where,
        "form": form,
        "found": found,
        "cap": parking.BULK_CAP,
        "broker_error": broker_error,
        "flash_ok": flash_ok,
        "flash_error": flash_error,
        "may_act": operator_of(request).may_act,
    }
    return render(request, "parking.html", context, status=status)


async def parking_bulk(request: web.Request) -> web.StreamResponse:
    """Replay or discard what a filter matches across every parking queue: a reason, the count the
    operator confirmed, at most :data:`parking.BULK_CAP` messages, each audited on its own."""
    if (denied := requires_operator(request)) is not None:
        return denied
    form = await request.post()
    where = _parking_filter(form, _zone(request))
    action = form_text(form, "action")
    reason = form_text(form, "reason")
    shown = {k: v for k, v in form.items() if isinstance(v, str) and k not in ("csrf", "reason", "action")}

    async def fail(why: str, status: int = 400) -> web.StreamResponse:
        return await _parking_overview(request, where, shown, flash_error=why, status=status)

    if action not in ("replay", "discard"):
        return await fail("Unknown action.")
    if where.empty:
        return await fail("Filter first: a bulk action needs at least one filter field.")
    if not reason:
        return await fail("Give a reason: it goes into the audit log.")
    if len(reason) > MAX_REASON:
        return await fail(f"Keep the reason under {MAX_REASON} characters.")
    if not form_text(form, "expected").isdigit():
        return await fail("Confirm the count first: filter, then act from the confirmation.")
    state = state_of(request)
    connection = await state.connection()
    if connection is None:
        return await fail("The broker is unreachable: nothing was done.", status=503)
    queues_with = list(_known_queues(state.settings))
    kind: parking.Action = "discard" if action == "discard" else "replay"
    outcomes: list[parking.Outcome] = []
    failure = ""
    try:
        async with asyncio.timeout(BROKER_ACTION_SECONDS):
            await parking.act_across(
                connection,
                Names(state.settings.broker_namespace),
                queues_with,
                kind,
                where,
                outcomes,
                # Never more than the operator confirmed (more may have been parked since the count).
                cap=min(parking.BULK_CAP, int(form_text(form, "expected"))),
            )
    except (TimeoutError, ConnectionError, aio_pika.exceptions.AMQPError) as exc:
        log.warning("bulk %s interrupted: %r", kind, exc)
        failure = f"the broker stopped answering ({type(exc).__name__})"
    # Every message acted on is audited, also when the broker failed half-way.
    account = operator_of(request)
    for outcome in outcomes:
        await parking.record(services_of(request).db, outcome, account.username, reason, via="console-bulk")
    done = sum(len(o.done) for o in outcomes)
    queues_done = sum(1 for o in outcomes if o.done)
    verb = "replayed" if kind == "replay" else "discarded"
    message = f"{verb} {done} message(s) from {queues_done} queue(s)"
    if failure:
        return await fail(f"{message}, then {failure}", status=503)
    return await _parking_overview(request, where, shown, flash_ok=message)


async def _parked_page(
    request: web.Request,
    queue: str,
    where: parking.ParkingFilter,
    flash_ok: str = "",
    flash_error: str = "",
    status: int = 200,
) -> web.Response:
    source = await request.post() if request.method == "POST" else request.query
    before = source.get("before")
    before = before if isinstance(before, str) else ""
    state = state_of(request)
    names = Names(state.settings.broker_namespace)
    connection = await state.connection()
    found: list[parking.ParkedMessage] = []
    seen = 0
    broker_error = ""
    if connection is None:
        broker_error = "The broker is unreachable: parked messages cannot be read now."
    else:
        try:
            async with asyncio.timeout(BROKER_READ_SECONDS):
                found, seen = await parking.browse(connection, names, queue, where, limit=PARKING_PAGE)
        except (TimeoutError, ConnectionError, aio_pika.exceptions.AMQPError) as exc:
            broker_error = (
                f"The broker did not answer ({type(exc).__name__}): parked messages cannot be read now."
            )
        except parking.NoSuchQueue:
            broker_error = (
                f"{names.parking(queue)} does not exist on the broker (nothing was ever parked there)."
            )
    known: dict[str, tuple[str, str]] = {}
    if found:
        async with services_of(request).db.read() as conn:
            known = await ops_messages.statuses(conn, [p.message_id for p in found])
    context = {
        "page": "parking",
        "queue": queue,
        "known": known,
        "parking_queue": names.parking(queue),
        "found": found,
        "seen": seen,
        "where": where,
        "broker_error": broker_error,
        "flash_ok": flash_ok,
        "flash_error": flash_error,
        "may_act": operator_of(request).may_act,
        "page_size": PARKING_PAGE,
        "before": before,
    }
    return render(request, "parked.html", context, status=status)


async def parked_list(request: web.Request) -> web.StreamResponse:
    queue = request.match_info["queue"]
    if queue not in _known_queues(state_of(request).settings):
        return not_found(request, "parking", "Not a queue of this gateway.")
    return await _parked_page(request, queue, _parking_filter(request.query, _zone(request)))


async def parked_action(request: web.Request) -> web.StreamResponse:
    queue = request.match_info["queue"]
    state = state_of(request)
    if queue not in _known_queues(state.settings):
        return not_found(request, "parking", "Not a queue of this gateway.")
    if (denied := requires_operator(request)) is not None:
        return denied
    form = await request.post()
    where = _parking_filter(form, _zone(request))
    action = form_text(form, "action")
    reason = form_text(form, "reason")
    selected = [v for v in form.getall("message_id", []) if isinstance(v, str) and v]
    if action not in ("replay", "replay_all", "discard"):
        return await _parked_page(request, queue, where, flash_error="Unknown action.", status=400)
    if not reason:
        return await _parked_page(
            request, queue, where, flash_error="Give a reason: it goes into the audit log.", status=400
        )
    if len(reason) > MAX_REASON:
        return await _parked_page(
            request, queue, where, flash_error=f"Keep the reason under {MAX_REASON} characters.", status=400
        )
    if action != "replay_all" and not selected:
        return await _parked_page(
            request, queue, where, flash_error="Select at least one message.", status=400
        )
    connection = await state.connection()
    if connection is None:
        return await _parked_page(
            request, queue, where, flash_error="The broker is unreachable: nothing was done.", status=503
        )
    names = Names(state.settings.broker_namespace)
    kind: parking.Action = "discard" if action == "discard" else "replay"
    outcome = parking.Outcome(kind, queue, [], [])
    failure = ""
    try:
        async with asyncio.timeout(BROKER_ACTION_SECONDS):
            await parking.act(
                connection,
                names,
                queue,
                kind,
                message_ids=None if action == "replay_all" else selected,
                where=where,
                into=outcome,
            )
    except parking.NoSuchQueue as exc:
        return await _parked_page(request, queue, where, flash_error=f"{exc} does not exist.", status=404)
    except (TimeoutError, ConnectionError, aio_pika.exceptions.AMQPError) as exc:
        log.warning("parking %s on %s interrupted: %r", kind, queue, exc)
        failure = f"the broker stopped answering ({type(exc).__name__})"
    # Whatever was done is audited, also when the broker failed half-way.
    account = operator_of(request)
    await parking.record(services_of(request).db, outcome, account.username, reason, via="console")
    verb = "replayed" if kind == "replay" else "discarded"
    message = f"{verb} {len(outcome.done)}"
    if failure:
        return await _parked_page(request, queue, where, flash_error=f"{message}, then {failure}", status=503)
    if outcome.missing:
        message += f"; {len(outcome.missing)} selected message(s) were no longer parked"
    return await _parked_page(request, queue, where, flash_ok=message)


async def parked_message(request: web.Request) -> web.StreamResponse:
    queue, message_id = request.match_info["queue"], request.match_info["message_id"]
    state = state_of(request)
    if queue not in _known_queues(state.settings):
        return not_found(request, "parking", "Not a queue of this gateway.")
    connection = await state.connection()
    found = None
    if connection is not None:
        try:
            async with asyncio.timeout(BROKER_READ_SECONDS):
                found = await parking.show(
                    connection, Names(state.settings.broker_namespace), queue, message_id
                )
        except (parking.NoSuchQueue, TimeoutError, ConnectionError, aio_pika.exceptions.AMQPError):
            found = None
    if found is None:
        return not_found(request, "parking", "This message is not parked here (any more).")
    account = operator_of(request)
    return render(
        request,
        "parked_message.html",
        {
            "page": "parking",
            "queue": queue,
            "p": found,
            "show_payload": account.may_act,
            "body": parking.body_preview(found),
        },
    )
