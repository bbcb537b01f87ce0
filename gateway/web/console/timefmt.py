"""One way the console writes a time: in the operator's time zone (``ops.time_zone``, Vietnam by default),
to the second, with its age ("2 min ago"), and the UTC value on hover and in the ``datetime`` attribute
(which ``ops.js`` reads to keep the ages current without reloading)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo

from markupsafe import Markup


def parse(value: Any) -> datetime | None:
    """A stored time (a datetime, an ISO 8601 string, epoch seconds) as an aware UTC datetime."""
    if value is None or value == "":
        return None
    if isinstance(value, datetime):
        at = value
    elif isinstance(value, int | float):
        at = datetime.fromtimestamp(value, UTC)
    else:
        try:
            at = datetime.fromisoformat(str(value).replace("Z", "+00:00"))
        except ValueError:
            return None
    return at.replace(tzinfo=UTC) if at.tzinfo is None else at.astimezone(UTC)


def ago(seconds: float) -> str:
    """A signed age in words: "just now", "40 s ago", "3 min ago", "2 h 5 min ago", "4 d ago", "in 5 min"."""
    future = seconds < 0
    s = int(abs(seconds))
    if s < 5:
        return "just now"
    if s < 90:
        text = f"{s} s"
    elif s < 5400:
        text = f"{round(s / 60)} min"
    elif s < 172800:
        text = f"{s // 3600} h {s % 3600 // 60} min"
    else:
        text = f"{s // 86400} d"
    return f"in {text}" if future else f"{text} ago"


class TimeFormat:
    """The ``when`` filter of the console's templates, bound to the configured time zone."""

    def __init__(self, zone: str) -> None:
        self.zone = ZoneInfo(zone)

    def local(self, value: Any) -> str:
        at = parse(value)
        if at is None:
            return ""
        return at.astimezone(self.zone).strftime("%d/%m/%Y %H:%M:%S")

    def when(self, value: Any, now: datetime | None = None) -> Markup:
        at = parse(value)
        if at is None:
            return Markup('<span class="muted">–</span>')
        now = now or datetime.now(UTC)
        utc = at.strftime("%Y-%m-%dT%H:%M:%SZ")
        local = at.astimezone(self.zone)
        label = local.strftime("%d/%m/%Y %H:%M:%S")
        zone = local.tzname() or ""
        # Markup.format escapes every argument.
        return Markup(
            '<time datetime="{0}" title="{0} (UTC)">{1} <small class="tz">{2}</small>'
            ' <small class="ago">{3}</small></time>'
        ).format(utc, label, zone, ago((now - at).total_seconds()))
