"""The overview (queues, outbox, partners, counts; also as JSON for the page's polling) and the lists of
overdue and stuck messages behind its counts."""

from __future__ import annotations

import time
from typing import Final

from aiohttp import web

from gateway.ops import backlog, status
from gateway.web.console.pages import render, services_of, state_of

#: The overview is computed at most this often, whatever the number of open consoles.
OVERVIEW_CACHE_SECONDS: Final = 2.0


async def snapshot(request: web.Request) -> status.Snapshot:
    state = state_of(request)
    at = time.monotonic()
    if state.cached is not None and at - state.cached[0] < OVERVIEW_CACHE_SECONDS:
        return state.cached[1]
    connection = await state.connection()
    snap = await status.snapshot(
        state.settings, services_of(request).db, connection, reach_broker=connection is not None
    )
    state.cached = (time.monotonic(), snap)
    return snap


async def overview(request: web.Request) -> web.StreamResponse:
    snap = await snapshot(request)
    return render(request, "overview.html", {"page": "overview", "snap": snap, "data": snap.as_json()})


async def overview_api(request: web.Request) -> web.StreamResponse:
    snap = await snapshot(request)
    return web.json_response(snap.as_json())


async def stuck_page(request: web.Request) -> web.StreamResponse:
    settings = state_of(request).settings
    async with services_of(request).db.read() as conn:
        found = await backlog.backlog(conn, settings.ops.stuck_after_minutes)
    return render(request, "stuck.html", {"page": "stuck", "b": found})
