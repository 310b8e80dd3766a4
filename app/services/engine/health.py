"""Provider health: one state object for what the engine knows about the provider.

Whether it can be asked (and from when again), why not, how many times in a row it
failed, whether the trouble is a rate limit (it answers) or unreachability, when polls
may start again, how far its clock is from this computer's, and the rate placing may
use (`PlacingRate`: lowered by 429s and raised back gradually, capped at the account's
real rate when Twilio's `queue_time` shows it queueing our calls).
"""

from __future__ import annotations

import logging
import random
from collections import deque
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from app.services.engine.config import EngineConfig
from app.services.engine.planning import ProviderView, backoff_delay, provider_reason
from app.services.telephony import FatalProviderError, ProviderError, TransientProviderError

log = logging.getLogger(__name__)


def rate_limited(exc: ProviderError) -> bool:
    return exc.http_status == 429 or exc.code == 20429


def stops_polling(exc: ProviderError) -> bool:
    """An error after which no further provider request is worth making this round."""
    if isinstance(exc, FatalProviderError):
        return True
    if not isinstance(exc, TransientProviderError):
        return False
    never_connected = exc.http_status is None and not exc.outcome_unknown
    return rate_limited(exc) or never_connected


def maybe_placed(exc: TransientProviderError) -> bool:
    """A rate limit (429) or a connection never made (refused, host unknown, connect
    timeout: no byte of the request was sent) never created a call; a timeout, a lost
    connection or a server error may have."""
    if rate_limited(exc):
        return False
    return bool(exc.outcome_unknown) or (exc.http_status is not None and exc.http_status >= 500)


@dataclass
class PlacingRate:
    """The rate placing may use now: the setting, or less when the provider says so.

    - **429**: a 429 lowers the rate by a tenth, at most once a second however many
      429s came in it (TCP lowers its window once a round trip), and the rate climbs
      back by a tenth of the setting per second (additive increase): a rate limit slows
      dialing instead of stopping it, and stray 429s barely dent it. A `Retry-After`
      holds placing until then. (The 429'd request itself created nothing: it does not
      count for the pacing, and its recipient is tried again a second later.)
    - **queue_time**: Twilio queues calls beyond the account's real rate and dials them
      later, which could make them ring outside their window. When creates come back
      with a `queue_time` beyond `queue_slack_seconds`, the spacing of the queued calls'
      dial moments is the account's real rate: placing slows to just under it, waits
      until the queue has drained, and climbs back slowly once calls are dialed at once.
    """

    setting: float = 1.0
    increase_share_per_second: float = 0.1
    #: A second with 429s lowers the rate by this share of it.
    decrease_share: float = 0.1
    queue_slack_seconds: float = 2.0
    #: Lowered by 429s (None: not lowered).
    limited_rate: float | None = None
    #: The account's real rate measured from `queue_time` (None: no queueing seen).
    account_rate: float | None = None
    #: Placing waits until then: Retry-After, or Twilio's queue draining.
    hold_until: datetime | None = None
    queue_until: datetime | None = None
    _raised_at: datetime | None = None
    _lowered_at: datetime | None = None
    _dial_moments: deque[datetime] = field(default_factory=lambda: deque(maxlen=20))

    @property
    def floor(self) -> float:
        return min(0.1, self.setting)

    def current(self, setting: float, now: datetime) -> float:
        """The rate to pace at now: never above the setting."""
        self.setting = setting
        self._raise(now)
        rate = setting
        for cap in (self.limited_rate, self.account_rate):
            if cap is not None:
                rate = min(rate, cap)
        return max(self.floor, rate)

    def paused_until(self, now: datetime) -> datetime | None:
        """Placing waits until this moment (None: it may place now)."""
        moments = [m for m in (self.hold_until, self.queue_until) if m is not None and m > now]
        return max(moments) if moments else None

    def reason(self, now: datetime) -> str | None:
        """Why calls are placed slower than the setting, for the batch calls' details."""
        rate = self.current(self.setting, now)
        if self.account_rate is not None and rate <= self.account_rate:
            return (
                f"Dialing at {rate:.3g} calls/s, below the setting of {self.setting:g}: "
                f"Twilio queues calls beyond this account's real rate (about "
                f"{self.account_rate / 0.95:.3g} calls/s), and a queued call could ring "
                "outside its calling hours. Ask Twilio to raise the account's rate."
            )
        if self.limited_rate is not None or (self.hold_until and self.hold_until > now):
            return (
                f"Dialing at {rate:.3g} calls/s, below the setting of {self.setting:g}: "
                "Twilio is limiting the request rate (HTTP 429); the rate rises again "
                "gradually."
            )
        return None

    def created(self, now: datetime, queue_seconds: float | None) -> None:
        """A create answered: what its `queue_time` says about the account's rate."""
        if queue_seconds is None:
            return
        if queue_seconds <= self.queue_slack_seconds:
            if self._dial_moments:  # dialed at once again: the cap may lift from now
                self._dial_moments.clear()
                self._raised_at = now
            return
        # Several requests are in flight at once: their answers come in any order, so
        # the queue drains at the latest dial moment seen, and the account's rate is
        # measured over the dial moments in time order (not in the order answered).
        dial_at = now + timedelta(seconds=queue_seconds)
        self._dial_moments.append(dial_at)
        drained = dial_at - timedelta(seconds=self.queue_slack_seconds)
        if self.queue_until is None or drained > self.queue_until:
            self.queue_until = drained
        if len(self._dial_moments) >= 3:
            span = (max(self._dial_moments) - min(self._dial_moments)).total_seconds()
            if span > 0:
                measured = (len(self._dial_moments) - 1) / span
                previous = self.account_rate
                self.account_rate = max(self.floor, measured * 0.95)
                if previous is None or abs(self.account_rate - previous) > 0.2 * previous:
                    log.warning(
                        "Twilio queues calls: the account's real rate is about %.3g calls/s; "
                        "dialing slower so that no call rings outside its calling hours",
                        measured,
                    )

    def rate_limited(self, now: datetime, retry_after: float | None) -> None:
        """A create answered 429 (never processed: safe to place again). The rate is
        lowered at most once a second, as TCP lowers its window once a round trip: the
        429s of one moment are one piece of evidence, not one each."""
        self._raise(now)
        if self._lowered_at is None or now >= self._lowered_at + timedelta(seconds=1):
            base = self.limited_rate if self.limited_rate is not None else self.setting
            self.limited_rate = max(self.floor, base * (1 - self.decrease_share))
            self._raised_at = self._lowered_at = now
            log.info("rate limited by the provider: dialing at %.3g calls/s", self.limited_rate)
        if retry_after:
            until = now + timedelta(seconds=retry_after)
            if self.hold_until is None or until > self.hold_until:
                self.hold_until = until

    def _raise(self, now: datetime) -> None:
        """Additive increase: a tenth of the setting per second (a fiftieth for the
        measured account rate, which only a change at Twilio raises)."""
        if self.limited_rate is None and (self.account_rate is None or self._dial_moments):
            return
        last = self._raised_at or now
        elapsed = max(0.0, (now - last).total_seconds())
        self._raised_at = now
        step = self.setting * self.increase_share_per_second * elapsed
        if self.limited_rate is not None:
            self.limited_rate += step
            if self.limited_rate >= self.setting:
                self.limited_rate = None
        if self.account_rate is not None and not self._dial_moments:
            self.account_rate += step / 5
            if self.account_rate >= self.setting:
                self.account_rate = None


@dataclass(frozen=True)
class CreateTrouble:
    """What placing does after a create failed with a transient error."""

    #: When that recipient may be tried again (if the call surely was not created).
    next_try_at: datetime
    #: Placing stops for every batch call until `next_try_at` (else it goes on).
    stop_placing: bool


#: This many creates in a row failing with an error that may have created the call
#: (500, timeout, lost answer) make the provider count as in trouble for everyone.
CREATE_FAILURES_BEFORE_BACKOFF = 3


@dataclass
class ProviderHealth:
    """What the engine knows about the provider (see the module docstring)."""

    config: EngineConfig
    #: No request before this moment (engine clock); None: it may be asked now.
    retry_at: datetime | None = None
    failures: int = 0
    problem: str = ""
    #: The last trouble was a rate limit (the provider answers), not unreachability.
    rate_limited: bool = False
    poll_retry_at: datetime | None = None
    poll_failures: int = 0
    #: The provider's clock minus this computer's, measured from calls just placed.
    clock_offset: timedelta | None = None
    #: The rate placing may use (429s, the account's real rate).
    placing: PlacingRate = field(default_factory=PlacingRate)
    #: Creates failing in a row (see CREATE_FAILURES_BEFORE_BACKOFF).
    create_failures: int = 0

    def __post_init__(self) -> None:
        self._rng = random.Random(self.config.seed)

    def backoff(self, failures: int, retry_after: float | None) -> timedelta:
        return backoff_delay(
            failures,
            retry_after,
            self.config.backoff_base_seconds,
            self.config.backoff_max_seconds,
            self._rng.random(),
        )

    def blocked(self, now: datetime) -> bool:
        """No request to the provider before `retry_at`."""
        return self.retry_at is not None and now < self.retry_at

    def unreachable(self, now: datetime) -> bool:
        """The provider cannot be reached (not merely limiting our rate) until a retry."""
        return self.blocked(now) and not self.rate_limited

    def polls_paused(self, now: datetime) -> bool:
        return self.poll_retry_at is not None and now < self.poll_retry_at

    def view(self, ready: bool, failure: str | None) -> ProviderView:
        """The provider as planning sees it."""
        return ProviderView(ready, failure, self.retry_at, self.problem)

    def reason(self, zone_name: str) -> str:
        """The waiting reason while the provider cannot be asked."""
        assert self.retry_at is not None
        return provider_reason(self.problem, self.retry_at, zone_name)

    def note_ok(self) -> None:
        if self.failures:
            log.info("the telephony provider answers again")
        self.failures = 0
        self.retry_at = None

    def note_trouble(self, exc: ProviderError, now: datetime) -> datetime:
        """A failed request: no further one before the returned moment."""
        self.failures += 1
        retry_at = now + self.backoff(self.failures, getattr(exc, "retry_after", None))
        self.retry_at = retry_at
        self.problem = exc.message
        self.rate_limited = rate_limited(exc)
        log.warning(
            "telephony provider unreachable (%s); next try in %.1f s",
            exc.message,
            (retry_at - now).total_seconds(),
        )
        return retry_at

    def note_placed(self, now: datetime, queue_seconds: float | None) -> None:
        """A call was created: the provider answers; its queue_time is noted."""
        self.create_failures = 0
        self.note_ok()
        self.placing.created(now, queue_seconds)

    def note_create_failed(self, exc: TransientProviderError, now: datetime) -> CreateTrouble:
        """A create failed with a transient error: lower the rate on a 429 (honouring
        Retry-After), reconcile a possibly created call without holding the others up,
        and back off for everyone only when the provider looks down."""
        if rate_limited(exc):
            self.placing.rate_limited(now, exc.retry_after)
            paused = self.placing.paused_until(now)
            if paused is not None:
                return CreateTrouble(paused, stop_placing=True)
            return CreateTrouble(now + timedelta(seconds=1), stop_placing=False)
        if maybe_placed(exc):
            self.create_failures += 1
            if self.create_failures < CREATE_FAILURES_BEFORE_BACKOFF:
                log.info("a create failed (%s); that call is reconciled", exc.message)
                return CreateTrouble(now, stop_placing=False)
        return CreateTrouble(self.note_trouble(exc, now), stop_placing=True)

    def note_rate_limited(self, exc: TransientProviderError, now: datetime) -> None:
        """A 429 on another request (a lookup): placing slows, Retry-After is waited out."""
        self.placing.rate_limited(now, exc.retry_after)

    def placing_rate(self, setting: float, now: datetime) -> float:
        return self.placing.current(setting, now)

    def placing_paused(self, now: datetime) -> bool:
        return self.placing.paused_until(now) is not None

    def note_polls_answered(self, now: datetime) -> None:
        self.poll_failures = 0
        if self.unreachable(now):
            self.note_ok()  # it answers again

    def note_polls_stopped(self, exc: ProviderError, now: datetime) -> None:
        """A round of polls stopped by a rate limit or a provider that cannot be reached.
        A 429 was never processed and says nothing about the calls: the polls go on a
        second later (or after its Retry-After), the rate of placing is lowered (at most
        once a second), and the wait does not grow with each 429 in a row."""
        retry_after = getattr(exc, "retry_after", None)
        if isinstance(exc, TransientProviderError) and rate_limited(exc):
            self.poll_retry_at = now + timedelta(seconds=max(1.0, retry_after or 0.0))
            self.placing.rate_limited(now, retry_after)
            log.info("checking calls paused for a second: %s", exc.message)
            return
        self.poll_failures += 1
        self.poll_retry_at = now + self.backoff(self.poll_failures, retry_after)
        log.warning("checking calls paused: %s", exc.message)
        if isinstance(exc, TransientProviderError) and not rate_limited(exc):
            # No connection at all: the provider is unreachable, for placing calls too;
            # the batch calls say so (even when every line is busy). Polls are tried
            # again at the same moment, so the reason holds until then.
            self.poll_retry_at = self.note_trouble(exc, now)

    def note_clock_offset(self, offset: timedelta) -> None:
        """The provider's clock minus this computer's (from a call just created; Twilio's
        times have whole seconds). Reconciliation widens its search by it."""
        previous = self.clock_offset
        self.clock_offset = offset
        if abs(offset) > timedelta(seconds=60) and (
            previous is None or abs(offset - previous) > timedelta(seconds=30)
        ):
            log.warning(
                "this computer's clock differs from the telephony provider's by about %.0f s; "
                "set it right (automatic time) so calling hours and times are exact",
                -offset.total_seconds(),
            )
