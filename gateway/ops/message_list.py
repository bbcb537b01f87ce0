"""The console's message list: filtered, sorted, paged by keyset, and exported as CSV.

Pages are cut by a keyset on (sort column, message_id), never OFFSET: a page costs the same however deep
it is, and messages arriving meanwhile neither shift nor repeat the rows of the next page. The cursor is
the last row's (value, id), opaque to the operator but carried in the URL, so a page can be bookmarked.

Every string that leaves this module has its personal IDs masked (:func:`scrub`).
"""

from __future__ import annotations

import base64
import binascii
import csv
import io
import json
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final, Literal

from sqlalchemy import ColumnElement, and_, or_, select
from sqlalchemy.ext.asyncio import AsyncConnection

from gateway.domain.identifiers import scrub
from gateway.ops.messages import MessageLine, MessageQuery, conditions, line, parse_day
from gateway.storage.database import Database
from gateway.storage.tables import messages
from gateway.storage.timestamps import as_utc

#: Rows per page: the default, and the most a request may ask for.
PAGE_SIZE: Final = 50
MAX_PAGE_SIZE: Final = 200
#: The most rows one CSV export carries, fetched this many at a time (each batch its own short read).
EXPORT_MAX_ROWS: Final = 10_000
EXPORT_BATCH: Final = 500

#: What the list may be sorted by: URL name -> column. All are NOT NULL, so the keyset needs no NULL rule.
SORTS: Final = {
    "received": messages.c.received_at,
    "updated": messages.c.updated_at,
    "type": messages.c.message_type,
    "sender": messages.c.sender,
    "recipient": messages.c.recipient,
    "status": messages.c.status,
}
TIME_SORTS: Final = frozenset({"received", "updated"})

Direction = Literal["asc", "desc"]


@dataclass(frozen=True, slots=True)
class ListRequest:
    """What the URL asks for: the filter, the order, the page size and where the page starts."""

    query: MessageQuery
    sort: str = "received"
    direction: Direction = "desc"
    size: int = PAGE_SIZE
    after: tuple[str, str] | None = None  # (sort value, message_id) of the row before this page
    before: tuple[str, str] | None = None  # (sort value, message_id) of the row after this page

    def params(self) -> dict[str, str]:
        """The URL parameters of this filter and order (no cursor): what a link to another page, a
        column header or the export carries along."""
        q = self.query
        out = {
            "q": q.message_id,
            "case_ref": q.case_ref,
            "sender": q.sender,
            "recipient": q.recipient,
            "type": q.message_type,
            "status": q.status,
            "from": q.received_from.isoformat() if q.received_from else "",
            "to": q.received_to.isoformat() if q.received_to else "",
        }
        out = {k: v for k, v in out.items() if v}
        if (self.sort, self.direction) != ("received", "desc"):
            out |= {"sort": self.sort, "dir": self.direction}
        if self.size != PAGE_SIZE:
            out["size"] = str(self.size)
        return out

    def described(self) -> dict[str, str]:
        """The filter and order as the audit log records them."""
        return {k: v for k, v in self.params().items() if k != "size"} | {
            "sort": self.sort,
            "dir": self.direction,
        }


def encode_cursor(sort: str, value: Any, message_id: str) -> str:
    text = as_utc(value).isoformat() if isinstance(value, datetime) else str(value)
    raw = json.dumps([sort, text, message_id], separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(sort: str, token: str | None) -> tuple[str, str] | None:
    """A cursor of this sort, or None when absent, malformed or made for another sort (the list then
    starts at its first page: a cursor only positions, it grants nothing)."""
    if not token or len(token) > 400:
        return None
    try:
        raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
        made_for, value, message_id = json.loads(raw)
    except (ValueError, TypeError, binascii.Error):
        return None
    if made_for != sort or not isinstance(value, str) or not isinstance(message_id, str):
        return None
    if sort in TIME_SORTS:
        try:
            datetime.fromisoformat(value)
        except ValueError:
            return None
    return value, message_id


def _int(value: str | None, default: int, low: int, high: int) -> int:
    try:
        number = int(value or "")
    except ValueError:
        return default
    return max(low, min(high, number))


def parse_request(params: Mapping[str, str]) -> ListRequest:
    """The list request of a URL's query; anything unknown or out of range falls back to the default."""
    query = MessageQuery(
        message_id=params.get("q", "").strip()[:64],
        case_ref=params.get("case_ref", "").strip()[:64],
        sender=params.get("sender", "").strip()[:32],
        recipient=params.get("recipient", "").strip()[:32],
        message_type=params.get("type", "").strip()[:64],
        status=params.get("status", "").strip()[:16],
        received_from=parse_day(params.get("from")),
        received_to=parse_day(params.get("to")),
    )
    sort = params.get("sort", "received")
    if sort not in SORTS:
        sort = "received"
    direction: Direction = "asc" if params.get("dir") == "asc" else "desc"
    return ListRequest(
        query=query,
        sort=sort,
        direction=direction,
        size=_int(params.get("size"), PAGE_SIZE, 1, MAX_PAGE_SIZE),
        after=decode_cursor(sort, params.get("after")),
        before=decode_cursor(sort, params.get("before")) if "after" not in params else None,
    )


def _value(sort: str, text: str) -> Any:
    return as_utc(datetime.fromisoformat(text)) if sort in TIME_SORTS else text


def _beyond(sort: str, cursor: tuple[str, str], descending: bool) -> ColumnElement[bool]:
    """Rows strictly after ``cursor`` in the order (column, message_id), descending or ascending."""
    column = SORTS[sort]
    value, message_id = _value(sort, cursor[0]), cursor[1]
    if descending:
        return or_(column < value, and_(column == value, messages.c.message_id < message_id))
    return or_(column > value, and_(column == value, messages.c.message_id > message_id))


@dataclass(frozen=True, slots=True)
class Page:
    rows: list[MessageLine]
    next_cursor: str | None  # older (further in the order): ``after=``
    prev_cursor: str | None  # back towards the first page: ``before=``


async def _fetch(
    conn: AsyncConnection, request: ListRequest, cursor: tuple[str, str] | None, backwards: bool, limit: int
) -> list[Any]:
    column = SORTS[request.sort]
    descending = (request.direction == "desc") != backwards
    where = conditions(request.query)
    if cursor is not None:
        where.append(_beyond(request.sort, cursor, descending))
    order = (column.desc(), messages.c.message_id.desc()) if descending else (column, messages.c.message_id)
    stmt = select(messages).order_by(*order).limit(limit)
    if where:
        stmt = stmt.where(and_(*where))
    return list((await conn.execute(stmt)).all())


def _cursor_of(request: ListRequest, row: Any) -> str:
    return encode_cursor(request.sort, getattr(row, SORTS[request.sort].name), row.message_id)


async def page(conn: AsyncConnection, request: ListRequest) -> Page:
    """One page of the list: ``size`` rows after ``after`` (or before ``before``, read backwards and
    turned round), with the cursors of the pages on either side when there are any."""
    size = request.size
    if request.before is not None:
        rows = await _fetch(conn, request, request.before, True, size + 1)
        more_before = len(rows) > size
        rows = list(reversed(rows[:size]))
        next_cursor = _cursor_of(request, rows[-1]) if rows else None
        prev_cursor = _cursor_of(request, rows[0]) if rows and more_before else None
    else:
        rows = await _fetch(conn, request, request.after, False, size + 1)
        more = len(rows) > size
        rows = rows[:size]
        next_cursor = _cursor_of(request, rows[-1]) if rows and more else None
        prev_cursor = _cursor_of(request, rows[0]) if rows and request.after is not None else None
    return Page([line(r) for r in rows], next_cursor, prev_cursor)


# --- CSV ----------------------------------------------------------------------------------------------

CSV_COLUMNS: Final = (
    "message_id",
    "message_type",
    "sender",
    "recipient",
    "status",
    "status_reason",
    "case_ref",
    "received_at",
    "updated_at",
    "due_at",
    "delivery_count",
)


def _cell(value: Any) -> str:
    """A CSV cell: personal IDs masked, times in ISO 8601 UTC; a value a spreadsheet would take for a
    formula is quoted as text."""
    if value is None:
        return ""
    text = as_utc(value).isoformat().replace("+00:00", "Z") if isinstance(value, datetime) else str(value)
    text = scrub(text)
    return "'" + text if text[:1] in ("=", "+", "-", "@", "\t", "\r") else text


def csv_line(values: list[Any] | tuple[Any, ...]) -> bytes:
    out = io.StringIO()
    csv.writer(out, lineterminator="\r\n").writerow(values)
    return out.getvalue().encode("utf-8")


async def export(db: Database, request: ListRequest, max_rows: int | None = None) -> AsyncIterator[bytes]:
    """The CSV of the whole filtered list in its order (from the first row, whatever page was shown),
    header first, at most ``max_rows`` rows; a last line says when the cap cut it short. Each batch is
    its own short read, so a slow download holds no database connection."""
    max_rows = EXPORT_MAX_ROWS if max_rows is None else max_rows
    yield "\ufeff".encode() + csv_line(CSV_COLUMNS)  # the BOM: spreadsheets then read UTF-8 as UTF-8
    column = SORTS[request.sort].name
    cursor: tuple[str, str] | None = None
    remaining = max_rows
    while True:
        asked = min(EXPORT_BATCH, remaining + 1)
        async with db.read() as conn:
            rows = await _fetch(conn, request, cursor, False, asked)
        for row in rows[:remaining]:
            yield csv_line([_cell(getattr(row, c)) for c in CSV_COLUMNS])
        if len(rows) > remaining:
            yield csv_line([f"# cut at {max_rows} rows: narrow the filter to export the rest"])
            return
        if len(rows) < asked:
            return
        remaining -= len(rows)
        value = getattr(rows[-1], column)
        cursor = (
            as_utc(value).isoformat() if isinstance(value, datetime) else str(value),
            rows[-1].message_id,
        )
