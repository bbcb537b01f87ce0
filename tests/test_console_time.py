"""The console's one time format: the operator's zone, the age in words, the UTC value kept."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from gateway.settings import OpsSettings
from gateway.web.console.timefmt import TimeFormat, ago, parse

NOW = datetime(2026, 12, 7, 22, 0, 0, tzinfo=UTC)


def test_vietnam_time_with_age_and_utc_on_hover() -> None:
    html = str(TimeFormat("Asia/Ho_Chi_Minh").when("2026-12-07T21:58:00.123456+00:00", now=NOW))
    assert "08/12/2026 04:58:00" in html
    assert 'datetime="2026-12-07T21:58:00Z"' in html
    assert 'title="2026-12-07T21:58:00Z (UTC)"' in html
    assert "2 min ago" in html


@pytest.mark.parametrize(
    "value",
    [datetime(2026, 12, 7, 21, 58), "2026-12-07 21:58:00", "2026-12-07T21:58:00Z", NOW.timestamp() - 120],
)
def test_every_stored_form_reads_the_same(value: object) -> None:
    assert parse(value) == datetime(2026, 12, 7, 21, 58, tzinfo=UTC)


def test_missing_or_garbled_times_read_as_a_dash() -> None:
    fmt = TimeFormat("UTC")
    assert "–" in fmt.when(None) and "–" in fmt.when("not a time")


@pytest.mark.parametrize(
    ("seconds", "words"),
    [
        (2, "just now"),
        (40, "40 s ago"),
        (180, "3 min ago"),
        (7500, "2 h 5 min ago"),
        (400000, "4 d ago"),
        (-300, "in 5 min"),
    ],
)
def test_ages_in_words(seconds: float, words: str) -> None:
    assert ago(seconds) == words


def test_an_unknown_zone_stops_start_up() -> None:
    with pytest.raises(ValueError, match="unknown time zone"):
        OpsSettings(time_zone="Mars/Olympus")
