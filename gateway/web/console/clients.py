"""The registered API clients: grants, role, delivery target, key age and when each was last heard from."""

from __future__ import annotations

import logging

from aiohttp import web

from gateway.ops import client_list
from gateway.partners import Partner, load_partners
from gateway.web.console.pages import render, services_of, state_of

log = logging.getLogger(__name__)


async def clients_page(request: web.Request) -> web.StreamResponse:
    services = services_of(request)
    settings = state_of(request).settings
    try:
        partners: list[Partner] = load_partners(settings.config_dir)
    except (OSError, ValueError) as exc:  # the page still lists the clients, without the pull partners
        log.warning("console: partners unreadable for the clients page: %s", exc)
        partners = []
    registered = services.clients.all()
    async with services.db.read() as conn:
        found = await client_list.clients(conn, registered, services.clients.directory, partners)
    context = {
        "page": "clients",
        "clients": found,
        "total": len(registered),
        "cap": client_list.MAX_CLIENTS,
    }
    return render(request, "clients.html", context)
