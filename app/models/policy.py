"""Campaign policy of SPEC section 10: calling windows with several ranges per day, all day,
blackout dates and an end date; recipient-local calling hours; automatic retries; the
per-number cap. Plain values driven by the instant they are asked about, no storage, no Qt.

Local wall times become instants through the timezone database (zoneinfo), so
daylight-saving days are never computed with fixed offsets.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from enum import StrEnum
from functools import cache
from itertools import pairwise
from zoneinfo import ZoneInfo

from app.models.window import (
    WindowError,
    format_days,
    parse_hhmm,
    parse_timezone,
    resolve_local,
)

#: The US TCPA hours, offered when recipient-local hours are turned on.
DEFAULT_LOCAL_HOURS = (time(8, 0), time(21, 0))
MAX_ATTEMPTS_LIMIT = 10
RETRY_DELAY_MAX_MINUTES = 7 * 24 * 60
_RANGE = re.compile(r"^\s*(\d{1,2}:\d{2})\s*-\s*(\d{1,2}:\d{2})\s*$")


def _hhmm(text: str) -> time:
    """HH:MM, also accepting 24:00 as the end of the day and a one-digit hour."""
    text = text.strip()
    if len(text) == 4:
        text = "0" + text
    if text == "24:00":
        return time(0, 0)
    return parse_hhmm(text)


@dataclass(frozen=True)
class TimeRange:
    """[start, end) local time; an end at or before the start runs past midnight, and
    00:00-00:00 (or 00:00-24:00) is the whole day."""

    start: time
    end: time

    @classmethod
    def parse(cls, text: str) -> TimeRange:
        match = _RANGE.match(text)
        if not match:
            raise WindowError(
                f'"{text.strip()}" is not a time range; write it as HH:MM-HH:MM (09:00-18:00).'
            )
        return cls(_hhmm(match.group(1)), _hhmm(match.group(2)))

    @property
    def minutes(self) -> int:
        start = self.start.hour * 60 + self.start.minute
        end = self.end.hour * 60 + self.end.minute
        return (end - start) % (24 * 60) or 24 * 60

    def text(self) -> str:
        end = "24:00" if self.end == time(0) and self.start == time(0) else f"{self.end:%H:%M}"
        return f"{self.start:%H:%M}-{end}"

    def opening(self, day: date, zone_name: str) -> tuple[datetime, datetime]:
        """The range that opens on `day` as UTC instants [open, close)."""
        zone = parse_timezone(zone_name)
        opens = resolve_local(datetime.combine(day, self.start), zone)
        close_day = day if self.end > self.start else day + timedelta(days=1)
        return opens, resolve_local(datetime.combine(close_day, self.end), zone)


ALL_DAY = TimeRange(time(0), time(0))


def parse_time_ranges(text: str) -> tuple[TimeRange, ...]:
    """ "09:00-12:00, 14:00-18:00" (or "all day") into ranges, checked for overlaps."""
    if text.strip().lower() in ("all day", "all-day", "allday", "24h"):
        return (ALL_DAY,)
    ranges = tuple(
        TimeRange.parse(part) for part in text.replace(";", ",").split(",") if part.strip()
    )
    check_time_ranges(ranges)
    return ranges


def check_time_ranges(ranges: Sequence[TimeRange]) -> None:
    if not ranges:
        raise WindowError("Give at least one time range (for example 09:00-18:00).")
    if len(ranges) > 1 and ALL_DAY in ranges:
        raise WindowError("An all-day window cannot have other time ranges.")
    for r in ranges:
        if r.start == r.end and r != ALL_DAY:
            raise WindowError(
                f"The time range {r.text()} is empty: its start and end are the same."
            )
    spans = sorted(
        (r.start.hour * 60 + r.start.minute, r.start.hour * 60 + r.start.minute + r.minutes)
        for r in ranges
    )
    for (_, first_end), (second_start, _) in pairwise(spans):
        if second_start < first_end:
            raise WindowError("The time ranges overlap; give each part of the day once.")
    if spans and len(spans) > 1 and spans[-1][1] > 24 * 60 + spans[0][0]:
        raise WindowError("The time ranges overlap; give each part of the day once.")


def format_time_ranges(ranges: Sequence[TimeRange]) -> str:
    if tuple(ranges) == (ALL_DAY,):
        return "All day"
    return ", ".join(r.text().replace("-", " to ") for r in ranges)


def time_ranges_text(ranges: Sequence[TimeRange]) -> str:
    """The stored form: "09:00-12:00,14:00-18:00"."""
    return ",".join(r.text() for r in ranges)


def parse_blackout_dates(text: str) -> frozenset[date]:
    """ "2026-12-25, 2027-01-01" into dates; each must be YYYY-MM-DD."""
    dates: set[date] = set()
    for part in text.replace(";", ",").split(","):
        part = part.strip()
        if not part:
            continue
        try:
            dates.add(date.fromisoformat(part))
        except ValueError:
            raise WindowError(
                f'"{part}" is not a blackout date; write dates as YYYY-MM-DD (2026-12-25).'
            ) from None
    return frozenset(dates)


def blackout_dates_text(dates: Iterable[date]) -> str:
    return ",".join(d.isoformat() for d in sorted(dates))


@dataclass(frozen=True)
class CallingSchedule:
    """When a batch call may start calls, in its own timezone: time ranges on allowed days,
    never on a blackout date (the local day a range opens on), never at or after `end_at`."""

    timezone: str
    ranges: tuple[TimeRange, ...]
    allowed_days: frozenset[int]
    blackout_dates: frozenset[date] = frozenset()
    end_at: datetime | None = None

    def __post_init__(self) -> None:
        parse_timezone(self.timezone)
        check_time_ranges(self.ranges)
        if not self.allowed_days or not self.allowed_days <= set(range(1, 8)):
            raise WindowError("Choose at least one allowed day.")
        if self.end_at is not None and self.end_at.tzinfo is None:
            raise WindowError("The end date needs a timezone.")

    @property
    def all_day(self) -> bool:
        return self.ranges == (ALL_DAY,)

    def _openings(self, day: date) -> list[tuple[datetime, datetime]]:
        if day.isoweekday() not in self.allowed_days or day in self.blackout_dates:
            return []
        found = []
        for r in self.ranges:
            opens, closes = r.opening(day, self.timezone)
            if self.end_at is not None:
                closes = min(closes, self.end_at)
            if opens < closes:
                found.append((opens, closes))
        return found

    def _local_day(self, now: datetime) -> date:
        return now.astimezone(parse_timezone(self.timezone)).date()

    def closes_at(self, now: datetime) -> datetime | None:
        """When the open range containing `now` closes (None when closed now)."""
        day = self._local_day(now)
        for d in (day - timedelta(days=1), day):
            for opens, closes in self._openings(d):
                if opens <= now < closes:
                    return closes
        return None

    def is_open(self, now: datetime) -> bool:
        return self.closes_at(now) is not None

    def expired(self, now: datetime) -> bool:
        return self.end_at is not None and now >= self.end_at

    def next_open(self, now: datetime) -> datetime | None:
        """`now` when open, else the next opening; None when it never opens again (end date
        passed, or nothing but blackout dates before it)."""
        if self.is_open(now):
            return now
        if self.expired(now):
            return None
        day = self._local_day(now)
        horizon = 370 + len(self.blackout_dates)
        for offset in range(horizon):
            for opens, _ in sorted(self._openings(day + timedelta(days=offset))):
                if opens > now:
                    return opens
            if self.end_at is not None and day + timedelta(days=offset) > self._local_day(
                self.end_at
            ):
                return None
        return None

    def open_seconds_between(self, start: datetime, end: datetime) -> float:
        """How many seconds of [start, end) the schedule is open (for the forecast)."""
        total = 0.0
        day = self._local_day(start) - timedelta(days=1)
        last = self._local_day(end)
        while day <= last:
            for opens, closes in self._openings(day):
                lo, hi = max(opens, start), min(closes, end)
                if lo < hi:
                    total += (hi - lo).total_seconds()
            day += timedelta(days=1)
        return total

    def describe(self) -> str:
        text = (
            f"{format_time_ranges(self.ranges)} {self.timezone}, {format_days(self.allowed_days)}"
        )
        if self.blackout_dates:
            text += f"; not on {', '.join(d.isoformat() for d in sorted(self.blackout_dates))}"
        if self.end_at is not None:
            local = self.end_at.astimezone(parse_timezone(self.timezone))
            text += f"; ends {local:%Y-%m-%d %H:%M}"
        return text


# --- recipient-local calling hours -------------------------------------------------------


UNKNOWN_TIMEZONE = "Etc/Unknown"


@cache
def _timezone_data() -> tuple[dict[str, tuple[str, ...]], frozenset[int]]:
    """libphonenumber's prefix -> timezones table and its country codes, loaded on first
    use: commands that never look at a number's timezones (`batchcalls list`) stay fast."""
    from phonenumbers import COUNTRY_CODE_TO_REGION_CODE, tzdata

    return tzdata.TIMEZONE_DATA, frozenset(COUNTRY_CODE_TO_REGION_CODE)


@cache
def _prefix_lengths() -> dict[str, tuple[int, ...]]:
    """For the first two digits of a number: the lengths of the timezone data's prefixes
    that start with them, longest first (a number is looked up in a few probes)."""
    lengths: dict[str, set[int]] = {}
    for prefix in _timezone_data()[0]:
        lengths.setdefault(prefix[:2], set()).add(len(prefix))
    return {key: tuple(sorted(found, reverse=True)) for key, found in lengths.items()}


_CACHE_LIMIT = 200_000
_text_cache: dict[str, str | None] = {}


def _zones_of_digits(digits: str) -> tuple[str, ...]:
    by_start = _prefix_lengths()
    lengths = by_start.get(digits[:2], ()) + by_start.get(digits[:1], ())
    for length in lengths:
        if length > len(digits):
            continue
        prefix = digits[:length]
        table, country_codes = _timezone_data()
        zones = table.get(prefix)
        if zones is not None:
            if len(zones) > 1 and int(prefix) in country_codes:
                # Only the country is known (a toll-free or mobile range): all of its
                # zones would never be inside the hours together, so the number counts
                # as having no known timezone and follows the batch's window.
                return ()
            return tuple(z for z in zones if z != UNKNOWN_TIMEZONE)
    return ()


def timezones_for_number(e164: str) -> tuple[str, ...]:
    """The timezones of an E.164 number from libphonenumber's timezone data (the longest
    matching prefix); () when none is known or only the country's whole list is."""
    return _zones_of_digits(e164[1:] if e164.startswith("+") else e164)


def stored_timezones_for_number(e164: str) -> str | None:
    """The stored form of a number's timezones ("America/Boise,America/Los_Angeles"), or
    None: what an import writes for each recipient, cached by the longest prefix the data
    could use, so a million numbers cost a few thousand lookups."""
    digits = e164[1:] if e164.startswith("+") else e164
    lengths = _prefix_lengths().get(digits[:2])
    key = digits[: lengths[0]] if lengths else digits[:1]
    try:
        return _text_cache[key]
    except KeyError:
        pass
    if len(_text_cache) >= _CACHE_LIMIT:
        _text_cache.clear()
    _text_cache[key] = text = ",".join(sorted(_zones_of_digits(key))) or None
    return text


def timezones_text(zones: Iterable[str]) -> str:
    return ",".join(sorted(zones))


def timezones_from_text(text: str | None) -> tuple[str, ...]:
    return tuple(z for z in (text or "").split(",") if z)


@dataclass(frozen=True)
class LocalHours:
    """Call a recipient only while every one of its timezones is inside [start, end)."""

    start: time = DEFAULT_LOCAL_HOURS[0]
    end: time = DEFAULT_LOCAL_HOURS[1]

    def __post_init__(self) -> None:
        if self.end <= self.start:
            raise WindowError(
                "Recipient-local hours must end after they start on the same day "
                "(for example 08:00-21:00)."
            )

    @classmethod
    def parse(cls, text: str) -> LocalHours:
        r = TimeRange.parse(text)
        return cls(r.start, r.end)

    def text(self) -> str:
        return f"{self.start:%H:%M}-{self.end:%H:%M}"

    def _inside(self, zone: str, now: datetime) -> datetime | None:
        """When the hours close in `zone` if `now` is inside them, else None."""
        local = now.astimezone(parse_timezone(zone))
        opens, closes = TimeRange(self.start, self.end).opening(local.date(), zone)
        return closes if opens <= now < closes else None

    def _next_in(self, zone: str, now: datetime) -> datetime:
        local_day = now.astimezone(parse_timezone(zone)).date()
        for offset in range(3):
            opens, closes = TimeRange(self.start, self.end).opening(
                local_day + timedelta(days=offset), zone
            )
            if now < closes:
                return max(opens, now)
        raise AssertionError("local hours open within three days")

    def is_open(self, zones: Sequence[str], now: datetime) -> bool:
        """True when every zone is inside the hours; a number with no known zone is never
        held back (it follows the batch's own window only)."""
        return all(self._inside(zone, now) is not None for zone in zones)

    def next_open(self, zones: Sequence[str], now: datetime) -> datetime | None:
        """The first instant at or after `now` when every zone is inside the hours, or None
        when they never overlap (zones too far apart for hours this short)."""
        candidate = now
        for _ in range(4 * len(zones) + 4):
            latest = max((self._next_in(zone, candidate) for zone in zones), default=candidate)
            if latest == candidate and self.is_open(zones, candidate):
                return candidate
            candidate = latest if latest > candidate else candidate + timedelta(minutes=1)
            if candidate - now > timedelta(days=3):
                return None
        return None


def next_callable(
    schedule: CallingSchedule,
    local_hours: LocalHours | None,
    zones: Sequence[str],
    now: datetime,
) -> datetime | None:
    """When a recipient with these timezones may next be called: inside the batch's
    schedule and, with a local-hours rule, inside every one of its local hours (the rule
    narrows the batch's window, never widens it). None: never again."""
    candidate: datetime | None = now
    for _ in range(64):
        if candidate is None:
            return None
        opened = schedule.next_open(candidate)
        if opened is None:
            return None
        if local_hours is None or not zones:
            return opened
        local = local_hours.next_open(zones, opened)
        if local is None:
            return None
        if local == opened:
            return opened
        candidate = local
    return None


# --- automatic retries and the per-number cap ---------------------------------------------


class RetryOutcome(StrEnum):
    """Outcomes a batch call may retry automatically."""

    NO_ANSWER = "no-answer"
    BUSY = "busy"
    FAILED = "failed"

    @property
    def display_name(self) -> str:
        return {"no-answer": "No answer", "busy": "Busy", "failed": "Failed"}[self.value]


def parse_retry_outcomes(text: str) -> frozenset[RetryOutcome]:
    found: set[RetryOutcome] = set()
    for part in text.replace(";", ",").split(","):
        token = part.strip().lower().replace("_", "-").replace(" ", "-")
        if not token:
            continue
        if token == "noanswer":
            token = "no-answer"
        try:
            found.add(RetryOutcome(token))
        except ValueError:
            raise WindowError(
                f'"{part.strip()}" is not an outcome to retry; use no-answer, busy or failed.'
            ) from None
    return frozenset(found)


def retry_outcomes_text(outcomes: Iterable[RetryOutcome]) -> str:
    return ",".join(o.value for o in RetryOutcome if o in set(outcomes))


@dataclass(frozen=True)
class RetryPolicy:
    """At most `max_attempts` calls per recipient; another one `delay` after an outcome in
    `outcomes`. One attempt (the default, and every batch call from before) never retries."""

    max_attempts: int = 1
    delay: timedelta = timedelta(minutes=60)
    outcomes: frozenset[RetryOutcome] = field(
        default_factory=lambda: frozenset({RetryOutcome.NO_ANSWER, RetryOutcome.BUSY})
    )

    def __post_init__(self) -> None:
        if not 1 <= self.max_attempts <= MAX_ATTEMPTS_LIMIT:
            raise WindowError(
                f"Maximum attempts must be a whole number from 1 to {MAX_ATTEMPTS_LIMIT}."
            )
        if not timedelta(0) <= self.delay <= timedelta(minutes=RETRY_DELAY_MAX_MINUTES):
            raise WindowError(
                f"The retry delay must be from 0 to {RETRY_DELAY_MAX_MINUTES} minutes."
            )

    def next_attempt_at(
        self, attempts_made: int, outcome: RetryOutcome, ended_at: datetime
    ) -> datetime | None:
        """When to call again after this outcome, or None when this outcome is final."""
        if attempts_made >= self.max_attempts or outcome not in self.outcomes:
            return None
        return ended_at + self.delay

    def describe(self) -> str:
        if self.max_attempts == 1:
            return "One attempt (no automatic retry)"
        minutes = int(self.delay.total_seconds() // 60)
        which = ", ".join(o.display_name.lower() for o in RetryOutcome if o in self.outcomes)
        return f"Up to {self.max_attempts} attempts, {minutes} min apart, after: {which or 'none'}"


def within_number_cap(attempts_last_24h: int, cap: int | None) -> bool:
    """SPEC 10: never more than `cap` attempts to one number in any 24 hours (None: no cap)."""
    return cap is None or attempts_last_24h < cap


@cache
def all_timezone_texts() -> tuple[str, ...]:
    """Every stored form a recipient's timezones can take (a few hundred)."""
    found = set()
    for prefix in _timezone_data()[0]:
        zones = _zones_of_digits(prefix)
        if zones:
            found.add(",".join(sorted(zones)))
    return tuple(sorted(found))


@cache
def _zone(name: str) -> ZoneInfo:
    """Kept for good: zoneinfo's own cache holds only the last few zones used."""
    return parse_timezone(name)


def open_timezone_texts(hours: LocalHours, now: datetime) -> tuple[list[str], list[str]]:
    """(open, closed): the stored timezone forms whose every zone is inside the hours at
    `now`, and the others. Each zone is looked at once, by its wall clock."""
    inside: dict[str, bool] = {}

    def is_inside(zone: str) -> bool:
        try:
            return inside[zone]
        except KeyError:
            local = now.astimezone(_zone(zone)).time()
            inside[zone] = result = hours.start <= local < hours.end
            return result

    opened: list[str] = []
    closed: list[str] = []
    for text in all_timezone_texts():
        (opened if all(is_inside(z) for z in text.split(",")) else closed).append(text)
    return opened, closed


# --- forecast -------------------------------------------------------------------------


#: A call's length (ring and talk) assumed until the batch call has outcomes of its own.
ASSUMED_CALL_SECONDS = 60.0
#: Finished recipients from which the batch call's own pace is trusted.
OBSERVED_MINIMUM = 20


@dataclass(frozen=True)
class Forecast:
    """SPEC 10: when a running batch call should finish, and how many would expire."""

    finish_at: datetime | None
    calls_left: float
    calls_per_hour: float
    #: Recipients expected to be left when the end date comes (0 without an end date).
    expiring: int = 0

    def describe(
        self,
        zone: ZoneInfo,
        count: Callable[[int], str] = "{:,}".format,
        when: Callable[[datetime], str] = "{:%a %d %b %H:%M %Z}".format,
    ) -> str:
        """ "About Mon 23 Nov 14:10 EST (about 60 calls an hour)." `count` and `when` write
        a number and the finish in the zone (the desktop passes its locale's)."""
        if self.calls_left <= 0:
            return "Finishing: only calls in progress remain."
        rate = f"about {count(round(self.calls_per_hour))} calls an hour"
        if self.finish_at is None:
            return f"No estimate: no calling window opens again ({rate})."
        text = f"About {when(self.finish_at.astimezone(zone))} ({rate})"
        if self.expiring:
            text += f"; about {count(self.expiring)} recipients would expire at the end date"
        return text + "."


def after_open_seconds(
    schedule: CallingSchedule, start: datetime, seconds: float
) -> datetime | None:
    """The instant at which the schedule has been open `seconds` from `start` (None: it
    closes for good first, or not within two years)."""
    left = seconds
    day = schedule._local_day(start) - timedelta(days=1)
    for _ in range(800):
        for opens, closes in sorted(schedule._openings(day)):
            lo = max(opens, start)
            if lo >= closes:
                continue
            span = (closes - lo).total_seconds()
            if span >= left:
                return lo + timedelta(seconds=left)
            left -= span
        day += timedelta(days=1)
        if schedule.end_at is not None and day > schedule._local_day(schedule.end_at):
            return None
    return None


def estimate_finish(
    *,
    now: datetime,
    schedule: CallingSchedule,
    left: int,
    finished: int,
    retry: RetryPolicy,
    retried_share: float,
    reserved_concurrency: int,
    calls_per_second: float,
    started_at: datetime | None,
) -> Forecast:
    """From the calling windows, the concurrency, the pacing and the outcomes so far:
    `left` recipients still to call, each needing more than one call when a share
    `retried_share` of calls ends in an outcome that is retried (up to the maximum);
    the pace is the batch call's own once it has `OBSERVED_MINIMUM` outcomes, else what
    its lines and the pacing allow with calls of `ASSUMED_CALL_SECONDS`."""
    attempts_each = sum(retried_share**k for k in range(retry.max_attempts))
    calls_left = left * attempts_each
    capacity = min(calls_per_second, reserved_concurrency / ASSUMED_CALL_SECONDS)
    rate = capacity
    if started_at is not None and finished >= OBSERVED_MINIMUM:
        open_seconds = schedule.open_seconds_between(started_at, now)
        if open_seconds > 0:
            rate = min(calls_per_second, finished * attempts_each / open_seconds)
    rate = max(rate, 1e-6)
    if calls_left <= 0:
        return Forecast(now, 0.0, rate * 3600)
    needed = calls_left / rate
    finish = after_open_seconds(schedule, now, needed)
    expiring = 0
    if finish is None and schedule.end_at is not None:
        possible = schedule.open_seconds_between(now, schedule.end_at) * rate / attempts_each
        expiring = max(0, round(left - possible))
        finish = schedule.end_at
    elif finish is not None and retry.max_attempts > 1 and retried_share > 0:
        finish += retry.delay  # the last retries wait their delay
    return Forecast(finish, calls_left, rate * 3600, expiring)
