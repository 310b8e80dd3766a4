"""Campaign policy as plain values: windows with several ranges, all day, blackout dates,
end date, recipient-local hours (daylight-saving days from the timezone database),
retries and the per-number cap."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest

from app.models.policy import (
    ALL_DAY,
    CallingSchedule,
    LocalHours,
    RetryOutcome,
    RetryPolicy,
    TimeRange,
    format_time_ranges,
    next_callable,
    parse_blackout_dates,
    parse_retry_outcomes,
    parse_time_ranges,
    time_ranges_text,
    timezones_for_number,
    within_number_cap,
)
from app.models.window import WindowError

NY = ZoneInfo("America/New_York")
LA = ZoneInfo("America/Los_Angeles")
WEEK = frozenset(range(1, 8))


def at(zone: ZoneInfo, *args: int) -> datetime:
    return datetime(*args, tzinfo=zone).astimezone(UTC)  # type: ignore[misc]


def test_ranges_parse_format_and_round_trip() -> None:
    ranges = parse_time_ranges("09:00-12:00, 14:00-18:00")
    assert ranges == (TimeRange(time(9), time(12)), TimeRange(time(14), time(18)))
    assert time_ranges_text(ranges) == "09:00-12:00,14:00-18:00"
    assert format_time_ranges(ranges) == "09:00 to 12:00, 14:00 to 18:00"
    assert parse_time_ranges("all day") == (ALL_DAY,)
    assert parse_time_ranges("00:00-24:00") == (ALL_DAY,)
    assert format_time_ranges((ALL_DAY,)) == "All day"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("09:00-12:00,11:00-13:00", "overlap"),
        ("09:00", "HH:MM-HH:MM"),
        ("10:00-10:00", "empty"),
        ("25:00-26:00", "HH:MM"),
        ("", "at least one"),
        ("20:00-02:00,01:00-03:00", "overlap"),
    ],
)
def test_bad_ranges_say_why(text: str, message: str) -> None:
    with pytest.raises(WindowError, match=message):
        parse_time_ranges(text)


def test_two_ranges_open_and_close_in_local_time() -> None:
    schedule = CallingSchedule(
        "America/New_York", parse_time_ranges("09:00-12:00,14:00-18:00"), WEEK
    )
    assert not schedule.is_open(at(NY, 2026, 3, 2, 8, 59))
    assert schedule.is_open(at(NY, 2026, 3, 2, 9, 0))
    assert schedule.closes_at(at(NY, 2026, 3, 2, 11, 0)) == at(NY, 2026, 3, 2, 12, 0)
    assert not schedule.is_open(at(NY, 2026, 3, 2, 12, 0))
    assert schedule.next_open(at(NY, 2026, 3, 2, 12, 30)) == at(NY, 2026, 3, 2, 14, 0)
    assert schedule.next_open(at(NY, 2026, 3, 2, 18, 0)) == at(NY, 2026, 3, 3, 9, 0)


def test_daylight_saving_days_follow_the_timezone_database() -> None:
    schedule = CallingSchedule(
        "America/New_York", parse_time_ranges("09:00-12:00,14:00-18:00"), WEEK
    )
    # 2026-03-08: clocks go forward; 09:00 local is 13:00 UTC (the day before: 14:00 UTC).
    assert schedule.next_open(at(NY, 2026, 3, 7, 19, 0)) == datetime(2026, 3, 8, 13, 0, tzinfo=UTC)
    assert schedule.next_open(datetime(2026, 3, 7, 12, 0, tzinfo=UTC)) == datetime(
        2026, 3, 7, 14, 0, tzinfo=UTC
    )
    # 2026-11-01: clocks go back; 14:00 local is 19:00 UTC.
    assert schedule.next_open(at(NY, 2026, 11, 1, 12, 30)) == datetime(
        2026, 11, 1, 19, 0, tzinfo=UTC
    )
    # Open seconds on the spring day are still 7 hours of wall time.
    day = CallingSchedule("America/New_York", (ALL_DAY,), WEEK)
    start, end = at(NY, 2026, 3, 8, 0, 0), at(NY, 2026, 3, 9, 0, 0)
    assert day.open_seconds_between(start, end) == 23 * 3600


def test_blackout_dates_and_allowed_days() -> None:
    christmas = parse_blackout_dates("2026-12-25")
    schedule = CallingSchedule(
        "America/New_York", parse_time_ranges("09:00-18:00"), frozenset({1, 2, 3, 4, 5}), christmas
    )
    assert not schedule.is_open(at(NY, 2026, 12, 25, 10, 0))
    # Friday the 25th is a holiday, then the weekend: Monday the 28th.
    assert schedule.next_open(at(NY, 2026, 12, 24, 19, 0)) == at(NY, 2026, 12, 28, 9, 0)
    with pytest.raises(WindowError, match="YYYY-MM-DD"):
        parse_blackout_dates("25/12/2026")


def test_all_day_is_open_around_the_clock_but_not_on_blackouts() -> None:
    schedule = CallingSchedule("Europe/London", (ALL_DAY,), WEEK, frozenset({date(2026, 1, 1)}))
    assert schedule.is_open(datetime(2026, 1, 2, 3, 0, tzinfo=UTC))
    assert not schedule.is_open(datetime(2026, 1, 1, 23, 59, tzinfo=UTC))
    assert schedule.next_open(datetime(2026, 1, 1, 12, 0, tzinfo=UTC)) == datetime(
        2026, 1, 2, 0, 0, tzinfo=UTC
    )


def test_end_date_closes_the_window_for_good() -> None:
    end = at(NY, 2026, 3, 3, 10, 30)
    schedule = CallingSchedule(
        "America/New_York", parse_time_ranges("09:00-18:00"), WEEK, end_at=end
    )
    assert schedule.closes_at(at(NY, 2026, 3, 3, 9, 30)) == end
    assert not schedule.is_open(end)
    assert schedule.expired(end)
    assert schedule.next_open(end) is None
    assert schedule.next_open(at(NY, 2026, 3, 2, 20, 0)) == at(NY, 2026, 3, 3, 9, 0)


def test_timezones_of_numbers() -> None:
    assert timezones_for_number("+13105550100") == ("America/Los_Angeles",)
    assert timezones_for_number("+12125550100") == ("America/New_York",)
    assert set(timezones_for_number("+12085550100")) == {"America/Boise", "America/Los_Angeles"}
    # Toll-free: only the country is known, so no timezone (the batch's window only).
    assert timezones_for_number("+18005550100") == ()
    assert timezones_for_number("+882345678901") == ()


def test_local_hours_los_angeles_waits_for_eight_pacific() -> None:
    hours = LocalHours()
    la = ("America/Los_Angeles",)
    assert not hours.is_open(la, at(LA, 2026, 3, 2, 7, 59))
    assert hours.is_open(la, at(LA, 2026, 3, 2, 8, 0))
    assert hours.next_open(la, at(NY, 2026, 3, 2, 9, 0)) == at(LA, 2026, 3, 2, 8, 0)
    assert not hours.is_open(la, at(LA, 2026, 3, 2, 21, 0))


def test_two_timezones_wait_for_the_later_one() -> None:
    hours = LocalHours()
    zones = ("America/Boise", "America/Los_Angeles")
    # 08:00 in Boise is 07:00 in Los Angeles: still waiting.
    assert not hours.is_open(zones, at(ZoneInfo("America/Boise"), 2026, 3, 2, 8, 0))
    assert hours.next_open(zones, at(ZoneInfo("America/Boise"), 2026, 3, 2, 8, 0)) == at(
        LA, 2026, 3, 2, 8, 0
    )
    # In the evening the earlier one closes first: 21:00 Boise.
    assert not hours.is_open(zones, at(ZoneInfo("America/Boise"), 2026, 3, 2, 21, 0))


def test_unknown_timezone_is_never_held_back_and_far_zones_never_meet() -> None:
    hours = LocalHours()
    assert hours.is_open((), datetime(2026, 3, 2, 3, 0, tzinfo=UTC))
    short = LocalHours(time(8), time(12))
    far = ("America/New_York", "Europe/London")
    assert short.next_open(far, datetime(2026, 3, 2, tzinfo=UTC)) is None
    with pytest.raises(WindowError, match="end after"):
        LocalHours(time(21), time(8))


def test_local_hours_narrow_the_batch_window_never_widen_it() -> None:
    schedule = CallingSchedule("America/New_York", parse_time_ranges("09:00-18:00"), WEEK)
    la = ("America/Los_Angeles",)
    # Open in New York at 09:00 but 06:00 in Los Angeles: the first moment is 08:00 Pacific.
    assert next_callable(schedule, LocalHours(), la, at(NY, 2026, 3, 2, 9, 0)) == at(
        LA, 2026, 3, 2, 8, 0
    )
    # After New York closes at 18:00 (15:00 Pacific) the next is tomorrow 11:00 New York.
    assert next_callable(schedule, LocalHours(), la, at(NY, 2026, 3, 2, 18, 0)) == at(
        LA, 2026, 3, 3, 8, 0
    )
    assert next_callable(schedule, None, la, at(NY, 2026, 3, 2, 9, 0)) == at(NY, 2026, 3, 2, 9, 0)
    assert next_callable(schedule, LocalHours(), (), at(NY, 2026, 3, 2, 9, 0)) == at(
        NY, 2026, 3, 2, 9, 0
    )
    # Across the spring change: 08:00 Pacific on 2026-03-08 is 15:00 UTC.
    weekend = CallingSchedule("America/New_York", parse_time_ranges("09:00-18:00"), WEEK)
    assert next_callable(weekend, LocalHours(), la, at(NY, 2026, 3, 7, 19, 0)) == datetime(
        2026, 3, 8, 15, 0, tzinfo=UTC
    )


def test_retry_policy() -> None:
    ended = datetime(2026, 3, 2, 15, 0, tzinfo=UTC)
    policy = RetryPolicy(3, timedelta(minutes=30), parse_retry_outcomes("no-answer, busy"))
    assert policy.next_attempt_at(1, RetryOutcome.NO_ANSWER, ended) == ended + timedelta(minutes=30)
    assert policy.next_attempt_at(2, RetryOutcome.BUSY, ended) == ended + timedelta(minutes=30)
    assert policy.next_attempt_at(3, RetryOutcome.NO_ANSWER, ended) is None
    assert policy.next_attempt_at(1, RetryOutcome.FAILED, ended) is None
    assert RetryPolicy().next_attempt_at(1, RetryOutcome.NO_ANSWER, ended) is None
    assert "Up to 3 attempts, 30 min apart" in policy.describe()
    with pytest.raises(WindowError, match="1 to 10"):
        RetryPolicy(11)
    with pytest.raises(WindowError, match="no-answer, busy or failed"):
        parse_retry_outcomes("voicemail")


def test_number_cap() -> None:
    assert within_number_cap(2, 3)
    assert not within_number_cap(3, 3)
    assert within_number_cap(100, None)


# --- forecast -------------------------------------------------------------------------


def test_forecast_walks_the_calling_windows() -> None:
    from app.models.policy import estimate_finish

    weekdays = CallingSchedule(
        "America/New_York", parse_time_ranges("09:00-17:00"), frozenset({1, 2, 3, 4, 5})
    )
    monday_nine = at(NY, 2026, 11, 23, 9, 0)
    # Two lines of 60-second calls: 120 calls an hour; 1,000 calls need 8 h 20 min of
    # window: all of Monday and 20 minutes of Tuesday.
    plain = estimate_finish(
        now=monday_nine,
        schedule=weekdays,
        left=1000,
        finished=0,
        retry=RetryPolicy(),
        retried_share=0.0,
        reserved_concurrency=2,
        calls_per_second=1.0,
        started_at=None,
    )
    assert plain.calls_per_hour == 120
    assert plain.finish_at == at(NY, 2026, 11, 24, 9, 20)
    # Friday afternoon: the weekend is skipped.
    friday = estimate_finish(
        now=at(NY, 2026, 11, 27, 16, 0),
        schedule=weekdays,
        left=240,
        finished=0,
        retry=RetryPolicy(),
        retried_share=0.0,
        reserved_concurrency=2,
        calls_per_second=1.0,
        started_at=None,
    )
    assert friday.finish_at == at(NY, 2026, 11, 30, 10, 0)
    # The pacing limits too: 0.01 calls a second is 36 an hour.
    slow = estimate_finish(
        now=monday_nine,
        schedule=weekdays,
        left=36,
        finished=0,
        retry=RetryPolicy(),
        retried_share=0.0,
        reserved_concurrency=50,
        calls_per_second=0.01,
        started_at=None,
    )
    assert slow.finish_at == at(NY, 2026, 11, 23, 10, 0)


def test_forecast_uses_the_outcomes_so_far_retries_and_the_end_date() -> None:
    from app.models.policy import estimate_finish

    day = CallingSchedule("UTC", parse_time_ranges("09:00-17:00"), WEEK)
    start = datetime(2026, 11, 23, 9, 0, tzinfo=UTC)
    now = datetime(2026, 11, 23, 11, 0, tzinfo=UTC)
    # 100 recipients done in two open hours: 50 an hour, whatever the lines would allow.
    observed = estimate_finish(
        now=now,
        schedule=day,
        left=100,
        finished=100,
        retry=RetryPolicy(),
        retried_share=0.0,
        reserved_concurrency=50,
        calls_per_second=1.0,
        started_at=start,
    )
    assert observed.calls_per_hour == 50
    assert observed.finish_at == datetime(2026, 11, 23, 13, 0, tzinfo=UTC)
    # Half the calls unanswered and retried once more: 1.5 calls a recipient, plus the
    # last retry's delay.
    retried = estimate_finish(
        now=now,
        schedule=day,
        left=100,
        finished=0,
        retry=RetryPolicy(2, timedelta(minutes=30)),
        retried_share=0.5,
        reserved_concurrency=1,
        calls_per_second=1.0,
        started_at=None,
    )
    assert retried.calls_left == 150
    # 150 calls at 60 an hour: 13:30, and the last retry's 30 minutes.
    assert retried.finish_at == datetime(2026, 11, 23, 14, 0, tzinfo=UTC)
    ending = CallingSchedule(
        "UTC",
        parse_time_ranges("09:00-17:00"),
        WEEK,
        end_at=datetime(2026, 11, 23, 12, 0, tzinfo=UTC),
    )
    short = estimate_finish(
        now=now,
        schedule=ending,
        left=100,
        finished=0,
        retry=RetryPolicy(),
        retried_share=0.0,
        reserved_concurrency=1,
        calls_per_second=1.0,
        started_at=None,
    )
    assert short.expiring == 40  # one hour left at 60 an hour
    assert "about 40 recipients would expire" in short.describe(ZoneInfo("UTC"))
