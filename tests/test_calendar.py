"""The Vietnamese working-day calendar and response deadlines."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta, timezone
from pathlib import Path

import pytest

from gateway.domain.calendar import (
    DEFAULT_URGENT_CAP,
    END_OF_WORKING_DAY,
    LOCAL_TZ,
    CalendarCoverageError,
    WorkingCalendar,
    due_at,
    from_toml_text,
    parse_deadline,
    parse_deadline_spec,
    vietnam_timezone,
)

HOLIDAYS_TOML = Path(__file__).resolve().parents[1] / "config" / "holidays.toml"


@pytest.fixture(scope="module")
def cal() -> WorkingCalendar:
    return WorkingCalendar.from_toml_text(HOLIDAYS_TOML.read_text("utf-8"))


def local(year: int, month: int, day: int, hour: int = 0, minute: int = 0) -> datetime:
    return datetime(year, month, day, hour, minute, tzinfo=LOCAL_TZ)


def end_of(day: date) -> datetime:
    return datetime.combine(day, time(17, 0), tzinfo=LOCAL_TZ)


# --- the table -------------------------------------------------------------------------------


def test_the_table_covers_2025_to_2027(cal: WorkingCalendar) -> None:
    assert cal.years == {2025, 2026, 2027}
    assert all(cal.covered(y) for y in (2025, 2026, 2027))
    assert not cal.covered(2024)
    assert not cal.covered(2028)


@pytest.mark.parametrize(
    ("day", "expected"),
    [
        (date(2026, 3, 2), True),  # Monday
        (date(2026, 3, 6), True),  # Friday
        (date(2026, 3, 7), False),  # Saturday
        (date(2026, 3, 8), False),  # Sunday
        (date(2025, 6, 14), False),
        (date(2027, 6, 13), False),
    ],
)
def test_weekends_are_not_working_days(cal: WorkingCalendar, day: date, expected: bool) -> None:
    assert cal.is_working_day(day) is expected


def test_tet_2026_is_nine_days_off(cal: WorkingCalendar) -> None:
    tet = [date(2026, 2, 14) + timedelta(days=i) for i in range(9)]
    assert not any(cal.is_working_day(d) for d in tet)
    assert cal.is_working_day(date(2026, 2, 13))
    assert cal.is_working_day(date(2026, 2, 23))
    assert cal.holiday_name(date(2026, 2, 17)) == "Tết Nguyên đán (mùng 1)"


def test_tet_2025(cal: WorkingCalendar) -> None:
    assert not any(cal.is_working_day(date(2025, 1, 25) + timedelta(days=i)) for i in range(9))
    assert cal.is_working_day(date(2025, 1, 24))
    assert cal.is_working_day(date(2025, 2, 3))


@pytest.mark.parametrize("year", [2025, 2026, 2027])
def test_new_year_reunification_and_labour_day(cal: WorkingCalendar, year: int) -> None:
    for day in (date(year, 1, 1), date(year, 4, 30), date(year, 5, 1), date(year, 9, 2)):
        assert not cal.is_working_day(day), day
        assert cal.holiday_name(day)


def test_30_april_and_1_may_2026(cal: WorkingCalendar) -> None:
    assert cal.is_working_day(date(2026, 4, 29))
    assert not cal.is_working_day(date(2026, 4, 30))  # Thursday
    assert not cal.is_working_day(date(2026, 5, 1))  # Friday
    assert cal.is_working_day(date(2026, 5, 4))


def test_hung_kings_on_a_sunday_is_taken_on_monday(cal: WorkingCalendar) -> None:
    assert date(2026, 4, 26).weekday() == 6
    assert cal.holiday_name(date(2026, 4, 26))
    assert not cal.is_working_day(date(2026, 4, 27))


def test_national_day_takes_an_adjacent_day(cal: WorkingCalendar) -> None:
    assert not cal.is_working_day(date(2025, 9, 1))
    assert not cal.is_working_day(date(2026, 9, 1))
    assert not cal.is_working_day(date(2027, 9, 3))
    assert cal.is_working_day(date(2027, 9, 1))


def test_compensatory_working_saturdays_count(cal: WorkingCalendar) -> None:
    # 2025: Friday 2 May off, worked on Saturday 26 April; 2026: Monday 31 August for Saturday 22 August.
    assert cal.is_working_day(date(2025, 4, 26))
    assert not cal.is_working_day(date(2025, 5, 2))
    assert cal.is_working_day(date(2026, 8, 22))
    assert not cal.is_working_day(date(2026, 8, 31))
    assert cal.holiday_name(date(2026, 8, 22)) is None


def test_2027_estimates_are_flagged_provisional(cal: WorkingCalendar) -> None:
    assert cal.is_provisional(date(2027, 2, 6))
    assert cal.is_provisional(date(2027, 5, 3))
    assert not cal.is_working_day(date(2027, 5, 3))
    assert not cal.is_provisional(date(2026, 2, 17))


def test_a_year_outside_the_table_knows_only_weekends(cal: WorkingCalendar) -> None:
    assert not cal.covered(2028)
    assert cal.is_working_day(date(2028, 1, 3))
    assert not cal.is_working_day(date(2028, 1, 1))  # a Saturday
    assert cal.is_working_day(date(2024, 12, 31))


def test_a_strict_calendar_refuses_an_uncovered_year() -> None:
    strict = from_toml_text(HOLIDAYS_TOML.read_text("utf-8"), strict=True)
    assert strict.is_working_day(date(2026, 3, 2))
    with pytest.raises(CalendarCoverageError, match="does not cover 2028"):
        strict.is_working_day(date(2028, 3, 1))
    with pytest.raises(CalendarCoverageError):
        strict.add_working_days(local(2027, 12, 30, 9, 0), 3)


def test_an_empty_table_is_weekends_only() -> None:
    empty = from_toml_text("")
    assert empty.years == frozenset()
    assert not empty.covered(2026)
    assert empty.is_working_day(date(2026, 2, 17))


def test_the_constructor_takes_plain_collections() -> None:
    cal = WorkingCalendar({date(2026, 1, 1): "Tết Dương lịch"}, {date(2026, 1, 10)})
    assert cal.covered(2026)
    assert not cal.is_working_day(date(2026, 1, 1))
    assert cal.is_working_day(date(2026, 1, 10))
    with pytest.raises(ValueError, match="both a holiday and a working day"):
        WorkingCalendar({date(2026, 1, 10): "x"}, {date(2026, 1, 10)})


def test_is_working_day_takes_dates_not_datetimes(cal: WorkingCalendar) -> None:
    with pytest.raises(TypeError):
        cal.is_working_day(local(2026, 3, 2, 10, 0))


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[[year]]\nyear = 2026\nholidays = [{ date = 2025-01-01, name = 'x' }]", "not in 2026"),
        ("[[year]]\nyear = 2026\n[[year]]\nyear = 2026", "listed twice"),
        ("[[year]]\nyear = 2026\nworking_days = [{ date = 2026-03-02, name = 'x' }]", "not a Saturday"),
        ("[[year]]\nyear = 2026\nholidays = [{ date = '2026-01-01', name = 'x' }]", "local date"),
        ("[[year]]\nyear = 2026\nholidays = [{ date = 2026-01-01 }]", "name"),
        ("[[year]]\nyear = 2026\nholidays = [{ date = 2026-01-01, name = 'x', day_off = true }]", "unknown"),
        ("[[year]]\nyear = '2026'", "integer"),
        ("year = 2026", "array of tables"),
        ("[[year]\n", "Expected"),
    ],
)
def test_a_broken_table_is_refused(text: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        WorkingCalendar.from_toml_text(text)


# --- adding working days -----------------------------------------------------------------------


def test_three_working_days_end_at_17_00_local(cal: WorkingCalendar) -> None:
    assert time(17, 0) == END_OF_WORKING_DAY
    assert cal.add_working_days(local(2026, 3, 2, 9, 30), 3) == end_of(date(2026, 3, 5))


def test_the_weekend_is_skipped(cal: WorkingCalendar) -> None:
    assert cal.add_working_days(local(2026, 3, 5, 16, 0), 3) == end_of(date(2026, 3, 10))


def test_add_working_days_across_tet(cal: WorkingCalendar) -> None:
    # Thursday 12 February 2026: Friday the 13th is day 1, then nine days of Tết, then 23 and 24 February.
    assert cal.add_working_days(local(2026, 2, 12, 10, 0), 3) == end_of(date(2026, 2, 24))


def test_a_start_on_a_non_working_day_counts_from_the_next_working_day(cal: WorkingCalendar) -> None:
    # Saturday during Tết: as if sent on Monday 23 February.
    assert cal.add_working_days(local(2026, 2, 14, 3, 0), 3) == end_of(date(2026, 2, 26))
    assert cal.add_working_days(local(2026, 3, 7, 12, 0), 1) == end_of(date(2026, 3, 10))
    assert cal.add_working_days(local(2026, 3, 7, 12, 0), 0) == end_of(date(2026, 3, 9))


def test_a_compensatory_saturday_is_counted(cal: WorkingCalendar) -> None:
    # Friday 21 August 2026 + 1 is Saturday 22 August, a working day.
    assert cal.add_working_days(local(2026, 8, 21, 10, 0), 1) == end_of(date(2026, 8, 22))
    # Then Monday 31 August, 1 and 2 September are off.
    assert cal.add_working_days(local(2026, 8, 28, 10, 0), 1) == end_of(date(2026, 9, 3))


def test_the_start_is_read_in_local_time(cal: WorkingCalendar) -> None:
    # 18:00 UTC on Friday 6 March is 01:00 on Saturday 7 March in Hà Nội.
    start = datetime(2026, 3, 6, 18, 0, tzinfo=UTC)
    result = cal.add_working_days(start, 1)
    assert result == end_of(date(2026, 3, 10))
    assert result.utcoffset() == timedelta(hours=7)
    assert result.astimezone(UTC) == datetime(2026, 3, 10, 10, 0, tzinfo=UTC)


def test_add_working_days_refuses_naive_or_negative(cal: WorkingCalendar) -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        cal.add_working_days(datetime(2026, 3, 2, 9, 0), 1)
    with pytest.raises(ValueError, match="negative"):
        cal.add_working_days(local(2026, 3, 2, 9, 0), -1)


def test_a_long_span_crosses_into_an_uncovered_year(cal: WorkingCalendar) -> None:
    result = cal.add_working_days(local(2027, 12, 30, 9, 0), 2)
    assert result == end_of(date(2028, 1, 3))


# --- deadline specs -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("spec", "delta"),
    [
        ("120s", timedelta(seconds=120)),
        ("1s", timedelta(seconds=1)),
        ("15m", timedelta(minutes=15)),
        ("2h", timedelta(hours=2)),
        ("744h", timedelta(days=31)),
    ],
)
def test_duration_specs(cal: WorkingCalendar, spec: str, delta: timedelta) -> None:
    now = local(2026, 2, 17, 10, 0)  # durations ignore holidays
    assert parse_deadline(spec, now, cal) == now + delta


def test_working_day_spec(cal: WorkingCalendar) -> None:
    assert parse_deadline("3wd", local(2026, 3, 2, 9, 0), cal) == end_of(date(2026, 3, 5))
    assert parse_deadline_spec("3wd").working_days == 3
    assert parse_deadline_spec("90s").duration == timedelta(seconds=90)


@pytest.mark.parametrize(
    "spec",
    [
        "",
        "3",
        "wd",
        "0s",
        "0wd",
        "-3wd",
        "+3wd",
        "03wd",
        "3 wd",
        " 3wd",
        "3wd ",
        "3WD",
        "3d",
        "3ms",
        "1.5h",
        "PT30S",
        "3wd\n",
        "３wd",
        "745h",
        "367wd",
        "99999999s",
    ],
)
def test_other_specs_are_refused(cal: WorkingCalendar, spec: str) -> None:
    with pytest.raises(ValueError):
        parse_deadline(spec, local(2026, 3, 2, 9, 0), cal)


def test_a_non_string_spec_is_refused(cal: WorkingCalendar) -> None:
    with pytest.raises(ValueError):
        parse_deadline(120, local(2026, 3, 2, 9, 0), cal)  # type: ignore[arg-type]


def test_a_naive_now_is_refused(cal: WorkingCalendar) -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        parse_deadline("120s", datetime(2026, 3, 2, 9, 0), cal)


def test_deadlines_are_in_local_time(cal: WorkingCalendar) -> None:
    now = datetime(2026, 3, 2, 2, 0, tzinfo=UTC)
    result = parse_deadline("15m", now, cal)
    assert result == now + timedelta(minutes=15)
    assert result.utcoffset() == timedelta(hours=7)


# --- due_at and the urgent cap -----------------------------------------------------------------


def test_due_at_normal(cal: WorkingCalendar) -> None:
    now = local(2026, 3, 2, 9, 0)
    assert due_at(now, "3wd", cal, urgent=False) == end_of(date(2026, 3, 5))
    assert due_at(now, "120s", cal, urgent=False) == now + timedelta(seconds=120)


def test_urgent_requests_are_capped(cal: WorkingCalendar) -> None:
    now = local(2026, 3, 2, 9, 0)
    assert timedelta(hours=2) == DEFAULT_URGENT_CAP
    assert due_at(now, "3wd", cal, urgent=True) == now + timedelta(hours=2)
    # During Tết as well: interim measures are answered immediately.
    tet = local(2026, 2, 17, 9, 0)
    assert due_at(tet, "3wd", cal, urgent=True) == tet + timedelta(hours=2)
    assert due_at(now, "3wd", cal, urgent=True, urgent_cap=timedelta(minutes=30)) == now + timedelta(
        minutes=30
    )


def test_the_cap_never_extends_a_shorter_deadline(cal: WorkingCalendar) -> None:
    now = local(2026, 3, 2, 9, 0)
    assert due_at(now, "120s", cal, urgent=True) == now + timedelta(seconds=120)


def test_the_cap_must_be_positive(cal: WorkingCalendar) -> None:
    with pytest.raises(ValueError):
        due_at(local(2026, 3, 2, 9, 0), "3wd", cal, urgent=True, urgent_cap=timedelta(0))


# --- time zone ----------------------------------------------------------------------------------


def test_local_time_is_utc_plus_7_all_year() -> None:
    for month in (1, 4, 7, 10):
        assert datetime(2026, month, 15, 12, 0, tzinfo=LOCAL_TZ).utcoffset() == timedelta(hours=7)


def test_without_the_tz_database_a_fixed_offset_is_used() -> None:
    fallback = vietnam_timezone("Nowhere/Not_A_Zone")
    assert isinstance(fallback, timezone)
    assert fallback.utcoffset(None) == timedelta(hours=7)


def test_the_fallback_zone_gives_the_same_deadlines() -> None:
    text = HOLIDAYS_TOML.read_text("utf-8")
    zoned = WorkingCalendar.from_toml_text(text)
    fixed = WorkingCalendar(
        {d: zoned.holiday_name(d) or "" for d in _holidays_2026(zoned)},
        {date(2026, 8, 22)},
        tz=timezone(timedelta(hours=7)),
    )
    start = datetime(2026, 2, 12, 3, 0, tzinfo=UTC)
    assert fixed.add_working_days(start, 3) == zoned.add_working_days(start, 3)


def _holidays_2026(cal: WorkingCalendar) -> list[date]:
    days = [date(2026, 1, 1) + timedelta(days=i) for i in range(365)]
    return [d for d in days if cal.holiday_name(d)]


def test_the_shipped_table_parses_with_names_for_every_day(cal: WorkingCalendar) -> None:
    for year in (2025, 2026, 2027):
        days = [date(year, 1, 1) + timedelta(days=i) for i in range(365)]
        named = [d for d in days if cal.holiday_name(d)]
        assert len(named) >= 11
