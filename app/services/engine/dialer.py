"""The dialer engine: one `tick(now)` of work with an injected clock and provider, so a
test can run a week of dialing in seconds. A round:

1. holds the "dialer" lease (only one engine per database dials; the others stand by);
2. picks up due SCHEDULED batch calls (every `pickup_interval_seconds`, or when woken);
3. reconciles call attempts whose provider call id is unknown (`reconcile`);
4. polls the open calls and records their outcomes (`tracking`);
5. dials: per RUNNING batch call whose calling window is open, queues a few recipients
   and starts calls within its reserved concurrency, the plan's concurrency (shared
   fairly) and the calls-per-second pacing (`planning`), for at most
   `place_budget_seconds` per tick (`placing`);
6. completes batch calls with nothing left to call and writes the visible reasons.

The decisions are in `planning` (plain values), the queries in `store` and `attempts`;
this module only sequences them.
"""

from __future__ import annotations

import logging
import socket
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import fields, replace
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy.orm import Session, sessionmaker

from app.models.policy import CallingSchedule
from app.models.window import WindowError
from app.services.batch_calls import Actor, BatchCallService
from app.services.engine import state as states
from app.services.engine import store
from app.services.engine.config import Clock, EngineConfig, utcnow
from app.services.engine.health import ProviderHealth
from app.services.engine.placing import Placer
from app.services.engine.planning import (
    CallPacer,
    calling_hours_failure,
    capacity_reason,
    demand,
    plan_batch,
    queue_wanted,
    share_capacity,
    without_retrying,
)
from app.services.engine.reconcile import Reconciler
from app.services.engine.state import TickReport
from app.services.engine.tracking import CallbackSource, Tracker
from app.services.engine.waiting import PolicyWaits
from app.services.lease import DialerLease
from app.services.settings import AppSettings, load_settings
from app.services.telephony import ProviderError, TelephonyProvider

log = logging.getLogger(__name__)

ProviderFactory = Callable[[AppSettings], TelephonyProvider]

ENGINE_ACTOR = Actor(user="dialer", host=socket.gethostname())

#: Settings whose change means the provider must be built again.
PROVIDER_SETTINGS = ("provider", "simulation_seed", "twilio_account_sid", "twilio_api_base")


class ClockRate:
    """How fast the engine's clock runs against real time, measured between ticks.

    The hosts wait in real seconds; a wait the engine works out on its own clock (when
    the pacing frees a slot) is divided by this, so QA's clock running 300 times faster
    does not leave the dialer idle for 300 times too long. A clock that does not move
    by itself (a test's fake clock) counts as real time."""

    def __init__(self) -> None:
        self._last: tuple[float, datetime] | None = None
        self._speed = 1.0

    def observe(self, now: datetime) -> None:
        real = time.monotonic()
        if self._last is not None:
            real_elapsed = real - self._last[0]
            clock_elapsed = (now - self._last[1]).total_seconds()
            if real_elapsed >= 0.001 and clock_elapsed > 0:
                self._speed = min(max(clock_elapsed / real_elapsed, 1.0), 100_000.0)
            elif clock_elapsed <= 0:
                self._speed = 1.0
        self._last = (real, now)

    def speed(self) -> float:
        return self._speed


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
        status_callbacks: CallbackSource | None = None,
    ) -> None:
        """`sleep(seconds)` waits in real time (the hosts pass one that a stop request
        cuts short); without it (a fake clock) a tick never waits. `status_callbacks`:
        the provider reports call progress (a server Twilio can reach); polls then only
        run slowly, as the safety net."""
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
        self._lease = lease
        self._settings: AppSettings | None = None
        self._settings_read_at: datetime | None = None
        # With a real clock, starts are spread evenly and a guard keeps the provider's
        # own count within the setting (see CallPacer); a fake clock has no jitter.
        self.pacer = CallPacer(
            1.0,
            guard_seconds=self.config.pacing_guard_seconds if sleep is not None else 0.0,
            spread=sleep is not None,
        )
        self.health = ProviderHealth(self.config)
        self._rotation = 0
        self._next_pickup_at: datetime | None = None
        self.waits = PolicyWaits(sessions)
        self._clock_rate = ClockRate()
        self._stop = threading.Event()
        self._sleep = sleep
        config_ = self.config
        self.tracker = Tracker(
            sessions,
            clock=clock,
            config=config_,
            health=self.health,
            stop=self._stop,
            callbacks=status_callbacks,
        )
        self.reconciler = Reconciler(
            sessions, clock=clock, config=config_, health=self.health, stop=self._stop
        )
        self.placer = Placer(
            sessions,
            clock=clock,
            config=config_,
            health=self.health,
            stop=self._stop,
            pacer=self.pacer,
            lease=lease,
            sleep=sleep,
            on_fatal=self._rebuild_provider,
        )

    # ------------------------------------------------------------------ lifecycle
    @property
    def lease(self) -> DialerLease | None:
        """The dialer lease (None: this engine dials without one, as in some tests)."""
        return self._lease

    @lease.setter
    def lease(self, lease: DialerLease | None) -> None:
        self._lease = self.placer.lease = lease

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
        """Build the provider again at the next tick: its credentials live in the keyring,
        which no setting change announces. (A provider whose memory of placed calls would
        be lost is kept: that memory serves crash reconciliation.)"""
        if self._fixed_provider is not None:
            return
        if self._provider is None or self._provider.capabilities.keeps_call_history:
            self._provider_key = None

    def request_stop(self) -> None:
        """Stop placing calls as soon as possible (checked between calls)."""
        self._stop.set()

    def close(self) -> None:
        """Release the lease and the polling threads (the engine may not tick again).

        Never waits for a poll still in flight: stopping must stay quick (an application
        closing), and a poll's answer is only asked again at the next start."""
        self._stop.set()
        self.tracker.close()
        self.placer.close()
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
        self._clock_rate.observe(now)
        report = TickReport()
        if self.lease is not None:
            lease = self.lease.hold(now)
            if not lease.held:
                report.status = states.standby(lease.holder)
                self._next_pickup_at = None  # pick up at once when we take over
                return report
        settings = self._refresh_settings(now)
        # Below the setting while the provider limits our rate or queues our calls.
        self.pacer.set_rate(
            self.health.placing_rate(settings.calls_per_second, now), settings.calls_per_second
        )
        provider = self._current_provider(settings)
        if self._next_pickup_at is None or now >= self._next_pickup_at:
            self.pickup(now, report)
            self._next_pickup_at = now + timedelta(seconds=settings.pickup_interval_seconds)
        polls = None
        if provider is not None:
            self.reconciler.reconcile_unknown(provider, settings, now, report)
            self.tracker.take_callbacks(now, report)
            polls = self.tracker.start_polls(provider, now)
            if polls is not None and not polls.in_flight:
                # Answered at once (no network): the lines they free are used this tick.
                self.tracker.finish_polls(polls, settings, now, report)
                polls = None
        # The answers to the requests left in flight by the last tick (a real clock).
        self.placer.collect(report)
        done = self._dial(provider, settings, now, report)
        if polls is not None:  # the provider was asked while calls were being placed
            self.tracker.finish_polls(polls, settings, now, report)
        store.complete(self.sessions, done, now, report)
        if self._provider_error is not None:
            report.status = states.error(self._provider_error.message)
        elif self.health.unreachable(now):
            assert self.health.retry_at is not None
            wait = max(0.0, (self.health.retry_at - now).total_seconds())
            report.status = states.error(
                "the telephony provider cannot be reached: "
                f"{without_retrying(self.health.problem)} Next try in {wait:.0f} s."
            )
        return report

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
        for batch_id, name in store.due_batch_calls(self.sessions, now):
            if store.start_batch_call(self.sessions, batch_id, now):
                log.info('picked up batch call %s "%s": now running', batch_id, name)
                report.picked_up.append(batch_id)
                report.touch(batch_id, recipients=False)
        return report.picked_up

    # ------------------------------------------------------------------ dialing
    def _dial(
        self,
        provider: TelephonyProvider | None,
        settings: AppSettings,
        now: datetime,
        report: TickReport,
    ) -> list[int]:
        """Plan each RUNNING batch call, share the free lines and place the calls.
        Returns the RUNNING batch calls with nothing left to call (to complete)."""
        batches, busy_lines = store.active_batches(self.sessions)
        done = [b.id for b in batches if b.finished]
        reasons: dict[int, str | None] = {}
        windows: dict[int, CallingSchedule] = {}
        demands: dict[int, tuple[int, int]] = {}
        by_id = {b.id: b for b in batches}
        failure = self._provider_error.message if self._provider_error else None
        view = self.health.view(provider is not None, failure)
        blocked = view.blocked(now)
        #: Batch calls whose reason is the provider's trouble if it cannot be reached.
        provider_matters = []
        for batch in batches:
            window: CallingSchedule | WindowError
            try:
                window = batch.window()
            except WindowError as exc:
                window = exc
            step = plan_batch(
                batch, window, now, view, self.reconciler.reason(batch.id, batch.timezone)
            )
            if step.fail is not None:
                store.fail_batch(self.sessions, batch.id, step.fail, now, report)
                continue
            assert isinstance(window, CallingSchedule)
            windows[batch.id] = window
            reasons[batch.id] = step.reason
            if step.expire:
                store.expire_batch(self.sessions, batch.id, now, report)
                continue
            if step.provider_matters:
                provider_matters.append(batch)
            if step.requeue and store.requeue_to_pending(self.sessions, batch.id):
                report.touch(batch.id)
            if not step.dial:
                continue
            queued = batch.queued
            wanted = queue_wanted(batch, self.config.queue_lookahead)
            try:
                hours = batch.local_hours()
            except WindowError as exc:
                store.fail_batch(self.sessions, batch.id, calling_hours_failure(exc), now, report)
                continue
            open_zones = self.waits.open_zones(hours, now) if hours is not None else None
            if hours is not None and queued:
                closed = self.waits.closed_zones(hours, now)
                back = store.requeue_outside_local_hours(self.sessions, batch.id, closed)
                if back:
                    report.touch(batch.id)
                    queued -= back
            if wanted:
                moved = store.top_up_queue(
                    self.sessions,
                    batch.id,
                    wanted,
                    now,
                    open_zones,
                    waiting_retry=batch.waiting_retry > 0,
                )
                if moved:
                    report.touch(batch.id)
                queued += moved
            if not queued and not batch.in_progress and reasons[batch.id] is None:
                reasons[batch.id] = self.waits.idle_reason(batch, hours, now)
            wants = demand(batch, queued)
            if wants is not None:
                demands[batch.id] = wants
        free_lines = settings.plan_concurrency - busy_lines
        paced = self.pacer.available(now)
        if self._sleep is not None and self.config.pace_ahead_seconds > 0:
            ahead = timedelta(seconds=self.config.pace_ahead_seconds)
            paced = self.pacer.available_within(now, ahead)
        if self.health.placing_paused(now):  # Retry-After, or Twilio's queue draining
            paced = 0
        slower = self.health.placing.reason(now)
        if slower is not None:  # the details say why dialing is slower than the setting
            for batch_id in demands:
                reasons[batch_id] = reasons.get(batch_id) or slower
        budget = self.placer.claim_limit(
            min(free_lines, paced, self.config.max_placements_per_tick)
        )
        shares = share_capacity(demands, max(0, budget), self._rotation)
        self._rotation += 1
        if free_lines <= 0:
            for batch_id in demands:
                reasons[batch_id] = capacity_reason(settings.plan_concurrency)
        if shares and provider is not None:
            self.placer.concurrency = settings.placement_concurrency
            name = provider.name
            claims = self.placer.claim_all(shares, by_id, name, settings, now, report)
            self.placer.place_all(provider, claims, windows, report)
        if sum(demands[b][1] for b in demands) > budget and free_lines > budget:
            if self.pacer.spread:  # the next tick waits for its first start itself
                frees = self.pacer.next_due(self.clock())
                lead = self.config.pace_ahead_seconds / 2
            else:
                frees = self.pacer.frees_at(max(1, self.pacer.limit // 10))
                lead = 0.0
            if frees is not None:
                wait = (frees - self.clock()).total_seconds() / self._clock_rate.speed()
                report.next_tick_in = max(0.01, wait - lead)
        if report.budget_used:  # more to place: right after a short breath
            report.next_tick_in = self.config.lock_gap_seconds
        if not blocked and self.health.blocked(self.clock()):
            # Placing just found the provider unreachable: say so now, not next tick.
            for batch in provider_matters:
                reasons[batch.id] = self.health.reason(batch.timezone)
        store.write_reasons(self.sessions, by_id, reasons, report)
        return done
