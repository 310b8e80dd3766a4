"""The daily calling window of a batch call: allowed weekdays and a time range in its
own timezone. Daylight-saving changes are the timezone database's business (zoneinfo),
never a fixed offset's.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError, available_timezones

DAY_NAMES = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")
DAY_ABBREVIATIONS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
WEEKDAYS = frozenset({1, 2, 3, 4, 5})
_HHMM = re.compile(r"^([01]\d|2[0-3]):([0-5]\d)$")


class WindowError(ValueError):
    """A time range, weekday list or timezone that cannot be used."""


def parse_hhmm(text: str) -> time:
    match = _HHMM.match(text.strip())
    if not match:
        raise WindowError(f'"{text}" is not a time of day in HH:MM form (for example 09:00).')
    return time(int(match.group(1)), int(match.group(2)))


def parse_timezone(name: str) -> ZoneInfo:
    try:
        if not name or name != name.strip():
            raise ZoneInfoNotFoundError(name)
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise WindowError(
            f'"{name}" is not a known timezone. Use an IANA name such as America/New_York.'
        ) from None


def parse_days(text: str) -> frozenset[int]:
    """ "mon-fri", "mon,wed,sat", "1,2,3" or "1-5" into ISO weekday numbers."""
    days: set[int] = set()

    def one(token: str) -> int:
        token = token.strip().lower()
        if token.isdigit() and 1 <= int(token) <= 7:
            return int(token)
        for number, abbreviation in enumerate(DAY_ABBREVIATIONS, start=1):
            if token[:3] == abbreviation and DAY_NAMES[number - 1].lower().startswith(token):
                return number
        raise WindowError(
            f'"{token}" is not a weekday. Use mon, tue, wed, thu, fri, sat, sun or 1 to 7.'
        )

    for part in text.split(","):
        if not part.strip():
            continue
        if "-" in part:
            first, last = (one(p) for p in part.split("-", 1))
            span = (
                range(first, last + 1) if first <= last else [*range(first, 8), *range(1, last + 1)]
            )
            days.update(span)
        else:
            days.add(one(part))
    if not days:
        raise WindowError("Choose at least one allowed day.")
    return frozenset(days)


def format_days(days: frozenset[int] | set[int]) -> str:
    """Supervisor text: "Monday to Friday", "Monday, Wednesday", "Every day"."""
    ordered = sorted(days)
    if len(ordered) == 7:
        return "Every day"
    if len(ordered) > 2 and ordered == list(range(ordered[0], ordered[-1] + 1)):
        return f"{DAY_NAMES[ordered[0] - 1]} to {DAY_NAMES[ordered[-1] - 1]}"
    return ", ".join(DAY_NAMES[d - 1] for d in ordered)


def days_to_text(days: frozenset[int] | set[int]) -> str:
    return ",".join(str(d) for d in sorted(days))


def days_from_text(text: str) -> frozenset[int]:
    return frozenset(int(d) for d in text.split(",") if d)


@dataclass(frozen=True)
class CallingWindow:
    """Calls may start on `allowed_days` (ISO weekdays) between `start` and `end` local time.

    An `end` earlier than `start` is an overnight window (22:00 to 02:00); its allowed day is
    the day it opens on.
    """

    timezone: str
    start: time
    end: time
    allowed_days: frozenset[int]

    def __post_init__(self) -> None:
        parse_timezone(self.timezone)
        if self.start == self.end:
            raise WindowError("The time range is empty: its start and end are the same.")
        if not self.allowed_days or not self.allowed_days <= set(range(1, 8)):
            raise WindowError("Choose at least one allowed day.")

    @classmethod
    def from_text(cls, timezone: str, start: str, end: str, days: str) -> CallingWindow:
        return cls(timezone, parse_hhmm(start), parse_hhmm(end), days_from_text(days))

    @property
    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)

    def _opening(self, day: date) -> tuple[datetime, datetime]:
        """The window that opens on `day`, as aware UTC instants [open, close)."""
        zone = self.zone
        opens = resolve_local(datetime.combine(day, self.start), zone)
        close_day = day if self.end > self.start else day + timedelta(days=1)
        closes = resolve_local(datetime.combine(close_day, self.end), zone)
        return opens, closes

    def is_open(self, now: datetime) -> bool:
        local_day = now.astimezone(self.zone).date()
        for day in (local_day - timedelta(days=1), local_day):
            if day.isoweekday() in self.allowed_days:
                opens, closes = self._opening(day)
                if opens <= now < closes:
                    return True
        return False

    def next_open(self, now: datetime) -> datetime:
        """`now` if the window is open, else the instant (UTC) at which it next opens."""
        if self.is_open(now):
            return now
        local_day = now.astimezone(self.zone).date()
        for offset in range(0, 9):
            day = local_day + timedelta(days=offset)
            if day.isoweekday() in self.allowed_days:
                opens, _ = self._opening(day)
                if opens > now:
                    return opens
        raise AssertionError("a window with an allowed day opens within eight days")

    def closes_at(self, now: datetime) -> datetime | None:
        """When the currently open window closes (None if closed)."""
        local_day = now.astimezone(self.zone).date()
        for day in (local_day - timedelta(days=1), local_day):
            if day.isoweekday() in self.allowed_days:
                opens, closes = self._opening(day)
                if opens <= now < closes:
                    return closes
        return None

    def describe(self) -> str:
        return (
            f"{self.start:%H:%M} to {self.end:%H:%M} {self.timezone}, "
            f"{format_days(self.allowed_days)}"
        )


def resolve_local(naive: datetime, zone: ZoneInfo) -> datetime:
    """A local wall time as a UTC instant. A time that the spring change skips opens at the
    first valid instant after it; an ambiguous autumn time is its first occurrence."""
    aware = naive.replace(tzinfo=zone, fold=0)
    roundtrip = aware.astimezone(UTC).astimezone(zone).replace(tzinfo=None)
    if roundtrip == naive:
        return aware.astimezone(UTC)
    # Inside a spring-forward gap: the two folds bracket the change; walk to its first minute.
    candidate = min(aware.astimezone(UTC), naive.replace(tzinfo=zone, fold=1).astimezone(UTC))
    while candidate.astimezone(zone).replace(tzinfo=None) < naive:
        candidate += timedelta(minutes=1)
    return candidate


def common_timezones() -> list[str]:
    return sorted(tz for tz in available_timezones() if "/" in tz and not tz.startswith("Etc/"))
