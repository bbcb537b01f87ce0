"""Finding a message and reading it: its envelope, timeline, deliveries and replies, and its payload
for operators (each such read audited)."""

from __future__ import annotations

from collections.abc import Mapping

from aiohttp import web

from gateway.domain.status import Status
from gateway.ops import messages as ops_messages
from gateway.web.console import message_actions
from gateway.web.console.pages import render, services_of


def _message_query(query: Mapping[str, str]) -> ops_messages.MessageQuery:
    return ops_messages.MessageQuery(
        message_id=query.get("q", "").strip(),
        case_ref=query.get("case_ref", "").strip(),
        sender=query.get("sender", "").strip(),
        recipient=query.get("recipient", "").strip(),
        message_type=query.get("type", "").strip(),
        status=query.get("status", "").strip(),
        received_from=ops_messages.parse_day(query.get("from")),
        received_to=ops_messages.parse_day(query.get("to")),
    )


async def message_list(request: web.Request) -> web.StreamResponse:
    query = _message_query(request.query)
    async with services_of(request).db.read() as conn:
        found = await ops_messages.search(
            conn, query, limit=ops_messages.SEARCH_LIMIT if not query.empty else 50
        )
    context = {
        "page": "messages",
        "query": request.query,
        "filtered": not query.empty,
        "found": found,
        "statuses": [s.value for s in Status],
        "types": sorted(services_of(request).documents.registry),
    }
    return render(request, "messages.html", context)


async def message_page(request: web.Request) -> web.StreamResponse:
    # The page and its actions live together (gateway/web/console/message_actions.py).
    return await message_actions.render_message(request, request.match_info["message_id"])
