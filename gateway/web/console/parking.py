"""Parking queues: their counts, the messages parked in one (filtered), one parked message, and an
operator's replay or discard (with a reason, audited also when the broker fails half-way)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping
from typing import Any, Final

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


def _parking_filter(source: Mapping[str, Any]) -> parking.ParkingFilter:
    def text(name: str) -> str:
        value = source.get(name)
        return value.strip()[:200] if isinstance(value, str) else ""

    return parking.ParkingFilter(
        message_type=text("type"),
        sender=text("sender"),
        recipient=text("recipient"),
        reason=text("reason_filter"),
    )


async def parking_list(request: web.Request) -> web.StreamResponse:
    snap = await snapshot(request)
    rows = snap.queues.rows if snap.queues else []
    return render(request, "parking.html", {"page": "parking", "snap": snap, "rows": rows})


async def _parked_page(
    request: web.Request,
    queue: str,
    where: parking.ParkingFilter,
    flash_ok: str = "",
    flash_error: str = "",
    status: int = 200,
) -> web.Response:
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
    }
    return render(request, "parked.html", context, status=status)


async def parked_list(request: web.Request) -> web.StreamResponse:
    queue = request.match_info["queue"]
    if queue not in _known_queues(state_of(request).settings):
        return not_found(request, "parking", "Not a queue of this gateway.")
    return await _parked_page(request, queue, _parking_filter(request.query))


async def parked_action(request: web.Request) -> web.StreamResponse:
    queue = request.match_info["queue"]
    state = state_of(request)
    if queue not in _known_queues(state.settings):
        return not_found(request, "parking", "Not a queue of this gateway.")
    if (denied := requires_operator(request)) is not None:
        return denied
    form = await request.post()
    where = _parking_filter(form)
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
