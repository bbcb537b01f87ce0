"""Finding a message and reading it: its envelope, timeline, deliveries and replies, and its payload
for operators (each such read audited)."""

from __future__ import annotations

from collections.abc import Mapping

from aiohttp import web

from gateway.domain.status import Status
from gateway.ops import messages as ops_messages
from gateway.storage.audit import AuditEntry
from gateway.web.console.pages import audit, not_found, operator_of, render, services_of


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
    message_id = request.match_info["message_id"]
    async with services_of(request).db.read() as conn:
        found = await ops_messages.detail(conn, message_id)
    if found is None:
        return not_found(request, "messages", "No message with this id.")
    account = operator_of(request)
    if account.may_act and found.payload is not None:
        # Reading personal data is itself recorded.
        await audit(
            request,
            AuditEntry(
                actor=account.username,
                action="ops.message.payload",
                outcome="read",
                message_id=found.summary.message_id,
            ),
        )
    return render(request, "message.html", {"page": "messages", "m": found, "show_payload": account.may_act})
