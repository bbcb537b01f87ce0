"""The overview (headline counts, the broker banner, partners by kind, queues by role; also as JSON for
the page's polling), the active alerts, and the lists of overdue and stuck messages behind its counts."""

from __future__ import annotations

import time
from datetime import datetime
from typing import Final

from aiohttp import web

from gateway.ops import backlog, status
from gateway.web.console.pages import render, services_of, state_of
from gateway.web.console.timefmt import TimeFormat

#: The overview is computed at most this often, whatever the number of open consoles.
OVERVIEW_CACHE_SECONDS: Final = 2.0
#: Up to this many queues in all, the empty ones are listed unfolded (they fit on the screen anyway).
UNFOLDED_UP_TO: Final = 30

#: When each alert (by key) was first seen active by this process; gone when it clears.
_since: dict[str, datetime] = {}


async def snapshot(request: web.Request) -> status.Snapshot:
    """The gateway now; the broker's part waited for about a second at most (the last figures known
    otherwise, with their time)."""
    state = state_of(request)
    at = time.monotonic()
    if state.cached is not None and at - state.cached[0] < OVERVIEW_CACHE_SECONDS:
        return state.cached[1]
    snap = await status.snapshot(state.settings, services_of(request).db, reads=state.broker_reads())
    state.cached = (time.monotonic(), snap)
    return snap


def active_alerts(snap: status.Snapshot) -> list[status.Alert]:
    """The snapshot's alerts, each with the time this process first saw it (the earliest start a worker
    sample shows, for parked messages and partners, once the history page has them)."""
    found = status.alerts(snap)
    keys = {a.key for a in found}
    for gone in set(_since) - keys:
        del _since[gone]
    for key in keys:
        _since.setdefault(key, snap.at)
    return status.alerts(snap, dict(_since))


def json_body(snap: status.Snapshot, zone: str) -> dict[str, object]:
    """``snap`` as JSON, with the alerts' times and the labels the page shows in the operator's zone."""
    body = snap.as_json()
    body["alerts"] = [a.as_json() for a in active_alerts(snap)]
    fmt = TimeFormat(zone)
    body["at_local"] = fmt.local(snap.at)
    body["broker_last_seen_local"] = fmt.local(snap.broker.last_seen)
    return body


async def overview(request: web.Request) -> web.StreamResponse:
    snap = await snapshot(request)
    total = len(snap.queues.rows) if snap.queues else 0
    context = {
        "page": "overview",
        "snap": snap,
        "data": snap.as_json(),
        "alerts": active_alerts(snap),
        "unfold": total <= UNFOLDED_UP_TO,
    }
    return render(request, "overview.html", context)


async def overview_api(request: web.Request) -> web.StreamResponse:
    snap = await snapshot(request)
    return web.json_response(json_body(snap, state_of(request).settings.ops.time_zone))


async def alerts_page(request: web.Request) -> web.StreamResponse:
    snap = await snapshot(request)
    return render(request, "alerts.html", {"page": "alerts", "snap": snap, "alerts": active_alerts(snap)})


async def stuck_page(request: web.Request) -> web.StreamResponse:
    settings = state_of(request).settings
    async with services_of(request).db.read() as conn:
        found = await backlog.backlog(conn, settings.ops.stuck_after_minutes)
    return render(request, "stuck.html", {"page": "stuck", "b": found})
