"""The engine's decisions, from plain values: no database, no provider, no clock of its own.

Calling windows and waiting reasons, the fair share of free lines between batch calls, the
calls-per-second pacer and the deadlines of open calls. Everything here is a function of
its arguments (or, for the pacer, of the call starts it was told about), so a test can
check it with plain values.
"""

from __future__ import annotations

import bisect
import math
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta

from app.models.policy import (
    CallingSchedule,
    LocalHours,
    TimeRange,
    parse_blackout_dates,
    parse_time_ranges,
)
from app.models.window import WindowError, days_from_text, parse_hhmm, parse_timezone


def mask_number(number: str) -> str:
    """A phone number as it may be logged: +1555***4567."""
    if len(number) <= 8:
        return number[:2] + "***"
    return f"{number[:5]}***{number[-4:]}"


class CallPacer:
    """Never more call starts than `calls_per_second` in any one-second window.

    A token bucket sized for a whole tick would allow two buckets' worth inside one
    second at the edge of a refill; this keeps the start times of the last N calls
    instead (N = whole calls per second, or one call per 1/cps seconds below 1/s), so
    the limit holds for every window, on whatever clock the engine is given.

    A start counts from the moment its request is handed to the provider (`start`, in
    the sending thread); between `reserve` (the request is handed to a sending thread)
    and then its slot is held, so whatever the delay before the send, no window of
    sends ever holds more than N. The provider creates the call when the request
    arrives, a little after the send: `guard_seconds` widens the window by more than
    that transit time varies, so that no window of the provider's sees N + 1 either.

    With `spread` (an engine that can wait in real time), starts are also spread
    evenly, one every window / N, instead of N at the start of each window: a burst
    of N at once would queue at the provider (and open N new connections at once), and
    its last request could arrive together with the next second's first. Starts up to
    `CATCH_UP` late (the tick's own work between two rounds of placing) are caught up,
    never at once: at twice the pace.
    """

    #: How late placing may be and still catch up (at twice the pace): the tick's own
    #: work between two rounds of placing does not lower the rate; after a longer pause
    #: (nothing to place), nothing is owed.
    CATCH_UP = timedelta(milliseconds=200)

    def __init__(
        self, calls_per_second: float, *, guard_seconds: float = 0.0, spread: bool = False
    ) -> None:
        if guard_seconds < 0:
            raise ValueError("The pacing guard must not be negative.")
        self._lock = threading.Lock()
        #: Starts (sends), in time order.
        self._starts: list[datetime] = []
        #: Reserved slots not sent yet (they count until they are sent or cancelled).
        self._open: dict[int, datetime] = {}
        self._next_slot = 0
        #: With `spread`: the moment of the next evenly spread start (None: any time),
        #: and of the last one handed out (catching up, the next waits half an interval).
        self._due_at: datetime | None = None
        self._last: datetime | None = None
        self.guard = timedelta(seconds=guard_seconds)
        self.spread = spread
        self.rate = 0.0
        self._top = 0.0
        self.limit = 1
        self.window = timedelta(seconds=1)
        self.interval = self.window
        self.set_rate(calls_per_second)

    def set_rate(self, calls_per_second: float, setting: float | None = None) -> None:
        """Pace at `calls_per_second`. When spreading, a rate lowered below the `setting`
        (429s, Twilio's queue) only spaces the starts further apart: the window still
        allows the setting's whole calls, so a lowered rate of 9.5 is 9.5, not 9."""
        if calls_per_second <= 0:
            raise ValueError("Calls per second must be more than 0.")
        top = max(calls_per_second, setting or calls_per_second)
        with self._lock:
            if (calls_per_second, top) == (self.rate, self._top):
                return
            self.rate, self._top = calls_per_second, top
            if calls_per_second >= 1:
                self.limit = math.floor(top if self.spread else calls_per_second)
                window = timedelta(seconds=1)
            else:
                self.limit = 1
                window = timedelta(seconds=1 / calls_per_second)
            self.window = window + self.guard
            self.interval = self.window / min(max(1.0, calls_per_second), self.limit)
            while len(self._starts) > self.limit:
                self._starts.pop(0)

    def _expire(self, now: datetime) -> None:
        expired = 0
        while expired < len(self._starts) and self._starts[expired] + self.window <= now:
            expired += 1
        del self._starts[:expired]

    def available(self, now: datetime) -> int:
        """Starts the window allows now (evenly spread or not)."""
        with self._lock:
            self._expire(now)
            return max(0, self.limit - len(self._starts) - len(self._open))

    def due(self, now: datetime) -> int:
        """Starts that may be handed to senders now: what the window allows and, when
        spreading, only those whose evenly spread slot has come."""
        with self._lock:
            self._expire(now)
            free = max(0, self.limit - len(self._starts) - len(self._open))
            return min(free, self._slots_until(now))

    def _slots_until(self, moment: datetime) -> int:
        if not self.spread:
            return self.limit
        earliest = self._earliest()
        return 1 if earliest is None or moment >= earliest else 0

    def _earliest(self) -> datetime | None:
        """The next evenly spread moment (catching up: half an interval after the last)."""
        if self._due_at is None or self._last is None:
            return None
        return max(self._due_at, self._last + self.interval / 2)

    def available_within(self, now: datetime, ahead: timedelta) -> int:
        """How many starts will be allowed from now until `ahead` later, without
        forgetting the starts that still count then (and, when spreading, only those
        whose evenly spread moment comes by then)."""
        moment = now + ahead
        with self._lock:
            still = sum(1 for start in self._starts if start + self.window > moment)
            free = max(0, self.limit - still - len(self._open))
            if not self.spread:
                return free
            due = self._due_at
            first = now if due is None or due < now - self.CATCH_UP else due
            if moment < first:
                return 0
            return min(free, 1 + math.floor((moment - first) / self.interval))

    def record(self, moment: datetime) -> None:
        """A call start (reserved and sent at once)."""
        self.start(self.reserve(moment), moment)

    def reserve(self, moment: datetime) -> int:
        """A request handed to a sender at `moment`: its slot is held from now on (and
        the next evenly spread slot comes one interval later). Returns the slot."""
        with self._lock:
            slot = self._next_slot
            self._next_slot += 1
            self._open[slot] = moment
            if self.spread:
                due = self._due_at
                # Idle (or stalled) longer than CATCH_UP: nothing is owed, start afresh.
                base = moment if due is None or due < moment - self.CATCH_UP else due
                self._due_at = base + self.interval
                self._last = moment
            return slot

    def start(self, slot: int, moment: datetime) -> None:
        """Its request is handed to the provider at `moment`: the start counts from now."""
        with self._lock:
            self._open.pop(slot, None)
            bisect.insort(self._starts, moment)

    def release(self, moment: datetime) -> None:
        """The start sent at `moment` created nothing (Twilio never processes a request
        it answers 429): it stops counting, and its evenly spread moment is given back
        (the next start comes sooner, never sooner than half an interval after the last)."""
        with self._lock:
            index = bisect.bisect_left(self._starts, moment)
            if index < len(self._starts) and self._starts[index] == moment:
                del self._starts[index]
                if self.spread and self._due_at is not None:
                    self._due_at -= self.interval

    def cancel(self, slot: int) -> None:
        """The request was not sent after all."""
        with self._lock:
            self._open.pop(slot, None)

    def frees_at(self, count: int = 1) -> datetime | None:
        """When `count` more starts will be allowed (None: already allowed, or only when
        a request handed to a sender is sent)."""
        with self._lock:
            return self._frees_at(count)

    def _frees_at(self, count: int) -> datetime | None:
        over = len(self._starts) + len(self._open) - self.limit + count
        if over <= 0:
            return None
        index = min(over, len(self._starts)) - 1
        if index < 0:
            return None
        return self._starts[index] + self.window

    def next_due(self, now: datetime) -> datetime | None:
        """When the next start may be handed to a sender (`now` if it may now; None:
        only once a request handed to a sender has been sent)."""
        with self._lock:
            self._expire(now)
            moment = now
            if len(self._starts) + len(self._open) >= self.limit:
                frees = self._frees_at(1)
                if frees is None:
                    return None
                moment = max(moment, frees)
            earliest = self._earliest() if self.spread else None
            if earliest is not None:
                moment = max(moment, earliest)
            return moment


def share_capacity(
    demands: Mapping[int, tuple[int, int]], capacity: int, rotation: int = 0
) -> dict[int, int]:
    """Fair share of `capacity` new calls between batch calls.

    `demands` maps a batch call to (calls in progress, calls it could start now). Each
    new call goes to the batch call with the fewest calls in progress counting those
    already given (ties: a rotating order), so a batch call of 100,000 recipients and one
    of 10 end up with equal lines, and leftovers go to whoever still has demand.
    """
    order = list(demands)
    if order:
        shift = rotation % len(order)
        order = order[shift:] + order[:shift]
    rank = {batch: i for i, batch in enumerate(order)}
    given = dict.fromkeys(order, 0)
    load = {batch: demands[batch][0] for batch in order}
    open_batches = [b for b in order if demands[b][1] > 0]
    while capacity > 0 and open_batches:
        batch = min(open_batches, key=lambda b: (load[b], rank[b]))
        given[batch] += 1
        load[batch] += 1
        capacity -= 1
        if given[batch] >= demands[batch][1]:
            open_batches.remove(batch)
    return {batch: n for batch, n in given.items() if n}


def outside_window_reason(window: CallingSchedule, now: datetime) -> str:
    """When it resumes comes first: the list shows the start of this on one line."""
    opens = window.next_open(now)
    if opens is None:
        return (
            "Outside the calling hours, and no window opens again before its end date "
            f"({window.describe()})."
        )
    local = opens.astimezone(parse_timezone(window.timezone))
    return f"Outside the calling hours until {local:%a %d %b %H:%M %Z} ({window.describe()})."


def local_hours_reason(
    waiting: int, hours: LocalHours, next_open: datetime | None, zone_name: str
) -> str:
    """SPEC 10: how many wait for their own local hours, and when the next one opens."""
    who = f"{waiting:,} recipient{'s' if waiting != 1 else ''} wait{'s' if waiting == 1 else ''}"
    text = (
        f"{who} for their local calling hours ({hours.start:%H:%M} to {hours.end:%H:%M} "
        "in each recipient's timezone)."
    )
    if next_open is not None:
        local = next_open.astimezone(parse_timezone(zone_name))
        text += f" The next opens {local:%a %d %b %H:%M %Z}."
    return text


def retry_wait_reason(waiting: int, next_at: datetime | None, zone_name: str) -> str:
    who = f"{waiting:,} recipient{'s are' if waiting != 1 else ' is'}"
    text = f"{who} waiting for another attempt."
    if next_at is not None:
        local = next_at.astimezone(parse_timezone(zone_name))
        text += f" The next is due {local:%a %d %b %H:%M %Z}."
    return text


def capacity_reason(plan_concurrency: int) -> str:
    return (
        f"Waiting for capacity: all {plan_concurrency} simultaneous calls of the plan are in "
        "use. Calls start as lines free up."
    )


def without_retrying(message: str) -> str:
    """A provider message without its "Retrying." (the reason says when instead)."""
    detail = message.replace("; retrying.", ".").replace("Retrying.", "")
    return " ".join(detail.split())


def provider_reason(message: str, retry_at: datetime, zone_name: str) -> str:
    try:
        local = retry_at.astimezone(parse_timezone(zone_name))
    except WindowError:
        local = retry_at
    return f"Provider unreachable: {without_retrying(message)} Next try at {local:%H:%M:%S %Z}."


def calling_hours_failure(error: WindowError) -> str:
    return f"The calling hours cannot be used: {error}"


@dataclass(frozen=True)
class RunningBatch:
    """The columns of a RUNNING batch call one tick needs."""

    id: int
    name: str
    timezone: str
    window_start: str
    window_end: str
    allowed_days: str
    reserved_concurrency: int
    pending: int
    queued: int
    in_progress: int
    waiting_reason: str | None
    agent_kind: str
    agent_value: str
    from_number: str
    # Campaign policy (SPEC 10); the defaults are a batch call from before it.
    time_ranges: str | None = None
    blackout_dates: str | None = None
    end_at: datetime | None = None
    local_hours_start: str | None = None
    local_hours_end: str | None = None
    waiting_retry: int = 0

    @property
    def has_work(self) -> bool:
        """Recipients still to call (PENDING, QUEUED, or waiting for another attempt)."""
        return bool(self.pending or self.queued or self.waiting_retry)

    @property
    def finished(self) -> bool:
        """Nothing PENDING, QUEUED, IN_PROGRESS or WAITING_RETRY: to complete."""
        return not (self.pending or self.queued or self.in_progress or self.waiting_retry)

    def window(self) -> CallingSchedule:
        """Its calling schedule: ranges, allowed days, blackout dates, end date
        (WindowError if the stored hours cannot be used)."""
        if self.time_ranges:
            ranges = parse_time_ranges(self.time_ranges)
        else:
            ranges = (TimeRange(parse_hhmm(self.window_start), parse_hhmm(self.window_end)),)
        return CallingSchedule(
            self.timezone,
            ranges,
            days_from_text(self.allowed_days),
            parse_blackout_dates(self.blackout_dates or ""),
            self.end_at,
        )

    def local_hours(self) -> LocalHours | None:
        """Its recipient-local calling hours (None: no such rule)."""
        if not (self.local_hours_start and self.local_hours_end):
            return None
        return LocalHours(parse_hhmm(self.local_hours_start), parse_hhmm(self.local_hours_end))


@dataclass(frozen=True)
class ProviderView:
    """What planning needs to know about the provider this tick."""

    #: A provider can be used (it was built).
    ready: bool
    #: Why it could not be built (when not ready).
    failure: str | None = None
    #: It cannot be asked until `retry_at` (unreachable or limiting our rate), and why.
    retry_at: datetime | None = None
    problem: str = ""

    def blocked(self, now: datetime) -> bool:
        return self.retry_at is not None and now < self.retry_at


NO_PROVIDER = "No telephony provider is set up. Choose one in Settings."


@dataclass(frozen=True)
class BatchStep:
    """What one tick does with one RUNNING batch call (see `plan_batch`)."""

    #: Make it FAILED with this reason.
    fail: str | None = None
    #: Outside its window: its QUEUED recipients go back to PENDING.
    requeue: bool = False
    #: Past its end date: the recipients not reached end EXPIRED.
    expire: bool = False
    #: Top up its queue and ask for lines.
    dial: bool = False
    #: Its waiting reason for now (placing may still change it).
    reason: str | None = None
    #: If placing finds the provider unreachable, that becomes its reason.
    provider_matters: bool = False


def plan_batch(
    batch: RunningBatch,
    window: CallingSchedule | WindowError,
    now: datetime,
    provider: ProviderView,
    reconcile_reason: str | None = None,
) -> BatchStep:
    """The step for one RUNNING batch call, in order: hours that cannot be used fail it;
    past its end date the rest expire; outside its window it waits (saying when the
    window opens); a provider that cannot
    be asked is its reason; with nothing left to call it waits for its calls (or for the
    provider to confirm some); with no provider it fails; else it dials."""
    if isinstance(window, WindowError):
        return BatchStep(fail=calling_hours_failure(window))
    if window.expired(now):
        reason = None
        if batch.in_progress:
            reason = f"Past its end date: waiting for the {batch.in_progress} calls in progress."
        return BatchStep(expire=batch.has_work, reason=reason)
    if not window.is_open(now):
        return BatchStep(requeue=bool(batch.queued), reason=outside_window_reason(window, now))
    matters = (batch.has_work or batch.in_progress > 0) and provider.ready
    if matters and provider.blocked(now):
        # The provider cannot be asked (to place or to check calls): say so, also when
        # every line is busy and only the calls in progress are waited for.
        assert provider.retry_at is not None
        reason = provider_reason(provider.problem, provider.retry_at, batch.timezone)
        return BatchStep(reason=reason, provider_matters=True)
    if not batch.has_work:
        return BatchStep(reason=reconcile_reason, provider_matters=matters)
    if not provider.ready:
        return BatchStep(fail=provider.failure or NO_PROVIDER)
    return BatchStep(dial=True, reason=reconcile_reason, provider_matters=matters)


def queue_wanted(batch: RunningBatch, lookahead: int) -> int:
    """How many recipients (PENDING, or due for another attempt) to move to QUEUED: only
    as many as can be dialed soon."""
    if batch.pending <= 0 and batch.waiting_retry <= 0:
        return 0
    return max(0, min(batch.reserved_concurrency, lookahead) - batch.queued)


def demand(batch: RunningBatch, queued: int) -> tuple[int, int] | None:
    """(calls in progress, calls it could start now) for `share_capacity`, or None."""
    free_here = batch.reserved_concurrency - batch.in_progress
    if queued and free_here > 0:
        return batch.in_progress, min(queued, free_here)
    return None


def call_deadline(
    started: datetime, ring_timeout: float, max_duration: float, margin: float
) -> datetime:
    """When a call started at `started` must have ended (else it is settled FAILED)."""
    return started + timedelta(seconds=ring_timeout + max_duration + margin)


def lookback_start(
    created: datetime,
    batch_started: datetime | None,
    allowance_seconds: float,
    clock_offset: timedelta | None,
) -> datetime:
    """From when to ask the provider for the calls of an attempt claimed at `created`
    (this computer's clock). The provider stamps calls with its own clock, which may be
    behind this one: search from the batch call's start (at most a day back), less an
    allowance and the measured clock difference."""
    offset = abs(clock_offset) if clock_offset is not None else timedelta(0)
    allowance = timedelta(seconds=allowance_seconds) + offset
    earliest = created - timedelta(hours=24)
    base = max(batch_started, earliest) if batch_started is not None else created
    return min(base, created) - allowance


def backoff_delay(
    failures: int,
    retry_after: float | None,
    base_seconds: float,
    max_seconds: float,
    jitter: float,
) -> timedelta:
    """Exponential backoff with "equal jitter" (`jitter` in [0, 1)), never shorter than
    the provider's Retry-After (itself capped at `max_seconds`)."""
    delay = min(max_seconds, base_seconds * (2 ** min(failures - 1, 20)))
    delay = delay * (0.5 + 0.5 * jitter)
    if retry_after:
        delay = max(delay, min(retry_after, max_seconds))
    return timedelta(seconds=delay)
