"""Finding a message and reading it: its envelope, timeline, deliveries and replies, and its payload
for operators (each such read audited)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Final

from aiohttp import web

from gateway.domain.status import Status
from gateway.ops import message_list as message_list_model
from gateway.storage.audit import AuditEntry
from gateway.web.console import message_actions
from gateway.web.console.pages import audit, operator_of, refused, render, services_of


async def message_list(request: web.Request) -> web.StreamResponse:
    """The list, one keyset page at a time; the filter, order and cursor all live in the URL."""
    wanted = message_list_model.parse_request(request.query)
    async with services_of(request).db.read() as conn:
        found = await message_list_model.page(conn, wanted)
    params = wanted.params()
    context = {
        "page": "messages",
        "query": request.query,
        "wanted": wanted,
        "filtered": not wanted.query.empty,
        "found": found.rows,
        "next_url": _url(request, params | {"after": found.next_cursor}) if found.next_cursor else "",
        "prev_url": _url(request, params | {"before": found.prev_cursor}) if found.prev_cursor else "",
        "first_url": _url(request, params) if (wanted.after or wanted.before) else "",
        "export_url": _url(request, params, "ops.messages.csv"),
        "sort_urls": {
            key: _url(request, params | _sorted_by(wanted, key)) for key in message_list_model.SORTS
        },
        "export_max": message_list_model.EXPORT_MAX_ROWS,
        "max_page_size": message_list_model.MAX_PAGE_SIZE,
        "statuses": [s.value for s in Status],
        "types": sorted(services_of(request).documents.registry),
    }
    return render(request, "messages.html", context)


def _sorted_by(wanted: message_list_model.ListRequest, key: str) -> dict[str, str]:
    """A column header's link: sort by it, or turn the order round when it already sorts the list."""
    direction = "desc"
    if key == wanted.sort:
        direction = "asc" if wanted.direction == "desc" else "desc"
    return {"sort": key, "dir": direction}


def _url(request: web.Request, params: dict[str, str], route: str = "ops.messages") -> str:
    return str(request.app.router[route].url_for().with_query(params))


#: CSV exports running at once in this process; past it the next is refused (503) rather than queued.
MAX_EXPORTS: Final = 2
_exports_running = 0


async def message_export(request: web.Request) -> web.StreamResponse:
    """The filtered list as CSV, streamed, at most :data:`~gateway.ops.message_list.EXPORT_MAX_ROWS`
    rows, personal IDs masked for every role (the console shows none in clear, and an export is the
    easiest way for data to leave it); audited, with its filter, before a row goes out."""
    global _exports_running
    wanted = message_list_model.parse_request(request.query)
    if _exports_running >= MAX_EXPORTS:
        return refused(request, "Other exports are running: try again in a minute.", status=503)
    account = operator_of(request)
    await audit(
        request,
        AuditEntry(
            actor=account.username,
            action="ops.messages.export",
            outcome="read",
            data={
                "filter": wanted.described(),
                "max_rows": message_list_model.EXPORT_MAX_ROWS,
                "role": account.role,
            },
        ),
    )
    _exports_running += 1
    try:
        stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
        response = web.StreamResponse(
            headers={
                "Content-Type": "text/csv; charset=utf-8",
                "Content-Disposition": f'attachment; filename="messages-{stamp}.csv"',
                "Cache-Control": "no-store",
                "X-Content-Type-Options": "nosniff",
            }
        )
        await response.prepare(request)
        async for chunk in message_list_model.export(services_of(request).db, wanted):
            await response.write(chunk)
        await response.write_eof()
        return response
    finally:
        _exports_running -= 1


async def message_page(request: web.Request) -> web.StreamResponse:
    # The page and its actions live together (gateway/web/console/message_actions.py).
    return await message_actions.render_message(request, request.match_info["message_id"])
