"""Vietnamese working-day calendar and response deadlines. Pure functions, no I/O.

Working days are Monday to Friday, minus the public holidays listed per year in
``config/holidays.toml``, plus the compensatory working Saturdays listed there ("làm bù").

Deadlines
---------
A deadline spec is one of ``"<n>s"``, ``"<n>m"``, ``"<n>h"`` (a plain duration from *now*) or
``"<n>wd"`` (working days). A working-day deadline falls at the **end of the n-th working day after
the start**, local time Asia/Ho_Chi_Minh, where the end of a working day is 17:00 (the close of
office hours of state agencies; :data:`END_OF_WORKING_DAY`). The start day itself does not count,
as in the Civil Code's counting of periods in days; a start on a non-working day is treated as a
start on the next working day. So a request sent on Monday with ``"3wd"`` is due Thursday 17:00,
and one sent on Saturday is due the following Thursday 17:00.

Vietnam has kept UTC+7 without daylight saving since 1975, so when the tz database is not
installed the calendar falls back to a fixed UTC+7 offset and computes the same instants.
"""

from __future__ import annotations

import re
import tomllib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta, timezone, tzinfo
from typing import Any, Final
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

__all__ = [
    "DEFAULT_URGENT_CAP",
    "END_OF_WORKING_DAY",
    "LOCAL_TZ",
    "MAX_WORKING_DAYS",
    "CalendarCoverageError",
    "Deadline",
    "WorkingCalendar",
    "due_at",
    "from_toml_text",
    "parse_deadline",
    "parse_deadline_spec",
    "vietnam_timezone",
]

TZ_NAME: Final = "Asia/Ho_Chi_Minh"
#: End of a working day, local time: a working-day deadline falls at this time.
END_OF_WORKING_DAY: Final = time(17, 0)
#: Urgent requests (interim measures: "immediately") are due at most this long after they are sent.
DEFAULT_URGENT_CAP: Final = timedelta(hours=2)
#: Upper bound of a ``"<n>wd"`` spec, about a year and a half of working days.
MAX_WORKING_DAYS: Final = 366
#: Upper bound of a plain duration spec.
MAX_DURATION: Final = timedelta(days=31)

_SPEC: Final = re.compile(r"([1-9][0-9]{0,6})(s|m|h|wd)")
_UNIT_SECONDS: Final = {"s": 1, "m": 60, "h": 3600}
_SATURDAY: Final = 5


def vietnam_timezone(key: str = TZ_NAME) -> tzinfo:
    """The Asia/Ho_Chi_Minh zone, or a fixed UTC+7 offset when the tz database lacks it."""
    try:
        return ZoneInfo(key)
    except (ZoneInfoNotFoundError, ValueError, OSError):
        return timezone(timedelta(hours=7), "+07")


#: Local time of the calendar.
LOCAL_TZ: Final = vietnam_timezone()


class CalendarCoverageError(ValueError):
    """A strict calendar was asked about a year its holiday table does not cover."""


class WorkingCalendar:
    """Which days are working days: weekdays, minus public holidays, plus compensatory working days.

    ``years`` are the years the holiday table covers (default: the years of the given dates). For
    any other year only weekends are known: :meth:`covered` says so, and a ``strict`` calendar raises
    :class:`CalendarCoverageError` from :meth:`is_working_day` instead of guessing.
    """

    def __init__(
        self,
        holidays: Mapping[date, str],
        extra_working_days: Iterable[date] = (),
        *,
        years: Iterable[int] | None = None,
        provisional: Iterable[date] = (),
        strict: bool = False,
        end_of_day: time = END_OF_WORKING_DAY,
        tz: tzinfo = LOCAL_TZ,
    ) -> None:
        self._holidays: dict[date, str] = dict(holidays)
        self._working: frozenset[date] = frozenset(extra_working_days)
        clash = sorted(self._holidays.keys() & self._working)
        if clash:
            raise ValueError(f"both a holiday and a working day: {', '.join(map(str, clash))}")
        if years is None:
            years = {d.year for d in self._holidays} | {d.year for d in self._working}
        self._years: frozenset[int] = frozenset(years)
        self._provisional: frozenset[date] = frozenset(provisional)
        self.strict = strict
        self.end_of_day = end_of_day
        self.tz = tz

    @classmethod
    def from_toml_text(cls, text: str, *, strict: bool = False) -> WorkingCalendar:
        """Build a calendar from the text of ``config/holidays.toml``.

        ``ValueError`` (``tomllib.TOMLDecodeError`` is one) for malformed TOML, a date outside its
        year's block, a year listed twice, a date listed twice, or a working day that is not a
        Saturday or Sunday.
        """
        data = tomllib.loads(text)
        blocks = data.get("year", [])
        if not isinstance(blocks, list):
            raise ValueError("'year' must be an array of tables ([[year]])")
        holidays: dict[date, str] = {}
        working: set[date] = set()
        provisional: set[date] = set()
        years: set[int] = set()
        for index, block in enumerate(blocks):
            where = f"year[{index}]"
            if not isinstance(block, dict):
                raise ValueError(f"{where}: must be a table")
            year = block.get("year")
            if not isinstance(year, int) or isinstance(year, bool):
                raise ValueError(f"{where}: 'year' must be an integer")
            if year in years:
                raise ValueError(f"{where}: year {year} is listed twice")
            years.add(year)
            for entry in _entries(block, "holidays", year, where):
                if entry.day in holidays:
                    raise ValueError(f"{where}: {entry.day} is listed twice")
                holidays[entry.day] = entry.name
                if entry.provisional:
                    provisional.add(entry.day)
            for entry in _entries(block, "working_days", year, where):
                if entry.day.weekday() < _SATURDAY:
                    raise ValueError(f"{where}: working day {entry.day} is not a Saturday or Sunday")
                if entry.day in working:
                    raise ValueError(f"{where}: {entry.day} is listed twice")
                working.add(entry.day)
                if entry.provisional:
                    provisional.add(entry.day)
        return cls(holidays, working, years=years, provisional=provisional, strict=strict)

    @property
    def years(self) -> frozenset[int]:
        """The years the holiday table covers."""
        return self._years

    def covered(self, year: int) -> bool:
        """Whether the holiday table covers ``year``; if not, only weekends are known for it."""
        return year in self._years

    def holiday_name(self, day: date) -> str | None:
        """The name of the public holiday on ``day``, or ``None``."""
        return self._holidays.get(day)

    def is_provisional(self, day: date) -> bool:
        """Whether ``day`` is a holiday or working day not yet confirmed by an official notice."""
        return day in self._provisional

    def is_working_day(self, day: date) -> bool:
        """Monday to Friday and not a holiday, or a listed compensatory working day.

        A ``strict`` calendar raises :class:`CalendarCoverageError` for a year it does not cover.
        """
        if isinstance(day, datetime):
            raise TypeError("is_working_day takes a date; convert a datetime to local time first")
        if self.strict and day.year not in self._years:
            covered = ", ".join(map(str, sorted(self._years))) or "none"
            raise CalendarCoverageError(
                f"the holiday table does not cover {day.year} (covered: {covered}); add it to holidays.toml"
            )
        if day in self._working:
            return True
        return day.weekday() < _SATURDAY and day not in self._holidays

    def next_working_day(self, day: date) -> date:
        """The first working day strictly after ``day``."""
        day += timedelta(days=1)
        while not self.is_working_day(day):
            day += timedelta(days=1)
        return day

    def add_working_days(self, start: datetime, n: int) -> datetime:
        """The end (17:00 local) of the ``n``-th working day after ``start``'s local date.

        A start on a non-working day counts as a start on the next working day; ``n == 0`` is the
        end of the (possibly moved) start day itself. ``start`` must be timezone-aware.
        """
        if n < 0:
            raise ValueError("the number of working days cannot be negative")
        day = _local(start, self.tz).date()
        if not self.is_working_day(day):
            day = self.next_working_day(day)
        for _ in range(n):
            day = self.next_working_day(day)
        return datetime.combine(day, self.end_of_day, tzinfo=self.tz)


@dataclass(frozen=True, slots=True)
class Deadline:
    """A parsed deadline spec: a fixed duration, or a number of working days."""

    duration: timedelta | None = None
    working_days: int | None = None

    def resolve(self, now: datetime, calendar: WorkingCalendar) -> datetime:
        """The instant this deadline falls on for a request sent at ``now`` (local time)."""
        if self.working_days is not None:
            return calendar.add_working_days(now, self.working_days)
        return _local(now, calendar.tz) + (self.duration or timedelta(0))


def from_toml_text(text: str, *, strict: bool = False) -> WorkingCalendar:
    """:meth:`WorkingCalendar.from_toml_text`; an empty text gives a weekends-only calendar."""
    return WorkingCalendar.from_toml_text(text, strict=strict)


def parse_deadline_spec(spec: str) -> Deadline:
    """Parse ``"120s"``, ``"15m"``, ``"2h"`` or ``"3wd"``; ``ValueError`` for anything else.

    Amounts are positive integers without sign, spaces or leading zeros; durations are at most
    31 days and working days at most :data:`MAX_WORKING_DAYS`.
    """
    match = _SPEC.fullmatch(spec) if isinstance(spec, str) else None
    if match is None:
        raise ValueError(f"invalid deadline {spec!r}: expected e.g. '120s', '15m', '2h' or '3wd'")
    amount, unit = int(match.group(1)), match.group(2)
    if unit == "wd":
        if amount > MAX_WORKING_DAYS:
            raise ValueError(f"invalid deadline {spec!r}: at most {MAX_WORKING_DAYS} working days")
        return Deadline(working_days=amount)
    duration = timedelta(seconds=amount * _UNIT_SECONDS[unit])
    if duration > MAX_DURATION:
        raise ValueError(f"invalid deadline {spec!r}: at most {MAX_DURATION.days} days")
    return Deadline(duration=duration)


def parse_deadline(spec: str, now: datetime, calendar: WorkingCalendar) -> datetime:
    """The deadline ``spec`` sets for a request sent at ``now``, in local time.

    ``"<n>s"``/``"<n>m"``/``"<n>h"`` add a plain duration; ``"<n>wd"`` is the end of the n-th
    working day (see the module docstring). ``ValueError`` for any other spec or a naive ``now``.
    """
    return parse_deadline_spec(spec).resolve(now, calendar)


def due_at(
    now: datetime,
    spec: str,
    calendar: WorkingCalendar,
    urgent: bool,
    urgent_cap: timedelta = DEFAULT_URGENT_CAP,
) -> datetime:
    """The response deadline of a request sent at ``now`` to a partner whose deadline is ``spec``.

    An urgent request (interim measures are to be answered "immediately") is due no later than
    ``urgent_cap`` after ``now``, however long the partner's ordinary deadline is.
    """
    deadline = parse_deadline(spec, now, calendar)
    if urgent:
        if urgent_cap <= timedelta(0):
            raise ValueError("the urgent cap must be positive")
        deadline = min(deadline, _local(now, calendar.tz) + urgent_cap)
    return deadline


def reminder_at(received_at: datetime, due: datetime, lead: timedelta) -> datetime:
    """When the sender is reminded of a deadline: ``lead`` before it, but never earlier than halfway from
    acceptance to the deadline (a document due in 15 minutes is not "reminded" the moment it arrives)."""
    return due - min(lead, (due - received_at) / 2)


@dataclass(frozen=True, slots=True)
class _Entry:
    day: date
    name: str
    provisional: bool


def _entries(block: Mapping[str, Any], key: str, year: int, where: str) -> list[_Entry]:
    raw = block.get(key, [])
    if not isinstance(raw, list):
        raise ValueError(f"{where}.{key}: must be an array")
    out: list[_Entry] = []
    for index, item in enumerate(raw):
        at = f"{where}.{key}[{index}]"
        if not isinstance(item, dict):
            raise ValueError(f"{at}: must be a table {{ date = ..., name = ... }}")
        day, name, provisional = item.get("date"), item.get("name"), item.get("provisional", False)
        if not isinstance(day, date) or isinstance(day, datetime):
            raise ValueError(f"{at}: 'date' must be a TOML local date (YYYY-MM-DD)")
        if day.year != year:
            raise ValueError(f"{at}: {day} is not in {year}")
        if not isinstance(name, str) or not name.strip():
            raise ValueError(f"{at}: 'name' must be a non-empty string")
        if not isinstance(provisional, bool):
            raise ValueError(f"{at}: 'provisional' must be true or false")
        unknown = set(item) - {"date", "name", "provisional"}
        if unknown:
            raise ValueError(f"{at}: unknown keys {', '.join(sorted(unknown))}")
        out.append(_Entry(day, name, provisional))
    return out


def _local(moment: datetime, tz: tzinfo) -> datetime:
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise ValueError("a timezone-aware datetime is required")
    return moment.astimezone(tz)
