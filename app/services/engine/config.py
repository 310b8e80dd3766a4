"""The engine's tuning that is not a supervisor setting (see AppSettings for those)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

Clock = Callable[[], datetime]


def utcnow() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True)
class EngineConfig:
    """Tuning that is not a supervisor setting (see AppSettings for those)."""

    #: Each open call is polled at most this often.
    poll_interval_seconds: float = 3.0
    #: Polls per tick at most, how many may be in flight at once, and how long one tick
    #: waits for their answers before leaving the rest for the next tick.
    max_polls_per_tick: int = 500
    fetch_workers: int = 16
    poll_budget_seconds: float = 2.0
    queue_lookahead: int = 1000
    #: Calls started per tick at most (keeps one tick short).
    max_placements_per_tick: int = 1000
    #: A tick sends create requests for at most this long (then tracks, reconciles and
    #: writes the waiting reasons before placing more). Real seconds (the monotonic
    #: clock), whatever clock the engine is given: QA's fast clock must not shrink it.
    #: No database lock is held while a request is in flight (app.services.placements).
    place_budget_seconds: float = 1.0
    #: After a tick that used its whole placing budget, the next one starts this soon.
    lock_gap_seconds: float = 0.1
    #: With a real clock (the engine is given a `sleep`), a tick also places the calls
    #: the pacing allows within this many seconds, waiting for each one's turn, instead
    #: of leaving the slot idle until the next tick.
    pace_ahead_seconds: float = 0.5
    #: With a real clock, each start counts for the pacing this much longer than its
    #: window: the provider counts a call when its request arrives, a little after it
    #: was sent, and that delay varies (threads, connections); the guard keeps a late
    #: request and the next window's first from both landing in one of its seconds.
    pacing_guard_seconds: float = 0.03
    #: An attempt whose call id is unknown is reconciled only when it is this old, so a
    #: request the provider is still processing is never mistaken for a lost one.
    unknown_settle_seconds: float = 15.0
    #: An attempt whose create was answered with a server error (5xx) was processed by
    #: the provider: its call, if it made one, is in the Calls list within moments. It
    #: is looked up this long after the answer, then every interval; only after this
    #: many lookups found nothing, and not before `server_error_requeue_seconds` after
    #: the answer, is its recipient queued again (found: the call is adopted).
    server_error_first_lookup_seconds: float = 1.0
    server_error_lookup_interval_seconds: float = 1.5
    server_error_lookups: int = 3
    server_error_requeue_seconds: float = 4.0
    reconcile_per_tick: int = 50
    #: Reconciliation asks for the provider's calls from this long before the batch call
    #: started (and before the measured clock difference): this computer's clock may be
    #: ahead of the provider's, and a call it misses would be placed a second time.
    clock_skew_allowance_seconds: float = 600.0
    #: Transient provider errors: exponential backoff with jitter between these bounds.
    backoff_base_seconds: float = 2.0
    backoff_max_seconds: float = 60.0
    #: Beyond ring timeout + max call duration + this, an open call is settled; if the
    #: provider cannot even be asked, it gets `unreachable_grace_seconds` more.
    settle_margin_seconds: float = 60.0
    unreachable_grace_seconds: float = 600.0
    settings_refresh_seconds: float = 5.0
    lease_ttl_seconds: float = 30.0
    lease_heartbeat_seconds: float = 5.0
    #: Seed of the backoff jitter (None: unpredictable).
    seed: int | None = None
    #: From this many open calls due in one round, a provider that can list calls in
    #: bulk (Twilio's Calls list by start time and status, pages of 1,000) is asked with
    #: a few list requests instead of one request per call; calls that started longer
    #: ago than the window, or that the lists do not show, are still asked one by one.
    bulk_tracking_min_calls: int = 20
    bulk_tracking_window_seconds: float = 600.0
    bulk_tracking_max_calls: int = 5000
    #: With status callbacks, polling stays on as the safety net at this interval.
    callback_poll_interval_seconds: float = 60.0
