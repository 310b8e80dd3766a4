"""Provider health: one state object for what the engine knows about the provider.

Whether it can be asked (and from when again), why not, how many times in a row it
failed, whether the trouble is a rate limit (it answers) or unreachability, when polls
may start again, and how far its clock is from this computer's.
"""

from __future__ import annotations

import logging
import random
from dataclasses import dataclass
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

    def note_polls_answered(self, now: datetime) -> None:
        self.poll_failures = 0
        if self.unreachable(now):
            self.note_ok()  # it answers again

    def note_polls_stopped(self, exc: ProviderError, now: datetime) -> None:
        """A round of polls stopped by a rate limit or a provider that cannot be reached."""
        self.poll_failures += 1
        retry_after = getattr(exc, "retry_after", None)
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
