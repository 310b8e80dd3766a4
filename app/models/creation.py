"""The rules a new batch call must meet, in one place: the service checks them before it
stores anything, the Create dialog shows them while the supervisor types, the command line
reports them all at once. Each caller turns its own input (widgets, options) into a
`CreationRequest`; nobody writes these checks again.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from datetime import datetime, timedelta

from app.models.policy import (
    MAX_ATTEMPTS_LIMIT,
    RETRY_DELAY_MAX_MINUTES,
    CallingSchedule,
    LocalHours,
    RetryPolicy,
    TimeRange,
    parse_blackout_dates,
    parse_retry_outcomes,
    parse_time_ranges,
)
from app.models.text import control_character_problem
from app.models.window import WindowError, parse_hhmm, parse_timezone

NAME_MAX = 100
CONCURRENCY_MAX = 10_000
#: A scheduled time this little in the past still counts as "now": the supervisor pressed
#: Create at 10:00:59 for 10:00, or the CLI's minute-precision time is the current minute.
SCHEDULE_GRACE = timedelta(seconds=60)


def name_problem(name: str) -> str | None:
    """Why `name` cannot be a batch call name (1 to 100 characters after trimming, no
    control characters)."""
    trimmed = name.strip()
    if not trimmed:
        return f"Enter a name (1 to {NAME_MAX} characters)."
    if len(trimmed) > NAME_MAX:
        return f"The name is {len(trimmed)} characters long; the maximum is {NAME_MAX}."
    return control_character_problem(trimmed)


@dataclass(frozen=True)
class CreationRequest:
    """Everything of a new batch call that the rules look at, as the supervisor gave it.

    Text fields are in their stored form: `time_ranges` "09:00-12:00,14:00-18:00" or
    "all day" (empty: `window_start`-`window_end`), `blackout_dates` "2026-12-25,...",
    `local_hours` "08:00-21:00" or "" for no local-hours rule, `retry_outcomes`
    "no-answer,busy,failed".
    """

    name: str
    send_type: str = "SEND_NOW"
    scheduled_at: datetime | None = None
    timezone: str = "UTC"
    window_start: str = "09:00"
    window_end: str = "18:00"
    time_ranges: str = ""
    allowed_days: frozenset[int] = field(default_factory=lambda: frozenset({1, 2, 3, 4, 5}))
    blackout_dates: str = ""
    end_at: datetime | None = None
    local_hours: str = ""
    reserved_concurrency: int = 1
    max_attempts: int = 1
    retry_delay_minutes: int = 60
    retry_outcomes: str = "no-answer,busy"

    @classmethod
    def of(cls, source: object) -> CreationRequest:
        """The request read from anything with the same field names: a new batch call
        being created, or the snapshot of a stored one (one mapping for both)."""
        values = {f.name: getattr(source, f.name) for f in fields(cls)}
        values["send_type"] = str(values["send_type"])  # a SendType (StrEnum) or its text
        return cls(**values)

    def ranges(self) -> tuple[TimeRange, ...]:
        text = self.time_ranges or f"{self.window_start}-{self.window_end}"
        return parse_time_ranges(text)

    def schedule(self) -> CallingSchedule:
        return CallingSchedule(
            self.timezone,
            self.ranges(),
            self.allowed_days,
            parse_blackout_dates(self.blackout_dates),
            self.end_at,
        )

    def local_hours_rule(self) -> LocalHours | None:
        return LocalHours.parse(self.local_hours) if self.local_hours.strip() else None

    def retry_policy(self) -> RetryPolicy:
        return RetryPolicy(
            self.max_attempts,
            timedelta(minutes=self.retry_delay_minutes),
            parse_retry_outcomes(self.retry_outcomes),
        )


def _whole(value: object, low: int, high: int) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and low <= value <= high


def creation_problems(request: CreationRequest, now: datetime) -> dict[str, str]:
    """Every rule the request breaks, by field, in the supervisor's words ({} when none)."""
    problems: dict[str, str] = {}
    problem = name_problem(request.name)
    if problem:
        problems["name"] = problem
    zone_ok = True
    try:
        zone = parse_timezone(request.timezone)
    except WindowError as e:
        problems["timezone"] = str(e)
        zone_ok = False
    ranges: tuple[TimeRange, ...] = ()
    if request.time_ranges:
        try:
            ranges = request.ranges()
        except WindowError as e:
            problems["time_ranges"] = str(e)
    else:  # the one start-end window of the simple form
        for key, text in (
            ("window_start", request.window_start),
            ("window_end", request.window_end),
        ):
            try:
                parse_hhmm(text)
            except WindowError as e:
                problems[key] = str(e)
        if not problems.keys() & {"window_start", "window_end"}:
            if parse_hhmm(request.window_start) == parse_hhmm(request.window_end):
                problems["window_end"] = "The time range is empty: start and end are the same."
            else:
                ranges = request.ranges()
    if not request.allowed_days:
        problems["allowed_days"] = "Choose at least one allowed day."
    elif not set(request.allowed_days) <= set(range(1, 8)):
        problems["allowed_days"] = "Allowed days are weekdays 1 (Monday) to 7 (Sunday)."
    try:
        blackout = parse_blackout_dates(request.blackout_dates)
    except WindowError as e:
        problems["blackout_dates"] = str(e)
        blackout = frozenset()
    if not _whole(request.reserved_concurrency, 1, CONCURRENCY_MAX):
        problems["reserved_concurrency"] = (
            f"Reserved concurrency must be a whole number from 1 to {CONCURRENCY_MAX}."
        )
    try:
        request.local_hours_rule()
    except WindowError as e:
        problems["local_hours"] = str(e)
    if not _whole(request.max_attempts, 1, MAX_ATTEMPTS_LIMIT):
        problems["max_attempts"] = (
            f"Maximum attempts must be a whole number from 1 to {MAX_ATTEMPTS_LIMIT} "
            "(1: no automatic retry)."
        )
    if not _whole(request.retry_delay_minutes, 0, RETRY_DELAY_MAX_MINUTES):
        problems["retry_delay_minutes"] = (
            f"The retry delay must be a whole number of minutes from 0 to "
            f"{RETRY_DELAY_MAX_MINUTES}."
        )
    try:
        outcomes = parse_retry_outcomes(request.retry_outcomes)
        if request.max_attempts != 1 and not outcomes:
            problems["retry_outcomes"] = (
                "Choose which outcomes are retried (no answer, busy, failed), "
                "or set the maximum attempts to 1."
            )
    except WindowError as e:
        problems["retry_outcomes"] = str(e)
    starts = now
    if request.send_type == "SCHEDULE":
        if request.scheduled_at is None:
            problems["scheduled_at"] = "A scheduled batch call needs a date and time."
        elif request.scheduled_at.tzinfo is None:
            problems["scheduled_at"] = "The scheduled time needs a timezone."
        elif request.scheduled_at < now - SCHEDULE_GRACE:
            where = ""
            if zone_ok:
                local = request.scheduled_at.astimezone(zone)
                where = f" {local:%Y-%m-%d %H:%M} ({request.timezone})"
            problems["scheduled_at"] = (
                f"The scheduled time{where} is in the past; choose a later time or Send now."
            )
        else:
            starts = max(now, request.scheduled_at)
    elif request.send_type != "SEND_NOW":
        problems["send_type"] = "Choose Send Now or Schedule."
    if request.end_at is not None:
        if request.end_at.tzinfo is None:
            problems["end_at"] = "The end date needs a timezone."
        elif request.end_at <= starts:
            problems["end_at"] = "The end date must be after the batch call starts."
        elif zone_ok and ranges and "allowed_days" not in problems:
            schedule = CallingSchedule(
                request.timezone, ranges, request.allowed_days, blackout, request.end_at
            )
            if schedule.next_open(starts) is None:
                problems["end_at"] = (
                    "No calling window opens before the end date; move the end date later."
                )
    return problems
