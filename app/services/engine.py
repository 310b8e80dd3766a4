"""The scheduler, paced dialer and call tracker (SPEC section 5): plain Python, no Qt.

`DialerEngine.tick(now)` does one round of work with an injected clock and provider, so
a test can run a week of dialing in seconds. A round:

1. holds the "dialer" lease (only one engine per database dials; the others stand by);
2. picks up due SCHEDULED batch calls (every `pickup_interval_seconds`, or when woken);
3. reconciles call attempts whose provider call id is unknown (a crash or a lost answer
   between asking the provider and storing its answer): adopt the call the provider
   reports, or void the attempt and queue the recipient again;
4. polls the open calls (a bounded pool, a time budget, backoff on rate limits) and
   records their outcomes; a call unresolved long past its limits is settled FAILED;
5. dials: per RUNNING batch call whose calling window is open, queues a few recipients
   and starts calls within its reserved concurrency, the plan's concurrency (shared
   fairly) and the calls-per-second pacing (CallPacer: never more in any one second),
   for at most `place_budget_seconds` per tick, then leaves the database's write lock
   free for a moment (`lock_gap_seconds`) so that a Pause is never starved;
6. completes batch calls with nothing left to call and writes the visible reasons.

Every query of a tick is an indexed LIMIT (or reads the per-status counters), so a tick
costs the same with a thousand or a million pending recipients.

No call is placed after a Pause, Cancel or Delete has committed: a call is first claimed
(transaction A: recipient QUEUED -> IN_PROGRESS and a CallAttempt row without a call id),
then placed inside transaction B, which locks the batch call row (FOR SHARE on
PostgreSQL; BEGIN IMMEDIATE on SQLite, so the supervisor's UPDATE waits), checks it is
still RUNNING, asks the provider and stores the call id before committing.
"""

from __future__ import annotations

import logging
import math
import random
import socket
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field, fields, replace
from datetime import UTC, datetime, timedelta
from typing import Any, cast

from sqlalchemy import (
    Engine,
    String,
    Table,
    and_,
    bindparam,
    delete,
    event,
    func,
    insert,
    nulls_first,
    or_,
    select,
    update,
)
from sqlalchemy.orm import Session, sessionmaker

from app.models.db import make_engine, migrate
from app.models.imports import dialable, dialing_status
from app.models.recipients import move_recipients
from app.models.schema import Agent, BatchCall, CallAttempt, EngineLease, Recipient, UTCDateTime
from app.models.snapshots import SendType
from app.models.status import BatchStatus, RecipientStatus
from app.models.window import CallingWindow, WindowError, parse_timezone
from app.services.batch_calls import Actor, BatchCallService
from app.services.lease import DialerLease, write_transaction
from app.services.settings import AppSettings, load_settings
from app.services.telephony import (
    AgentSpec,
    CallOutcome,
    CallRequest,
    CallState,
    FatalProviderError,
    ProviderError,
    RecipientProviderError,
    TelephonyProvider,
    TransientProviderError,
    status_message,
)

log = logging.getLogger(__name__)

Clock = Callable[[], datetime]
ProviderFactory = Callable[[AppSettings], TelephonyProvider]

RUNNING = BatchStatus.RUNNING.value
IN_PROGRESS = RecipientStatus.IN_PROGRESS
QUEUED = RecipientStatus.QUEUED
PENDING = RecipientStatus.PENDING
ENGINE_ACTOR = Actor(user="dialer", host=socket.gethostname())

#: Settings whose change means the provider must be built again.
PROVIDER_SETTINGS = ("provider", "simulation_seed", "twilio_account_sid", "twilio_api_base")

NO_FINAL_STATUS = "No final status from the provider: the call was not reported as ended in time."
OUTCOME_UNKNOWN = "Outcome unknown: the provider never confirmed this call"


#: How long the engine waits for another writer (an import, a second desktop) before the
#: tick gives up and the next one tries again: short, so stopping the engine stays quick.
ENGINE_BUSY_TIMEOUT_MS = 5000


def utcnow() -> datetime:
    return datetime.now(UTC)


def open_engine_database(url: str) -> tuple[Engine, sessionmaker[Session]]:
    """The engine's own connections (created in the thread that ticks), schema migrated."""
    db = make_engine(url)
    if db.dialect.name == "sqlite":

        def shorter_wait(dbapi_connection: Any, _record: Any) -> None:
            cursor = dbapi_connection.cursor()
            cursor.execute(f"PRAGMA busy_timeout={ENGINE_BUSY_TIMEOUT_MS}")
            cursor.close()

        event.listen(db, "connect", shorter_wait)  # after make_engine's own pragmas
    try:
        migrate(db)
    except BaseException:
        db.dispose()
        raise
    return db, sessionmaker(db, expire_on_commit=False)


def mask_number(number: str) -> str:
    """A phone number as it may be logged: +1555***4567."""
    if len(number) <= 8:
        return number[:2] + "***"
    return f"{number[:5]}***{number[-4:]}"


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
    #: A batch call keeps at most this many recipients QUEUED (due, waiting for a line).
    queue_lookahead: int = 1000
    #: Calls started per tick at most (keeps one tick short).
    max_placements_per_tick: int = 1000
    #: Placing a call holds the database's write lock while the provider answers (the
    #: no-call-after-Pause protocol), so a tick places for at most this long, then leaves
    #: the lock free for at least `lock_gap_seconds` (longer than SQLite's longest retry
    #: sleep) so that a waiting Pause or Cancel gets in and the GUI gets its updates. It
    #: also bounds how long after its claim a call's request can be sent.
    place_budget_seconds: float = 1.0
    lock_gap_seconds: float = 0.1
    #: With a real clock (the engine is given a `sleep`), a tick also places the calls
    #: the pacing allows within this many seconds, waiting for each one's turn, instead
    #: of leaving the slot idle until the next tick.
    pace_ahead_seconds: float = 0.25
    #: An attempt whose call id is unknown is reconciled only when it is this old, so a
    #: request the provider is still processing is never mistaken for a lost one.
    unknown_settle_seconds: float = 15.0
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


@dataclass
class TickReport:
    """What one tick did, for the host to turn into signals and log lines."""

    state: str = "dialing"
    #: Batch calls whose status, counts or waiting reason changed (or that disappeared).
    changed: set[int] = field(default_factory=set)
    #: Batch calls whose recipients changed.
    recipients_changed: set[int] = field(default_factory=set)
    #: New waiting reasons ("" when cleared).
    waiting_reasons: dict[int, str] = field(default_factory=dict)
    picked_up: list[int] = field(default_factory=list)
    placed: int = 0
    settled: int = 0
    #: Placing stopped because the tick's placing time budget was used up.
    budget_used: bool = False
    #: Seconds until the next tick is useful when sooner than the usual interval
    #: (the pacing frees a slot), else None.
    next_tick_in: float | None = None

    def touch(self, batch_id: int, recipients: bool = True) -> None:
        self.changed.add(batch_id)
        if recipients:
            self.recipients_changed.add(batch_id)


class CallPacer:
    """Never more call starts than `calls_per_second` in any one-second window.

    A token bucket sized for a whole tick would allow two buckets' worth inside one
    second at the edge of a refill; this keeps the start times of the last N calls
    instead (N = whole calls per second, or one call per 1/cps seconds below 1/s), so
    the limit holds for every window, on whatever clock the engine is given.
    """

    def __init__(self, calls_per_second: float) -> None:
        self._starts: deque[datetime] = deque()
        self.rate = 0.0
        self.limit = 1
        self.window = timedelta(seconds=1)
        self.set_rate(calls_per_second)

    def set_rate(self, calls_per_second: float) -> None:
        if calls_per_second <= 0:
            raise ValueError("Calls per second must be more than 0.")
        self.rate = calls_per_second
        if calls_per_second >= 1:
            self.limit = math.floor(calls_per_second)
            self.window = timedelta(seconds=1)
        else:
            self.limit = 1
            self.window = timedelta(seconds=1 / calls_per_second)
        while len(self._starts) > self.limit:
            self._starts.popleft()

    def _expire(self, now: datetime) -> None:
        while self._starts and self._starts[0] + self.window <= now:
            self._starts.popleft()

    def available(self, now: datetime) -> int:
        self._expire(now)
        return max(0, self.limit - len(self._starts))

    def available_at(self, moment: datetime) -> int:
        """How many starts will be allowed at `moment` (later than now), without
        forgetting the starts that still count before then."""
        still = sum(1 for start in self._starts if start + self.window > moment)
        return max(0, self.limit - still)

    def record(self, moment: datetime) -> None:
        """A call start (recorded when the provider answered: the latest it can be)."""
        if self._starts and moment < self._starts[-1]:
            moment = self._starts[-1]
        self._starts.append(moment)

    def frees_at(self, count: int = 1) -> datetime | None:
        """When `count` more starts will be allowed (None: already allowed)."""
        over = len(self._starts) - self.limit + count
        if over <= 0:
            return None
        index = min(over, len(self._starts)) - 1
        return self._starts[index] + self.window


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


def outside_window_reason(window: CallingWindow, now: datetime) -> str:
    opens = window.next_open(now).astimezone(window.zone)
    return (
        f"Outside the calling hours ({window.describe()}). "
        f"Next window opens {opens:%a %d %b %H:%M %Z}."
    )


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


@dataclass(frozen=True)
class _Batch:
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


@dataclass(frozen=True)
class _Claim:
    attempt_id: int
    recipient_id: int
    batch_id: int
    attempt_number: int
    request: CallRequest
    #: When transaction A claimed it (its attempt's created_at): its request is sent
    #: within `place_budget_seconds` of this or not at all.
    claimed_at: datetime


@dataclass(frozen=True)
class _OpenAttempt:
    id: int
    recipient_id: int
    batch_id: int
    attempt_number: int
    call_id: str
    started: datetime


@dataclass
class _Polls:
    """Polls started by one tick: answers come inline (simulation) or from the pool."""

    attempts: list[_OpenAttempt]
    stop: threading.Event
    answers: list[CallState | ProviderError | None] = field(default_factory=list)
    futures: list[Future[CallState | ProviderError | None]] = field(default_factory=list)


@dataclass
class _ReconcileTrouble:
    """An attempt the provider could not be asked about: when to ask again, why, and
    when to stop waiting for an answer and settle it."""

    retry_at: datetime
    failures: int
    batch_id: int
    message: str
    give_up_at: datetime


# Hot-path statements, built once: SQLAlchemy then reuses their compiled form and cache
# key, and they run on the session's Connection (Core), not through the ORM.
_B = cast(Table, BatchCall.__table__)
_R = cast(Table, Recipient.__table__)
_A = cast(Table, CallAttempt.__table__)
_L = cast(Table, EngineLease.__table__)


def _when(name: str) -> Any:
    return bindparam(name, type_=UTCDateTime())


_BATCH_STATUS_SHARED = (
    select(_B.c.status).where(_B.c.id == bindparam("p_batch")).with_for_update(read=True)
)
#: Inside transaction B: this engine must still hold the lease (on PostgreSQL the row
#: stays locked, so a takeover waits until the call's id is stored).
_LEASE_HOLDER_SHARED = (
    select(_L.c.holder).where(_L.c.name == bindparam("p_name")).with_for_update(read=True)
)
#: Attempts whose call id is unknown, old enough to reconcile: sent (requested_at, set
#: when the answer was lost) before `p_sent_cutoff`, or, never recorded as sent (a
#: crash), claimed before `p_claim_cutoff`. The index ix_call_attempts_unresolved
#: (outcome, provider_call_id, id) reaches them directly, in id order, so the query does
#: not slow down as refused attempts (no call id, FAILED) pile up.
_UNRESOLVED_ATTEMPTS = (
    select(
        _A.c.id,
        _A.c.recipient_id,
        _A.c.batch_call_id,
        _A.c.attempt_number,
        _A.c.created_at,
        _A.c.requested_at,
    )
    .where(
        _A.c.provider_call_id.is_(None),
        _A.c.outcome.is_(None),
        or_(
            and_(_A.c.requested_at.is_not(None), _A.c.requested_at <= _when("p_sent_cutoff")),
            and_(_A.c.requested_at.is_(None), _A.c.created_at <= _when("p_claim_cutoff")),
        ),
    )
    .order_by(_A.c.id)
    .limit(bindparam("p_limit"))
)
_QUEUED_CANDIDATES = (
    select(_R.c.id, _R.c.phone_number, _R.c.name, _R.c.variables, _R.c.attempts)
    .where(_R.c.batch_call_id == bindparam("p_batch"), _R.c.status == QUEUED.value)
    .order_by(_R.c.id)
    .limit(bindparam("p_limit"))
    .with_for_update()
)
_INSERT_ATTEMPTS = insert(_A).returning(_A.c.id, _A.c.recipient_id, sort_by_parameter_order=True)
_OPEN_ATTEMPT_LOCKED = (
    select(_A.c.id)
    .where(
        _A.c.id == bindparam("p_attempt"),
        _A.c.provider_call_id.is_(None),
        _A.c.outcome.is_(None),
    )
    .with_for_update()
)
_STORE_CALL_ID = (
    update(_A)
    .where(_A.c.id == bindparam("p_attempt"))
    .values(
        provider_call_id=bindparam("p_call_id"),
        provider_status=bindparam("p_raw_status"),
        requested_at=_when("p_moment"),
        last_polled_at=_when("p_moment"),
    )
)
_STORE_RECIPIENT_CALL_ID = (
    update(_R)
    .where(_R.c.id == bindparam("p_recipient"))
    .values(provider_call_id=bindparam("p_call_id"), requested_at=_when("p_moment"))
)
_SETTLE_ATTEMPT = (
    update(_A)
    .where(_A.c.id == bindparam("p_attempt"), _A.c.outcome.is_(None))
    .values(
        outcome=bindparam("p_outcome"),
        error=bindparam("p_error"),
        last_polled_at=_when("p_now"),
        provider_status=func.coalesce(
            bindparam("p_raw_status", type_=String()), _A.c.provider_status
        ),
        answered_at=_when("p_answered_at"),
        ended_at=_when("p_ended_at"),
        duration_seconds=bindparam("p_duration"),
        answered_by=bindparam("p_answered_by"),
    )
)
_STILL_OPEN = select(_A.c.id).where(
    _A.c.id.in_(bindparam("p_ids", expanding=True)), _A.c.outcome.is_(None)
)
_POLLED = (
    update(_A)
    .where(_A.c.id.in_(bindparam("p_ids", expanding=True)), _A.c.outcome.is_(None))
    .values(
        last_polled_at=_when("p_now"),
        provider_status=func.coalesce(
            bindparam("p_raw_status", type_=String()), _A.c.provider_status
        ),
    )
)
_RECIPIENT_DETAILS = (
    update(_R)
    .where(
        _R.c.id == bindparam("p_recipient"),
        _R.c.status == bindparam("p_status"),
        _R.c.attempts == bindparam("p_attempt_number"),
    )
    .values(
        answered_at=_when("p_answered_at"),
        ended_at=_when("p_ended_at"),
        duration_seconds=bindparam("p_duration"),
        answered_by=bindparam("p_answered_by"),
        last_error=bindparam("p_error"),
        provider_call_id=bindparam("p_call_id"),
        requested_at=_when("p_requested_at"),
    )
)


class DialerEngine:
    """One dialer per database (see DialerLease); `tick()` is its only entry point."""

    def __init__(
        self,
        sessions: sessionmaker[Session],
        provider: TelephonyProvider | None = None,
        *,
        clock: Clock = utcnow,
        config: EngineConfig | None = None,
        settings_overrides: Mapping[str, Any] | None = None,
        provider_factory: ProviderFactory | None = None,
        lease: DialerLease | None = None,
        use_lease: bool = True,
        sleep: Callable[[float], object] | None = None,
    ) -> None:
        """`sleep(seconds)` waits in real time (the hosts pass one that a stop request
        cuts short); without it (a fake clock) a tick never waits."""
        if provider is None and provider_factory is None:
            raise ValueError("Give the engine a provider or a provider factory.")
        self.sessions = sessions
        self.clock = clock
        self.config = config or EngineConfig()
        self._overrides = dict(settings_overrides or {})
        unknown = set(self._overrides) - {f.name for f in fields(AppSettings)}
        if unknown:
            raise ValueError(f"Unknown setting(s): {', '.join(sorted(unknown))}.")
        self._fixed_provider = provider
        self._provider_factory = provider_factory
        self._provider: TelephonyProvider | None = provider
        self._provider_key: tuple[Any, ...] | None = None
        self._provider_error: ProviderError | None = None
        if lease is None and use_lease:
            lease = DialerLease(
                sessions,
                ttl_seconds=self.config.lease_ttl_seconds,
                heartbeat_seconds=self.config.lease_heartbeat_seconds,
            )
        self.lease = lease
        self._settings: AppSettings | None = None
        self._settings_read_at: datetime | None = None
        self.pacer = CallPacer(1.0)
        self._rng = random.Random(self.config.seed)
        self._rotation = 0
        self._next_pickup_at: datetime | None = None
        self._provider_retry_at: datetime | None = None
        self._provider_failures = 0
        self._provider_problem = ""
        #: The last trouble was a rate limit (the provider answers), not unreachability.
        self._provider_rate_limited = False
        self._poll_retry_at: datetime | None = None
        self._poll_failures = 0
        #: Attempts whose reconciliation failed: when to ask again, and why it failed.
        self._reconcile_later: dict[int, _ReconcileTrouble] = {}
        #: The provider's clock minus this computer's, measured from calls just placed.
        self._clock_offset: timedelta | None = None
        #: When the last burst of placing that used up its time budget ended.
        self._burst_ended_at: datetime | None = None
        self._stop = threading.Event()
        self._sleep = sleep
        self._pool: ThreadPoolExecutor | None = None

    # ------------------------------------------------------------------ lifecycle
    @property
    def settings(self) -> AppSettings:
        if self._settings is None:
            self._refresh_settings(self.clock(), force=True)
        assert self._settings is not None
        return self._settings

    @property
    def provider(self) -> TelephonyProvider | None:
        return self._provider

    def request_pickup(self) -> None:
        """Pick up due batch calls at the next tick (after a supervisor action), with the
        settings and credentials read again (they may just have been fixed)."""
        self._next_pickup_at = None
        self._settings_read_at = None
        self._rebuild_provider()

    def _rebuild_provider(self) -> None:
        """Build a Twilio provider again at the next tick: its credentials live in the
        keyring, which no setting change announces. (A simulation provider is kept: its
        memory of placed calls serves crash reconciliation.)"""
        if self._fixed_provider is None and getattr(self._provider, "name", "") != "simulation":
            self._provider_key = None

    def request_stop(self) -> None:
        """Stop placing calls as soon as possible (checked between calls)."""
        self._stop.set()

    def close(self) -> None:
        """Release the lease and the polling threads (the engine may not tick again).

        Never waits for a poll still in flight: stopping must stay quick (an application
        closing), and a poll's answer is only asked again at the next start."""
        self._stop.set()
        if self._pool is not None:
            self._pool.shutdown(wait=False, cancel_futures=True)
            self._pool = None
        if self.lease is not None:
            try:
                self.lease.release(self.clock())
            except Exception:  # a closing engine must not raise: the lease expires anyway
                log.warning("could not release the dialer lease; it expires by itself")
        close = getattr(self._provider, "close", None)
        if callable(close) and self._fixed_provider is None:
            close()

    # ------------------------------------------------------------------ the tick
    def tick(self, now: datetime | None = None) -> TickReport:
        """One round of work (see the module docstring). Provider trouble is handled here;
        a database error (locked, unreachable) escapes for the host to log before the next
        tick, and leaves nothing half done: every step is its own transaction."""
        now = now or self.clock()
        report = TickReport()
        if self.lease is not None:
            state = self.lease.hold(now)
            if not state.held:
                report.state = f"standby: dialing is done by {state.holder}"
                self._next_pickup_at = None  # pick up at once when we take over
                return report
        settings = self._refresh_settings(now)
        self.pacer.set_rate(settings.calls_per_second)
        provider = self._current_provider(settings)
        if self._next_pickup_at is None or now >= self._next_pickup_at:
            self.pickup(now, report)
            self._next_pickup_at = now + timedelta(seconds=settings.pickup_interval_seconds)
        if provider is not None:
            self._reconcile_unknown(provider, now, report)
            polls = self._start_polls(provider, now)
            if polls is not None:  # before dialing: the lines they free are used at once
                self._finish_polls(polls, settings, now, report)
        done = self._dial(provider, settings, now, report)
        self._complete(done, now, report)
        if self._provider_error is not None:
            report.state = f"error: {self._provider_error.message}"
        elif self._unreachable(now):
            assert self._provider_retry_at is not None
            wait = max(0.0, (self._provider_retry_at - now).total_seconds())
            report.state = (
                "error: the telephony provider cannot be reached: "
                f"{without_retrying(self._provider_problem)} Next try in {wait:.0f} s."
            )
        return report

    def _unreachable(self, now: datetime) -> bool:
        """The provider cannot be reached (not merely limiting our rate) until a retry."""
        return (
            self._provider_retry_at is not None
            and now < self._provider_retry_at
            and not self._provider_rate_limited
        )

    # ------------------------------------------------------------------ settings, provider
    def _refresh_settings(self, now: datetime, force: bool = False) -> AppSettings:
        stale = (
            force
            or self._settings is None
            or self._settings_read_at is None
            or now
            >= self._settings_read_at + timedelta(seconds=self.config.settings_refresh_seconds)
            or now < self._settings_read_at
        )
        if stale:
            with self.sessions() as session:
                stored = load_settings(session)
            self._settings = replace(stored, **self._overrides)
            self._settings_read_at = now
        assert self._settings is not None
        return self._settings

    def _current_provider(self, settings: AppSettings) -> TelephonyProvider | None:
        if self._fixed_provider is not None:
            return self._fixed_provider
        key = tuple(getattr(settings, name) for name in PROVIDER_SETTINGS)
        if key != self._provider_key:
            self._provider_key = key
            old, self._provider = self._provider, None
            close = getattr(old, "close", None)
            if callable(close):
                close()
            assert self._provider_factory is not None
            try:
                self._provider = self._provider_factory(settings)
                self._provider_error = None
                log.info("telephony provider: %s", self._provider.name)
            except ProviderError as exc:
                self._provider_error = exc
                log.error("the telephony provider cannot be used: %s", exc.message)
        return self._provider

    # ------------------------------------------------------------------ pickup
    def pickup(self, now: datetime, report: TickReport | None = None) -> list[int]:
        """Make due SCHEDULED batch calls RUNNING; one conditional UPDATE each, so of two
        engines racing for one batch call exactly one takes it."""
        report = report or TickReport()
        # A batch call whose importing process died is removed (creation is all or nothing).
        discarder = BatchCallService(self.sessions, clock=lambda: now, actor=ENGINE_ACTOR)
        for batch_id in discarder.discard_abandoned_imports():
            report.touch(batch_id)
        with self.sessions() as session:
            due = session.execute(
                select(BatchCall.id, BatchCall.name)
                .where(
                    BatchCall.status == BatchStatus.SCHEDULED.value,
                    dialable(),
                    or_(
                        BatchCall.send_type == SendType.SEND_NOW.value,
                        BatchCall.scheduled_at <= now,
                    ),
                )
                .order_by(BatchCall.id)
            ).all()
        moment = bindparam("pickup_now", now, type_=UTCDateTime())
        for batch_id, name in due:
            with self.sessions.begin() as session:
                result = session.execute(
                    update(BatchCall)
                    .where(
                        BatchCall.id == batch_id,
                        BatchCall.status == BatchStatus.SCHEDULED.value,
                        dialable(),
                    )
                    .values(
                        status=RUNNING,
                        started_at=func.coalesce(BatchCall.started_at, moment),
                        waiting_reason=None,
                        updated_at=now,
                    )
                    .execution_options(synchronize_session=False)
                )
            if result.rowcount == 1:  # type: ignore[attr-defined]
                log.info('picked up batch call %s "%s": now running', batch_id, name)
                report.picked_up.append(batch_id)
                report.touch(batch_id, recipients=False)
        return report.picked_up

    # ------------------------------------------------------------------ dialing
    def _active_batches(self, session: Session) -> tuple[list[_Batch], int]:
        """The RUNNING batch calls, and the lines in use by every batch call (a paused or
        cancelled batch call's calls still hold lines): one query."""
        rows = session.execute(
            select(
                dialing_status(),
                BatchCall.id,
                BatchCall.name,
                BatchCall.timezone,
                BatchCall.window_start,
                BatchCall.window_end,
                BatchCall.allowed_days,
                BatchCall.reserved_concurrency,
                BatchCall.pending_count,
                BatchCall.queued_count,
                BatchCall.in_progress_count,
                BatchCall.waiting_reason,
                Agent.kind,
                Agent.value,
                BatchCall.from_number,
            )
            .join(Agent, Agent.id == BatchCall.agent_id)
            .where(or_(BatchCall.status == RUNNING, BatchCall.in_progress_count > 0))
            .order_by(BatchCall.id)
        ).all()
        busy_lines = sum(max(0, row.in_progress_count) for row in rows)
        return [_Batch(*row[1:]) for row in rows if row.status == RUNNING], busy_lines

    def _dial(
        self,
        provider: TelephonyProvider | None,
        settings: AppSettings,
        now: datetime,
        report: TickReport,
    ) -> list[int]:
        """Returns the RUNNING batch calls with nothing left to call (to complete)."""
        with self.sessions() as session:
            batches, busy_lines = self._active_batches(session)
        done = [b.id for b in batches if not (b.pending or b.queued or b.in_progress)]
        reasons: dict[int, str | None] = {}
        windows: dict[int, CallingWindow] = {}
        demands: dict[int, tuple[int, int]] = {}
        by_id = {b.id: b for b in batches}
        blocked = self._provider_retry_at is not None and now < self._provider_retry_at
        #: Batch calls whose reason is the provider's trouble if it cannot be reached.
        reachable_matters: list[_Batch] = []
        for batch in batches:
            try:
                window = CallingWindow.from_text(
                    batch.timezone, batch.window_start, batch.window_end, batch.allowed_days
                )
            except WindowError as exc:
                self._fail_batch(batch.id, f"The calling hours cannot be used: {exc}", now, report)
                continue
            windows[batch.id] = window
            if not window.is_open(now):
                reasons[batch.id] = outside_window_reason(window, now)
                if batch.queued:
                    self._requeue_to_pending(batch.id, report)
                continue
            has_work = batch.pending or batch.queued
            if (has_work or batch.in_progress) and provider is not None:
                reachable_matters.append(batch)
            if blocked and (has_work or batch.in_progress) and provider is not None:
                # The provider cannot be asked (to place or to check calls): say so, also
                # when every line is busy and only the calls in progress are waited for.
                assert self._provider_retry_at is not None
                reasons[batch.id] = provider_reason(
                    self._provider_problem, self._provider_retry_at, batch.timezone
                )
                continue
            if not has_work:
                reasons[batch.id] = self._reconcile_reason(batch.id, batch.timezone)
                continue
            if provider is None:
                message = (
                    self._provider_error.message
                    if self._provider_error
                    else "No telephony provider is set up. Choose one in Settings."
                )
                self._fail_batch(batch.id, message, now, report)
                continue
            queued = batch.queued + self._top_up_queue(batch, now, report)
            free_here = batch.reserved_concurrency - batch.in_progress
            reasons[batch.id] = self._reconcile_reason(batch.id, batch.timezone)
            if queued and free_here > 0:
                demands[batch.id] = (batch.in_progress, min(queued, free_here))
        free_lines = settings.plan_concurrency - busy_lines
        paced = self.pacer.available(now)
        if self._sleep is not None and self.config.pace_ahead_seconds > 0:
            ahead = now + timedelta(seconds=self.config.pace_ahead_seconds)
            paced = self.pacer.available_at(ahead)
        budget = min(free_lines, paced, self.config.max_placements_per_tick)
        shares = share_capacity(demands, max(0, budget), self._rotation)
        self._rotation += 1
        if free_lines <= 0:
            for batch_id in demands:
                reasons[batch_id] = capacity_reason(settings.plan_concurrency)
        if shares and provider is not None:
            self._lock_gap()
            claims = self._claim_all(shares, by_id, settings, now, report)
            self._place_all(provider, claims, windows, report)
        if sum(demands[b][1] for b in demands) > budget and free_lines > budget:
            frees = self.pacer.frees_at(max(1, self.pacer.limit // 10))
            if frees is not None:
                report.next_tick_in = max(0.01, (frees - self.clock()).total_seconds())
        if report.budget_used:  # more to place: right after the lock gap
            report.next_tick_in = self.config.lock_gap_seconds
        retry_at = self._provider_retry_at
        if not blocked and retry_at is not None and self.clock() < retry_at:
            # Placing just found the provider unreachable: say so now, not next tick.
            for batch in reachable_matters:
                reasons[batch.id] = provider_reason(
                    self._provider_problem, retry_at, batch.timezone
                )
        self._write_reasons(by_id, reasons, report)
        return done

    def _top_up_queue(self, batch: _Batch, now: datetime, report: TickReport) -> int:
        """Move the next due PENDING recipients to QUEUED: only as many as can be dialed
        soon (an indexed LIMIT query, whatever the number of pending recipients)."""
        target = min(batch.reserved_concurrency, self.config.queue_lookahead)
        wanted = target - batch.queued
        if wanted <= 0 or batch.pending <= 0:
            return 0
        with write_transaction(self.sessions) as session:
            ids = session.scalars(
                select(Recipient.id)
                .where(
                    Recipient.batch_call_id == batch.id,
                    Recipient.status == PENDING.value,
                    or_(Recipient.next_try_at.is_(None), Recipient.next_try_at <= now),
                )
                .order_by(Recipient.id)
                .limit(wanted)
            ).all()
            if not ids:
                return 0
            # Locked (FOR SHARE on PostgreSQL): a Pause committing between this check
            # and the move would otherwise leave its batch call with QUEUED recipients.
            still_running = (
                session.connection().execute(_BATCH_STATUS_SHARED, {"p_batch": batch.id}).scalar()
            )
            if still_running != RUNNING:
                return 0
            moved = move_recipients(
                session,
                batch.id,
                [PENDING],
                QUEUED,
                where=[Recipient.id.in_(ids)],
                values={"next_try_at": None},
            )
        if moved:
            report.touch(batch.id)
        return moved

    def _requeue_to_pending(self, batch_id: int, report: TickReport) -> None:
        """Outside the window QUEUED recipients are no longer due: back to PENDING."""
        with write_transaction(self.sessions) as session:
            moved = move_recipients(session, batch_id, [QUEUED], PENDING)
        if moved:
            report.touch(batch_id)

    def _request_for(
        self, batch: _Batch, agent: AgentSpec, settings: AppSettings, row: Any
    ) -> CallRequest:
        """The provider request for one recipient row (None: a template, to check the
        settings). The recipient's name and number are variables too, unless a CSV
        column of that name says otherwise."""
        if row is None:
            variables: dict[str, str] = {}
            to = batch.from_number
        else:
            variables = {
                str(k): "" if v is None else str(v) for k, v in (row.variables or {}).items()
            }
            variables.setdefault("name", row.name or "")
            variables.setdefault("phone_number", row.phone_number)
            to = row.phone_number
        return CallRequest(
            to=to,
            from_=batch.from_number,
            agent=agent,
            variables=variables,
            ring_timeout=settings.ring_timeout_seconds,
            machine_detection=settings.answering_machine_detection,
            time_limit=settings.max_call_duration_seconds,
        )

    def _claim_all(
        self,
        shares: Mapping[int, int],
        batches: Mapping[int, _Batch],
        settings: AppSettings,
        now: datetime,
        report: TickReport,
    ) -> list[_Claim]:
        """Transaction A for each batch call: QUEUED -> IN_PROGRESS (attempts + 1) and a
        CallAttempt row without a call id, committed before the provider is asked."""
        per_batch: dict[int, list[_Claim]] = {}
        claimed_at = self.clock()
        for batch_id, count in shares.items():
            batch = batches[batch_id]
            try:
                agent = AgentSpec(batch.agent_kind, batch.agent_value)  # type: ignore[arg-type]
            except ValueError as exc:
                self._fail_batch(batch_id, f"The agent cannot be used: {exc}", now, report)
                continue
            try:  # the call settings, once, before any recipient is claimed
                self._request_for(batch, agent, settings, None)
            except ValueError as exc:
                reason = f"The call settings cannot be used: {exc} Fix them in Settings."
                self._fail_batch(batch_id, reason, now, report)
                continue
            claims = self._claim(batch, agent, count, settings, now, claimed_at)
            if claims:
                per_batch[batch_id] = claims
                report.touch(batch_id)
        # Interleave the batch calls, so a stop part-way shares what was placed.
        ordered: list[_Claim] = []
        queues = [deque(c) for c in per_batch.values()]
        while queues:
            for q in list(queues):
                ordered.append(q.popleft())
                if not q:
                    queues.remove(q)
        return ordered

    def _claim(
        self,
        batch: _Batch,
        agent: AgentSpec,
        count: int,
        settings: AppSettings,
        now: datetime,
        claimed_at: datetime,
    ) -> list[_Claim]:
        with write_transaction(self.sessions) as session:
            connection = session.connection()
            # The batch call row (FOR SHARE) and the candidates (FOR UPDATE) are locked on
            # PostgreSQL; SQLite's BEGIN IMMEDIATE already excludes every other writer.
            status = connection.execute(_BATCH_STATUS_SHARED, {"p_batch": batch.id}).scalar()
            if status != RUNNING:
                return []
            rows = connection.execute(
                _QUEUED_CANDIDATES, {"p_batch": batch.id, "p_limit": count}
            ).all()
            if not rows:
                return []
            moved = move_recipients(
                session,
                batch.id,
                [QUEUED],
                IN_PROGRESS,
                where=[Recipient.id.in_([row.id for row in rows])],
                values={"attempts": Recipient.attempts + 1, "last_error": None},
            )
            if moved != len(rows):  # impossible under the locks: claim nothing this time
                raise RuntimeError(f"claimed {moved} of {len(rows)} locked recipients")
            requests: dict[int, CallRequest] = {}
            for row in rows:
                try:
                    requests[row.id] = self._request_for(batch, agent, settings, row)
                except ValueError as exc:  # defensive: the settings were checked already
                    self._finish_recipient(
                        session,
                        batch.id,
                        row.id,
                        row.attempts + 1,
                        RecipientStatus.FAILED,
                        {"last_error": f"The call could not be prepared: {exc}", "ended_at": now},
                    )
            numbers = {row.id: row.attempts + 1 for row in rows}
            provider = self._provider_name()
            inserted = (
                connection.execute(
                    _INSERT_ATTEMPTS,
                    [
                        {
                            "recipient_id": row.id,
                            "batch_call_id": batch.id,
                            "attempt_number": numbers[row.id],
                            "provider": provider,
                            "to_number": row.phone_number,
                            "from_number": batch.from_number,
                            "created_at": claimed_at,
                        }
                        for row in rows
                        if row.id in requests
                    ],
                ).all()
                if requests
                else []
            )
            return [
                _Claim(
                    attempt_id,
                    recipient_id,
                    batch.id,
                    numbers[recipient_id],
                    requests[recipient_id],
                    claimed_at,
                )
                for attempt_id, recipient_id in inserted
            ]

    def _provider_name(self) -> str:
        return getattr(self._provider, "name", "unknown")[:16]

    def _place_all(
        self,
        provider: TelephonyProvider,
        claims: Sequence[_Claim],
        windows: Mapping[int, CallingWindow],
        report: TickReport,
    ) -> None:
        """Place the claimed calls in order. Before each: the engine is not stopping, still
        holds the lease, the pacing allows it, the tick's placing time budget is not used
        up, and the batch call's calling window is still open at that very moment
        (placing can outlast the instant the tick started at). Claims left over go back
        to the queue."""
        remaining = deque(claims)
        closed: set[int] = set()
        deadline = (
            min(c.claimed_at for c in claims) + timedelta(seconds=self.config.place_budget_seconds)
            if claims
            else self.clock()
        )
        try:
            while remaining:
                if self._stop.is_set():
                    log.info("placing stopped: the engine is stopping")
                    break
                if self.lease is not None and not self.lease.hold(self.clock()).held:
                    log.warning("placing stopped: the dialer lease was lost")
                    break
                if not self._wait_for_pacing():
                    break
                if self._stop.is_set():
                    break
                if self.clock() >= deadline:
                    report.budget_used = True
                    break
                claim = remaining[0]
                if claim.batch_id in closed or not windows[claim.batch_id].is_open(self.clock()):
                    closed.add(claim.batch_id)
                    if all(c.batch_id in closed for c in remaining):
                        break
                    remaining.rotate(-1)  # the others may still be dialed
                    continue
                # Popped before it is placed: if placing it fails half-way, it is not
                # voided here but reconciled (its call may exist).
                remaining.popleft()
                stop = self._place_one(provider, claim, report, deadline)
                if stop:
                    log.info("placing stopped for this tick: %s", stop)
                    break
        finally:
            if remaining:
                self._void_claims(remaining, report)
            if report.budget_used:
                self._burst_ended_at = self.clock()

    def _lock_gap(self) -> None:
        """After a burst of placing that used its whole budget, the write lock stays free
        for `lock_gap_seconds` before the next burst, even if ticks follow each other at
        once: a writer waiting for SQLite's lock (a Pause) retries within that time."""
        ended, self._burst_ended_at = self._burst_ended_at, None
        if ended is None or self._sleep is None:
            return
        rest = self.config.lock_gap_seconds - (self.clock() - ended).total_seconds()
        if rest > 0:
            self._sleep(rest)

    def _wait_for_pacing(self) -> bool:
        """True when a call may start now, after waiting for the pacing if the engine
        can wait (never past `pace_ahead_seconds` and a little slack)."""
        if self.pacer.available(self.clock()) > 0:
            return True
        frees = self.pacer.frees_at()
        if self._sleep is None or frees is None:
            return False
        wait = (frees - self.clock()).total_seconds()
        if wait > self.config.pace_ahead_seconds + 0.1:
            return False
        self._sleep(max(0.0, wait))
        return not self._stop.is_set() and self.pacer.available(self.clock()) > 0

    def _place_one(
        self,
        provider: TelephonyProvider,
        claim: _Claim,
        report: TickReport,
        deadline: datetime | None = None,
    ) -> str | None:
        """Transaction B: lock the batch call, re-check, ask the provider, store the id.

        Returns why placing must stop for this tick (a transient provider error, the
        lease or the time budget lost while waiting for the lock), else None. Never
        raises out of the transaction for a provider error: what it records (a voided
        attempt, an attempt to reconcile) must be committed."""
        with write_transaction(self.sessions) as session:
            connection = session.connection()
            status = connection.execute(_BATCH_STATUS_SHARED, {"p_batch": claim.batch_id}).scalar()
            attempt_open = connection.execute(
                _OPEN_ATTEMPT_LOCKED, {"p_attempt": claim.attempt_id}
            ).scalar()
            if attempt_open is None:
                return None  # deleted with its batch call, or reconciled by someone else
            if status != RUNNING:
                self._void(session, claim, PENDING)
                report.touch(claim.batch_id)
                log.info("batch call %s is %s: call not placed", claim.batch_id, status)
                return None
            if self.lease is not None:
                # The lease is renewed only every few seconds: another engine may have
                # taken it over meanwhile (this computer stalled, or its clock jumped).
                holder = connection.execute(
                    _LEASE_HOLDER_SHARED, {"p_name": self.lease.name}
                ).scalar()
                if holder != self.lease.holder:
                    self._void(session, claim, QUEUED)
                    report.touch(claim.batch_id)
                    self.lease.forget()
                    log.warning("placing stopped: the dialer lease is held by %s", holder)
                    return "the dialer lease was taken over"
            if deadline is not None and self.clock() > deadline:
                # The lock took long to get: the request would be sent later than the
                # reconciliation of a crash allows for (see _reconcile_unknown).
                self._void(session, claim, QUEUED)
                report.touch(claim.batch_id)
                report.budget_used = True
                return "the tick's time for placing calls is used up"
            to = mask_number(claim.request.to)
            sent_at = self.clock()
            try:
                state = provider.place_call(claim.request)
            except RecipientProviderError as exc:
                self.pacer.record(self.clock())
                self._note_provider_ok()
                moment = self.clock()
                session.execute(
                    update(CallAttempt)
                    .where(CallAttempt.id == claim.attempt_id)
                    .values(
                        outcome=RecipientStatus.FAILED.value, error=exc.message, ended_at=moment
                    )
                )
                self._finish_recipient(
                    session,
                    claim.batch_id,
                    claim.recipient_id,
                    claim.attempt_number,
                    RecipientStatus.FAILED,
                    {"last_error": exc.message, "ended_at": moment},
                )
                report.touch(claim.batch_id)
                log.info("call to %s refused for this recipient: %s", to, exc.message)
                return None
            except FatalProviderError as exc:
                self.pacer.record(self.clock())
                self._void(session, claim, PENDING)
                self._fail_batch_in(session, claim.batch_id, exc.message, self.clock())
                self._rebuild_provider()  # fixed credentials are picked up by a Retry
                report.touch(claim.batch_id)
                log.error("batch call %s failed: %s", claim.batch_id, exc.message)
                return None
            except TransientProviderError as exc:
                self.pacer.record(self.clock())
                retry_at = self._note_provider_trouble(exc)
                if self._maybe_placed(exc):
                    # The provider may still create the call a while after the request
                    # failed: the reconciliation's settle time counts from now.
                    session.execute(
                        update(CallAttempt)
                        .where(CallAttempt.id == claim.attempt_id)
                        .values(
                            provider_status="unknown", error=exc.message, requested_at=self.clock()
                        )
                    )
                    log.warning(
                        "call to %s: no answer from the provider (%s); it will be reconciled",
                        to,
                        exc.message,
                    )
                else:
                    self._void(session, claim, PENDING, next_try_at=retry_at)
                    log.info("call to %s not placed (%s); retrying later", to, exc.message)
                report.touch(claim.batch_id)
                return exc.message
            except Exception as exc:  # a provider bug: the call may or may not exist
                self.pacer.record(self.clock())
                log.exception("unexpected provider failure placing a call to %s", to)
                session.execute(
                    update(CallAttempt)
                    .where(CallAttempt.id == claim.attempt_id)
                    .values(
                        provider_status="unknown",
                        error=f"Unexpected error: {type(exc).__name__}",
                        requested_at=self.clock(),
                    )
                )
                self._note_provider_trouble(
                    TransientProviderError(f"Unexpected error ({type(exc).__name__}).")
                )
                report.touch(claim.batch_id)
                return f"unexpected provider failure ({type(exc).__name__})"
            moment = self.clock()
            self.pacer.record(moment)
            self._note_provider_ok()
            if state.created_at is not None:
                self._note_clock_offset(state.created_at - sent_at)
            connection.execute(
                _STORE_CALL_ID,
                {
                    "p_attempt": claim.attempt_id,
                    "p_call_id": state.call_id,
                    "p_raw_status": state.raw_status[:16],
                    "p_moment": moment,
                },
            )
            connection.execute(
                _STORE_RECIPIENT_CALL_ID,
                {"p_recipient": claim.recipient_id, "p_call_id": state.call_id, "p_moment": moment},
            )
            if state.outcome is not CallOutcome.IN_PROGRESS:
                self._settle(session, self._open(claim, state.call_id, moment), state, moment)
        report.placed += 1
        report.touch(claim.batch_id)
        log.info("call placed to %s for batch call %s (%s)", to, claim.batch_id, state.call_id)
        return None

    @staticmethod
    def _open(claim: _Claim, call_id: str, started: datetime) -> _OpenAttempt:
        return _OpenAttempt(
            claim.attempt_id,
            claim.recipient_id,
            claim.batch_id,
            claim.attempt_number,
            call_id,
            started,
        )

    @staticmethod
    def _maybe_placed(exc: TransientProviderError) -> bool:
        """A rate limit (429) or a connection never made (refused, host unknown, connect
        timeout: no byte of the request was sent) never created a call; a timeout, a lost
        connection or a server error may have."""
        if _rate_limited(exc):
            return False
        return bool(exc.outcome_unknown) or (exc.http_status is not None and exc.http_status >= 500)

    def _note_clock_offset(self, offset: timedelta) -> None:
        """The provider's clock minus this computer's (from a call just created; Twilio's
        times have whole seconds). Reconciliation widens its search by it."""
        previous = self._clock_offset
        self._clock_offset = offset
        if abs(offset) > timedelta(seconds=60) and (
            previous is None or abs(offset - previous) > timedelta(seconds=30)
        ):
            log.warning(
                "this computer's clock differs from the telephony provider's by about %.0f s; "
                "set it right (automatic time) so calling hours and times are exact",
                -offset.total_seconds(),
            )

    def _void(
        self,
        session: Session,
        claim: _Claim | _OpenAttempt,
        back_to: RecipientStatus,
        next_try_at: datetime | None = None,
    ) -> bool:
        """Undo an attempt that placed no call: the recipient is not counted as called."""
        attempt_id = claim.attempt_id if isinstance(claim, _Claim) else claim.id
        removed = session.execute(
            delete(CallAttempt).where(
                CallAttempt.id == attempt_id,
                CallAttempt.provider_call_id.is_(None),
                CallAttempt.outcome.is_(None),
            )
        )
        if removed.rowcount != 1:  # type: ignore[attr-defined]
            return False
        move_recipients(
            session,
            claim.batch_id,
            [IN_PROGRESS],
            back_to,
            where=[Recipient.id == claim.recipient_id, Recipient.attempts == claim.attempt_number],
            values={"attempts": Recipient.attempts - 1, "next_try_at": next_try_at},
        )
        return True

    def _void_claims(self, claims: Iterable[_Claim], report: TickReport) -> None:
        """Claims not placed this tick go back to the queue (or PENDING if stopped)."""
        with write_transaction(self.sessions) as session:
            connection = session.connection()
            for claim in claims:
                status = connection.execute(
                    _BATCH_STATUS_SHARED, {"p_batch": claim.batch_id}
                ).scalar()
                if status is None:
                    continue
                self._void(session, claim, QUEUED if status == RUNNING else PENDING)
                report.touch(claim.batch_id)

    # ------------------------------------------------------------------ provider health
    def _note_provider_ok(self) -> None:
        if self._provider_failures:
            log.info("the telephony provider answers again")
        self._provider_failures = 0
        self._provider_retry_at = None

    def _backoff(self, failures: int, retry_after: float | None) -> timedelta:
        base = self.config.backoff_base_seconds * (2 ** min(failures - 1, 20))
        delay = min(self.config.backoff_max_seconds, base)
        delay = delay * (0.5 + 0.5 * self._rng.random())  # "equal jitter"
        if retry_after:
            delay = max(delay, min(retry_after, self.config.backoff_max_seconds))
        return timedelta(seconds=delay)

    def _note_provider_trouble(self, exc: ProviderError) -> datetime:
        self._provider_failures += 1
        retry_after = getattr(exc, "retry_after", None)
        retry_at = self.clock() + self._backoff(self._provider_failures, retry_after)
        self._provider_retry_at = retry_at
        self._provider_problem = exc.message
        self._provider_rate_limited = _rate_limited(exc)
        log.warning(
            "telephony provider unreachable (%s); next try in %.1f s",
            exc.message,
            (retry_at - self.clock()).total_seconds(),
        )
        return retry_at

    # ------------------------------------------------------------------ batch outcomes
    def _fail_batch(self, batch_id: int, reason: str, now: datetime, report: TickReport) -> None:
        with write_transaction(self.sessions) as session:
            failed = self._fail_batch_in(session, batch_id, reason, now)
        if failed:
            report.touch(batch_id)
            log.error("batch call %s failed: %s", batch_id, reason)

    def _fail_batch_in(self, session: Session, batch_id: int, reason: str, now: datetime) -> bool:
        result = session.execute(
            update(BatchCall)
            .where(BatchCall.id == batch_id, BatchCall.status == RUNNING)
            .values(
                status=BatchStatus.FAILED.value,
                failure_reason=reason,
                waiting_reason=None,
                finished_at=now,
                updated_at=now,
            )
            .execution_options(synchronize_session=False)
        )
        if result.rowcount != 1:  # type: ignore[attr-defined]
            return False
        move_recipients(session, batch_id, [QUEUED], PENDING)
        return True

    def _complete(self, done: Sequence[int], now: datetime, report: TickReport) -> None:
        """RUNNING with nothing PENDING, QUEUED or IN_PROGRESS (from the counters) ->
        COMPLETED, by a conditional UPDATE on those counters."""
        for batch_id in done:
            with self.sessions.begin() as session:
                result = session.execute(
                    update(BatchCall)
                    .where(
                        BatchCall.id == batch_id,
                        BatchCall.status == RUNNING,
                        BatchCall.pending_count == 0,
                        BatchCall.queued_count == 0,
                        BatchCall.in_progress_count == 0,
                    )
                    .values(
                        status=BatchStatus.COMPLETED.value,
                        finished_at=now,
                        waiting_reason=None,
                        updated_at=now,
                    )
                    .execution_options(synchronize_session=False)
                )
            if result.rowcount == 1:  # type: ignore[attr-defined]
                report.touch(batch_id, recipients=False)
                log.info("batch call %s completed", batch_id)

    def _write_reasons(
        self, batches: Mapping[int, _Batch], reasons: Mapping[int, str | None], report: TickReport
    ) -> None:
        """Only when a reason changes (a write per tick per batch call would be waste)."""
        changes = {
            batch_id: reason
            for batch_id, reason in reasons.items()
            if batch_id in batches and batches[batch_id].waiting_reason != reason
        }
        if not changes:
            return
        with self.sessions.begin() as session:
            for batch_id, reason in changes.items():
                result = session.execute(
                    update(BatchCall)
                    .where(BatchCall.id == batch_id, BatchCall.status == RUNNING)
                    .values(waiting_reason=reason)
                    .execution_options(synchronize_session=False)
                )
                if result.rowcount == 1:  # type: ignore[attr-defined]
                    report.touch(batch_id, recipients=False)
                    report.waiting_reasons[batch_id] = reason or ""

    # ------------------------------------------------------------------ tracking
    def _finish_recipient(
        self,
        session: Session,
        batch_id: int,
        recipient_id: int,
        attempt_number: int,
        outcome: RecipientStatus,
        values: dict[str, Any],
    ) -> bool:
        """IN_PROGRESS -> a terminal status, only for this attempt (never overwrites)."""
        return (
            move_recipients(
                session,
                batch_id,
                [IN_PROGRESS],
                outcome,
                where=[Recipient.id == recipient_id, Recipient.attempts == attempt_number],
                values=values,
            )
            == 1
        )

    def _settle(
        self,
        session: Session,
        attempt: _OpenAttempt,
        state: CallState | None,
        now: datetime,
        *,
        error: str | None = None,
    ) -> bool:
        """Record a final outcome on the attempt and its recipient; False if the attempt
        already had one (a late or duplicated update never overwrites)."""
        return bool(self._settle_many(session, [(attempt, state, error)], now))

    def _settle_many(
        self,
        session: Session,
        items: Sequence[tuple[_OpenAttempt, CallState | None, str | None]],
        now: datetime,
    ) -> list[_OpenAttempt]:
        """Final outcomes for many attempts in one go: the attempts still open get theirs
        (an UPDATE ... WHERE outcome IS NULL each, as one executemany), their recipients
        move IN_PROGRESS -> the outcome through move_recipients (grouped), then get the
        call's details. Returns the attempts settled now."""
        if not items:
            return []
        connection = session.connection()
        still_open = set(
            connection.execute(
                _STILL_OPEN, {"p_ids": [attempt.id for attempt, _, _ in items]}
            ).scalars()
        )
        attempt_rows: list[dict[str, Any]] = []
        recipient_rows: list[dict[str, Any]] = []
        groups: dict[tuple[int, RecipientStatus, int], list[int]] = {}
        settled: list[_OpenAttempt] = []
        for attempt, state, error in items:
            if attempt.id not in still_open:
                continue
            still_open.discard(attempt.id)
            if state is not None and state.outcome is not CallOutcome.IN_PROGRESS:
                outcome = RecipientStatus(state.outcome.value)
                message = state.error_message or status_message(state.raw_status)
                if outcome is RecipientStatus.COMPLETED:
                    message = None
                details = {
                    "p_answered_at": state.answered_at,
                    "p_ended_at": state.ended_at or now,
                    "p_duration": state.duration_seconds,
                    "p_answered_by": state.answered_by[:32] if state.answered_by else None,
                }
            else:
                outcome = RecipientStatus.FAILED
                message = error or NO_FINAL_STATUS
                details = {
                    "p_answered_at": None,
                    "p_ended_at": now,
                    "p_duration": None,
                    "p_answered_by": None,
                }
            attempt_rows.append(
                {
                    "p_attempt": attempt.id,
                    "p_outcome": outcome.value,
                    "p_error": message,
                    "p_now": now,
                    "p_raw_status": state.raw_status[:16] if state is not None else None,
                    **details,
                }
            )
            recipient_rows.append(
                {
                    "p_recipient": attempt.recipient_id,
                    "p_status": outcome.value,
                    "p_attempt_number": attempt.attempt_number,
                    "p_error": message,
                    "p_call_id": attempt.call_id or None,
                    "p_requested_at": attempt.started if attempt.call_id else None,
                    **details,
                }
            )
            key = (attempt.batch_id, outcome, attempt.attempt_number)
            groups.setdefault(key, []).append(attempt.recipient_id)
            settled.append(attempt)
        if not settled:
            return []
        connection.execute(_SETTLE_ATTEMPT, attempt_rows)
        for (batch_id, outcome, number), recipient_ids in groups.items():
            move_recipients(
                session,
                batch_id,
                [IN_PROGRESS],
                outcome,
                where=[Recipient.id.in_(recipient_ids), Recipient.attempts == number],
            )
        connection.execute(_RECIPIENT_DETAILS, recipient_rows)
        for attempt, row in zip(settled, attempt_rows, strict=True):
            log.info(
                "call %s for batch call %s ended: %s",
                attempt.call_id or f"attempt {attempt.id}",
                attempt.batch_id,
                row["p_outcome"],
            )
        return settled

    def _deadline(self, attempt: _OpenAttempt, settings: AppSettings) -> datetime:
        return attempt.started + timedelta(
            seconds=settings.ring_timeout_seconds
            + settings.max_call_duration_seconds
            + self.config.settle_margin_seconds
        )

    def _start_polls(self, provider: TelephonyProvider, now: datetime) -> _Polls | None:
        """Start polling the open calls that are due (bounded requests in flight: the
        fetch pool's threads); `_finish_polls` waits for and records the answers."""
        if self._poll_retry_at is not None and now < self._poll_retry_at:
            return None
        with self.sessions() as session:
            batch_ids = session.scalars(
                select(BatchCall.id).where(BatchCall.in_progress_count > 0)
            ).all()
            if not batch_ids:
                return None
            cutoff = now - timedelta(seconds=self.config.poll_interval_seconds)
            rows = session.execute(
                select(
                    CallAttempt.id,
                    CallAttempt.recipient_id,
                    CallAttempt.batch_call_id,
                    CallAttempt.attempt_number,
                    CallAttempt.provider_call_id,
                    func.coalesce(CallAttempt.requested_at, CallAttempt.created_at),
                )
                .where(
                    CallAttempt.batch_call_id.in_(batch_ids),
                    CallAttempt.outcome.is_(None),
                    CallAttempt.provider_call_id.is_not(None),
                    or_(CallAttempt.last_polled_at.is_(None), CallAttempt.last_polled_at <= cutoff),
                )
                .order_by(nulls_first(CallAttempt.last_polled_at.asc()), CallAttempt.id)
                .limit(self.config.max_polls_per_tick)
            ).all()
        if not rows:
            return None
        attempts = [_OpenAttempt(r[0], r[1], r[2], r[3], r[4], _aware(r[5]) or now) for r in rows]
        polls = _Polls(attempts, threading.Event())
        workers = max(1, self.config.fetch_workers)
        if workers == 1 or len(attempts) == 1 or getattr(provider, "name", "") == "simulation":
            polls.answers = [_fetch(provider, a, polls.stop) for a in attempts]
        else:
            if self._pool is None:
                self._pool = ThreadPoolExecutor(workers, thread_name_prefix="engineFetch")
            polls.futures = [self._pool.submit(_fetch, provider, a, polls.stop) for a in attempts]
        return polls

    def _finish_polls(
        self, polls: _Polls, settings: AppSettings, now: datetime, report: TickReport
    ) -> None:
        """Record the answers: outcomes settled, open calls' poll time; a rate limit (or a
        provider that cannot be reached) stopped the round and backs polling off."""
        answers = polls.answers
        if polls.futures:
            # A slow provider must not hold the tick: past the budget the polls not yet
            # started are skipped (asked again next tick); those in flight are awaited,
            # unless the engine is stopping (their answers are then simply not used).
            late = set(polls.futures)
            until = time.monotonic() + self.config.poll_budget_seconds
            while late and not self._stop.is_set():
                left = until - time.monotonic()
                if left <= 0:
                    break
                _, late = wait(late, timeout=min(left, 0.1))
            if late:
                polls.stop.set()
            if self._stop.is_set():
                answers = [f.result() if f.done() else None for f in polls.futures]
            else:
                answers = [future.result() for future in polls.futures]
        results = [(a, o) for a, o in zip(polls.attempts, answers, strict=True) if o is not None]
        if any(isinstance(outcome, CallState) for _, outcome in results):
            self._poll_failures = 0
            if self._unreachable(now):
                self._note_provider_ok()  # it answers again
        stopped = next(
            (o for _, o in results if not isinstance(o, CallState) and _stops_polling(o)), None
        )
        if stopped is not None:
            self._poll_failures += 1
            retry_after = getattr(stopped, "retry_after", None)
            self._poll_retry_at = self.clock() + self._backoff(self._poll_failures, retry_after)
            log.warning("checking calls paused: %s", stopped.message)
            if isinstance(stopped, TransientProviderError) and not _rate_limited(stopped):
                # No connection at all: the provider is unreachable, for placing calls
                # too; the batch calls say so (even when every line is busy). Polls are
                # tried again at the same moment, so the reason holds until then.
                self._poll_retry_at = self._note_provider_trouble(stopped)
        # A provider that cannot be asked at all gets this much longer past the deadline.
        give_up_after = timedelta(seconds=self.config.unreachable_grace_seconds)
        # Calls still open only get their poll time (and status) written: one UPDATE per
        # distinct status, not one per call. Ended ones are settled together.
        still_open: dict[str | None, list[int]] = {}
        finals: list[tuple[_OpenAttempt, CallState | None, str | None]] = []
        for attempt, outcome in results:
            if isinstance(outcome, CallState):
                if outcome.outcome is not CallOutcome.IN_PROGRESS:
                    finals.append((attempt, outcome, None))
                elif now >= self._deadline(attempt, settings):
                    finals.append((attempt, outcome, None))  # settled FAILED: no final status
                else:
                    still_open.setdefault(outcome.raw_status[:16], []).append(attempt.id)
            elif isinstance(outcome, RecipientProviderError) or (
                now >= self._deadline(attempt, settings) + give_up_after
            ):
                # The provider has no record of the call (or none for far too long).
                finals.append((attempt, None, f"{NO_FINAL_STATUS} ({outcome.message})"))
            else:
                still_open.setdefault(None, []).append(attempt.id)
        if not finals and not still_open:
            return
        with write_transaction(self.sessions) as session:
            for attempt in self._settle_many(session, finals, now):
                report.settled += 1
                report.touch(attempt.batch_id)
            connection = session.connection()
            for raw_status, ids in still_open.items():
                connection.execute(
                    _POLLED, {"p_ids": ids, "p_now": now, "p_raw_status": raw_status}
                )

    # ------------------------------------------------------------------ reconciliation
    def _reconcile_unknown(
        self, provider: TelephonyProvider, now: datetime, report: TickReport
    ) -> None:
        """Attempts without a call id (a crash, or an answer lost after sending): ask the
        provider whether the call exists. Found: adopt it and track it. Not found: void
        the attempt and queue the recipient again. Each runs under the write lock, so an
        engine placing that very call (transaction B) is never overtaken.

        An attempt is asked about once the provider has had `unknown_settle_seconds` to
        create its call, counted from when its request was last known to be in flight.
        If the provider cannot be asked until long after the call would have ended (ring
        timeout + maximum duration + margins), the attempt is settled FAILED ("outcome
        unknown"): never placed again, never left In Progress for ever."""
        settings = self.settings
        settle = timedelta(seconds=self.config.unknown_settle_seconds)
        budget = timedelta(seconds=self.config.place_budget_seconds)
        with self.sessions() as session:
            rows = (
                session.connection()
                .execute(
                    _UNRESOLVED_ATTEMPTS,
                    {
                        "p_sent_cutoff": now - settle,
                        "p_claim_cutoff": now - settle - budget,
                        "p_limit": self.config.reconcile_per_tick,
                    },
                )
                .all()
            )
        blocked = self._provider_retry_at is not None and now < self._provider_retry_at
        for row in rows:
            if self._stop.is_set():
                return
            sent = _aware(row.requested_at) or _aware(row.created_at) or now
            attempt = _OpenAttempt(
                row.id, row.recipient_id, row.batch_call_id, row.attempt_number, "", sent
            )
            give_up_at = self._deadline(attempt, settings) + timedelta(
                seconds=self.config.unreachable_grace_seconds
            )
            trouble = self._reconcile_later.get(row.id)
            if blocked or (trouble is not None and now < trouble.retry_at):
                if now >= give_up_at:
                    reason = trouble.message if trouble else self._provider_problem
                    self._give_up_unknown(attempt, reason, now, report)
                continue
            try:
                self._reconcile_one(provider, row.id, now, report)
                self._reconcile_later.pop(row.id, None)
            except ProviderError as exc:
                # Ask about this one again later; only a provider that limits our rate or
                # cannot be reached at all holds everything back.
                failures = (trouble.failures if trouble else 0) + 1
                delay = min(self._backoff(failures, None), timedelta(seconds=30))
                self._reconcile_later[row.id] = _ReconcileTrouble(
                    now + delay, failures, row.batch_call_id, exc.message, give_up_at
                )
                log.warning("could not reconcile call attempt %s yet: %s", row.id, exc.message)
                if now >= give_up_at:
                    self._give_up_unknown(attempt, exc.message, now, report)
                if isinstance(exc, TransientProviderError) and _stops_polling(exc):
                    self._note_provider_trouble(exc)
                    blocked = True  # the others are only checked against their deadline

    def _give_up_unknown(
        self, attempt: _OpenAttempt, reason: str, now: datetime, report: TickReport
    ) -> None:
        """The provider never said whether this call exists, and it would have ended long
        ago: the recipient is FAILED (not called again: it may have been)."""
        detail = without_retrying(reason)
        message = f"{OUTCOME_UNKNOWN}." + (f" Last answer: {detail}" if detail else "")
        with write_transaction(self.sessions) as session:
            settled = self._settle(session, attempt, None, now, error=message)
        self._reconcile_later.pop(attempt.id, None)
        if settled:
            report.settled += 1
            report.touch(attempt.batch_id)
            log.error(
                "call attempt %s of batch call %s settled as failed: %s",
                attempt.id,
                attempt.batch_id,
                message,
            )

    def _reconcile_reason(self, batch_id: int, zone_name: str) -> str | None:
        """The waiting reason while calls of this batch call cannot be confirmed."""
        troubles = [t for t in self._reconcile_later.values() if t.batch_id == batch_id]
        if not troubles:
            return None
        first = min(troubles, key=lambda t: t.give_up_at)
        try:
            give_up = first.give_up_at.astimezone(parse_timezone(zone_name))
        except WindowError:
            give_up = first.give_up_at
        detail = first.message.replace("Retrying.", "").replace("  ", " ").strip()
        count = len(troubles)
        calls = "1 call" if count == 1 else f"{count} calls"
        return (
            f"Cannot confirm {calls} with the provider: {detail} Trying again; a call still "
            f"unconfirmed at {give_up:%a %d %b %H:%M %Z} is marked failed."
        )

    def _lookback_start(self, created: datetime, started: datetime | None) -> datetime:
        """From when to ask the provider for the calls of an attempt claimed at `created`
        (this computer's clock). The provider stamps calls with its own clock, which may
        be behind this one: search from the batch call's start (at most a day back), less
        an allowance and the measured clock difference."""
        offset = abs(self._clock_offset) if self._clock_offset is not None else timedelta(0)
        allowance = timedelta(seconds=self.config.clock_skew_allowance_seconds) + offset
        earliest = created - timedelta(hours=24)
        base = max(started, earliest) if started is not None else created
        return min(base, created) - allowance

    def _reconcile_one(
        self, provider: TelephonyProvider, attempt_id: int, now: datetime, report: TickReport
    ) -> None:
        with write_transaction(self.sessions) as session:
            attempt = session.scalars(
                select(CallAttempt)
                .where(
                    CallAttempt.id == attempt_id,
                    CallAttempt.provider_call_id.is_(None),
                    CallAttempt.outcome.is_(None),
                )
                .with_for_update()
            ).first()
            if attempt is None:
                return
            created = _aware(attempt.created_at) or now
            batch_started = _aware(
                session.scalar(
                    select(BatchCall.started_at).where(BatchCall.id == attempt.batch_call_id)
                )
            )
            found = provider.find_calls(
                attempt.to_number,
                attempt.from_number,
                since=self._lookback_start(created, batch_started),
            )
            self._note_provider_ok()
            known = (
                set(
                    session.scalars(
                        select(CallAttempt.provider_call_id).where(
                            CallAttempt.provider_call_id.in_([s.call_id for s in found])
                        )
                    ).all()
                )
                if found
                else set()
            )
            # Calls already held by another attempt are not this one's; of the others,
            # the one created nearest to when this attempt's request was sent.
            expected = (_aware(attempt.requested_at) or created) + (
                self._clock_offset or timedelta(0)
            )
            candidates = [s for s in found if s.call_id not in known]
            candidates.sort(key=lambda s: abs((s.created_at or expected) - expected))
            open_attempt = _OpenAttempt(
                attempt.id,
                attempt.recipient_id,
                attempt.batch_call_id,
                attempt.attempt_number,
                "",
                created,
            )
            to = mask_number(attempt.to_number)
            if candidates:
                state = candidates[0]
                started = state.created_at or created
                attempt.provider_call_id = state.call_id
                attempt.provider_status = state.raw_status[:16]
                attempt.requested_at = started
                attempt.last_polled_at = now
                attempt.error = None
                session.execute(
                    update(Recipient)
                    .where(Recipient.id == attempt.recipient_id)
                    .values(provider_call_id=state.call_id, requested_at=started)
                    .execution_options(synchronize_session=False)
                )
                session.flush()
                log.info("reconciled: adopted call %s to %s", state.call_id, to)
                if state.outcome is not CallOutcome.IN_PROGRESS:
                    self._settle(session, replace(open_attempt, call_id=state.call_id), state, now)
            else:
                # Locked (FOR SHARE on PostgreSQL), so a Pause cannot commit in between
                # and leave the recipient QUEUED in a paused batch call.
                status = (
                    session.connection()
                    .execute(_BATCH_STATUS_SHARED, {"p_batch": attempt.batch_call_id})
                    .scalar()
                )
                session.expunge(attempt)
                self._void(session, open_attempt, QUEUED if status == RUNNING else PENDING)
                log.info("reconciled: no call to %s was placed; it is queued again", to)
        report.touch(open_attempt.batch_id)


def _fetch(
    provider: TelephonyProvider, attempt: _OpenAttempt, stop: threading.Event
) -> CallState | ProviderError | None:
    """One poll (in a fetch thread): the call's state, or the error; None when the round
    was stopped (rate limited) before this call's turn."""
    if stop.is_set():
        return None
    try:
        return provider.fetch_call(attempt.call_id)
    except ProviderError as exc:
        if _stops_polling(exc):
            stop.set()
        return exc
    except Exception as exc:  # a provider bug: keep tracking, do not guess
        log.exception("unexpected provider failure checking a call")
        return TransientProviderError(f"Unexpected error ({type(exc).__name__}).")


def _rate_limited(exc: ProviderError) -> bool:
    return exc.http_status == 429 or exc.code == 20429


def _stops_polling(exc: ProviderError) -> bool:
    if isinstance(exc, FatalProviderError):
        return True
    if not isinstance(exc, TransientProviderError):
        return False
    never_connected = exc.http_status is None and not exc.outcome_unknown
    return _rate_limited(exc) or never_connected


def _aware(value: datetime | None) -> datetime | None:
    """Raw SQL results (coalesce) may come back naive or as text on SQLite."""
    if value is None:
        return None
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    if value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    return value
