"""The calling window in the batch's own timezone, across midnight and DST changes."""

from __future__ import annotations

from datetime import UTC, datetime, time, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from app.models.window import (
    CallingWindow,
    WindowError,
    format_days,
    parse_days,
    parse_hhmm,
    parse_timezone,
)

NY = "America/New_York"
WEEKDAYS = frozenset({1, 2, 3, 4, 5})


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)


def test_open_inside_weekday_hours_in_its_own_timezone() -> None:
    window = CallingWindow(NY, time(9), time(17), WEEKDAYS)
    assert window.is_open(utc(2026, 11, 23, 14, 0))  # Mon 09:00 EST
    assert not window.is_open(utc(2026, 11, 23, 13, 59))  # 08:59
    assert not window.is_open(utc(2026, 11, 23, 22, 0))  # 17:00 closes (end excluded)
    assert not window.is_open(utc(2026, 11, 28, 15, 0))  # Saturday


def test_next_open_skips_the_weekend() -> None:
    window = CallingWindow(NY, time(9), time(17), WEEKDAYS)
    friday_evening = utc(2026, 11, 27, 23, 0)
    assert window.next_open(friday_evening) == utc(2026, 11, 30, 14, 0)


def test_dst_change_moves_the_utc_opening_not_the_local_one() -> None:
    window = CallingWindow(NY, time(9), time(17), WEEKDAYS)
    # EDT (UTC-4) on Fri 30 Oct 2026; EST (UTC-5) from Sun 1 Nov.
    assert window.next_open(utc(2026, 10, 30, 0, 0)) == utc(2026, 10, 30, 13, 0)
    assert window.next_open(utc(2026, 10, 31, 0, 0)) == utc(2026, 11, 2, 14, 0)
    spring = CallingWindow(NY, time(9), time(17), frozenset(range(1, 8)))
    assert spring.next_open(utc(2026, 3, 8, 5, 0)) == utc(2026, 3, 8, 13, 0)


def test_a_window_opening_in_the_spring_gap_opens_when_the_clock_jumps() -> None:
    window = CallingWindow(NY, time(2, 30), time(5), frozenset(range(1, 8)))
    assert window.next_open(utc(2026, 3, 8, 5, 0)) == utc(2026, 3, 8, 7, 0)  # 03:00 EDT


def test_overnight_window_belongs_to_the_day_it_opens() -> None:
    window = CallingWindow("Europe/London", time(22), time(2), frozenset({5}))  # Friday night
    assert window.is_open(utc(2026, 11, 27, 23, 30))  # Fri 23:30
    assert window.is_open(utc(2026, 11, 28, 1, 59))  # Sat 01:59, still Friday's window
    assert not window.is_open(utc(2026, 11, 28, 22, 30))  # Saturday night is not allowed
    assert window.closes_at(utc(2026, 11, 27, 23, 0)) == utc(2026, 11, 28, 2, 0)


@given(
    st.datetimes(min_value=datetime(2025, 1, 1), max_value=datetime(2028, 1, 1)),
    st.sampled_from(["America/New_York", "Europe/Berlin", "Australia/Sydney", "Asia/Kolkata"]),
    st.frozensets(st.integers(1, 7), min_size=1),
    st.integers(0, 23),
    st.integers(1, 23),
)
def test_next_open_is_open_and_nothing_earlier_is(naive, zone, days, start, length) -> None:
    now = naive.replace(tzinfo=UTC)
    window = CallingWindow(zone, time(start), time((start + length) % 24), days)
    opens = window.next_open(now)
    assert opens >= now
    assert window.is_open(opens)
    if opens > now:
        assert not window.is_open(opens - timedelta(minutes=1)) or opens - now < timedelta(
            minutes=1
        )


@pytest.mark.parametrize(
    ("text", "days"),
    [
        ("mon-fri", {1, 2, 3, 4, 5}),
        ("Mon,Wed,Sat", {1, 3, 6}),
        ("1-5", {1, 2, 3, 4, 5}),
        ("fri-mon", {5, 6, 7, 1}),
        ("sunday", {7}),
    ],
)
def test_parse_days(text: str, days: set[int]) -> None:
    assert parse_days(text) == days


@pytest.mark.parametrize("bad", ["", "funday", "8", "mon-xyz"])
def test_parse_days_refuses_with_a_reason(bad: str) -> None:
    with pytest.raises(WindowError):
        parse_days(bad)


def test_format_days() -> None:
    assert format_days({1, 2, 3, 4, 5}) == "Monday to Friday"
    assert format_days({1, 3}) == "Monday, Wednesday"
    assert format_days(set(range(1, 8))) == "Every day"


@pytest.mark.parametrize("bad", ["9:00", "24:00", "09:60", "nine", ""])
def test_parse_hhmm_refuses(bad: str) -> None:
    with pytest.raises(WindowError, match="HH:MM"):
        parse_hhmm(bad)


def test_unknown_timezone_and_empty_range_are_refused() -> None:
    with pytest.raises(WindowError, match="IANA"):
        parse_timezone("Mars/Olympus")
    with pytest.raises(WindowError, match="empty"):
        CallingWindow(NY, time(9), time(9), WEEKDAYS)
