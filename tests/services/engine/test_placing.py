"""Placing outside any database lock (issue 7 item 3, issue 8 item 2): several create
requests in flight at once, paced and fair; a fencing token and the holder's own clocks
keep a taken-over or frozen holder from placing; a Pause answers within seconds and no
request starts after it has answered."""

from __future__ import annotations

import itertools
import threading
import time
from collections import Counter
from types import SimpleNamespace

import pytest
from sqlalchemy import func, select, update

import app.services.lease as lease_module
from app.models.schema import CallAttempt, EngineLease
from app.models.status import BatchStatus, RecipientStatus
from app.services.engine import DialerEngine, EngineConfig
from app.services.telephony import REMOTE_SERVICE, CallRequest
from tests.services.engine_support import ScriptedProvider, assert_counters_exact, new_batch, rows

CONFIG = EngineConfig(poll_interval_seconds=1.0, unknown_settle_seconds=5.0, seed=7)


class InFlight:
    """Counts the create requests in flight at once (a provider hook)."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self.lock = threading.Lock()
        self.now = 0
        self.most = 0
        self.started: list[float] = []

    def __call__(self, request: CallRequest) -> None:
        with self.lock:
            self.now += 1
            self.most = max(self.most, self.now)
            self.started.append(time.monotonic())
        time.sleep(self.seconds)
        with self.lock:
            self.now -= 1


def remote(clock, hook) -> ScriptedProvider:
    """The scripted provider, seen by the engine as a remote service (sent from threads)."""
    return ScriptedProvider(clock, on_place=hook, capabilities=REMOTE_SERVICE)


def engine_for(sessions, provider, clock, **settings) -> DialerEngine:
    values = {"calls_per_second": 12.0, "plan_concurrency": 30, "placement_concurrency": 4}
    values.update(settings)
    return DialerEngine(sessions, provider, clock=clock, config=CONFIG, settings_overrides=values)


def test_several_requests_are_in_flight_at_once_paced_and_shared_fairly(service, sessions, clock):
    batches = [
        new_batch(service, rows(10, start=10 * i), name=f"B{i}", reserved=10) for i in range(3)
    ]
    hook = InFlight(0.15)
    provider = remote(clock, hook)
    report = engine_for(sessions, provider, clock).tick()
    # Twelve calls per second (the engine's clock stands still): twelve sent, four at a
    # time, four for each batch call.
    assert report.placed == len(provider.placed_to()) == 12
    assert hook.most == 4
    per_batch = Counter(number[-2] for number in provider.placed_to())  # +1202555 0 0..2 9
    assert sorted(per_batch.values()) == [4, 4, 4]
    for batch in batches:
        assert service.get(batch.id).counts[RecipientStatus.IN_PROGRESS] == 4
        assert_counters_exact(service, batch.id)


def test_placement_concurrency_one_sends_one_request_at_a_time(service, sessions, clock):
    new_batch(service, 6, reserved=6)
    hook = InFlight(0.05)
    provider = remote(clock, hook)
    engine_for(sessions, provider, clock, placement_concurrency=1).tick()
    assert len(provider.placed_to()) == 6 and hook.most == 1


def test_an_engine_whose_fence_is_stale_claims_nothing(service, sessions, clock):
    """Another engine took the lease over (its fence is newer) while this one still
    believes it holds it: the claiming transaction sees the fence and claims nothing."""
    batch = new_batch(service, 10, reserved=10)
    provider = remote(clock, InFlight(0.0))
    engine = engine_for(sessions, provider, clock, calls_per_second=5.0)
    engine.tick()
    placed = len(provider.placed_to())
    assert placed == 5 and service.get(batch.id).counts[RecipientStatus.QUEUED] == 5
    with sessions.begin() as session:
        session.execute(update(EngineLease).values(holder="elsewhere", fence=EngineLease.fence + 1))
    clock.advance(1)  # within the heartbeat: the lease is not read again before claiming
    report = engine.tick()
    assert report.placed == 0 and len(provider.placed_to()) == placed
    assert engine.lease is not None and not engine.lease.held
    with sessions() as session:
        assert session.scalar(select(func.count()).select_from(CallAttempt)) == placed
    assert_counters_exact(service, batch.id)


def test_a_holder_past_its_own_lease_deadline_sends_nothing(service, sessions, clock, monkeypatch):
    """Frozen (SIGSTOP) past the lease's expiry by its monotonic clock, while the engine's
    clock says otherwise: the last check before each request refuses to send."""
    batch = new_batch(service, 5, reserved=5)
    provider = remote(clock, InFlight(0.0))
    engine = engine_for(sessions, provider, clock)
    assert engine.lease is not None
    engine.lease.hold(clock())
    real = time.monotonic
    monkeypatch.setattr(
        lease_module, "time", SimpleNamespace(monotonic=lambda: real() + CONFIG.lease_ttl_seconds)
    )
    engine.tick()
    assert provider.placements == []
    snapshot = service.get(batch.id)
    assert snapshot.counts[RecipientStatus.IN_PROGRESS] == 0
    with sessions() as session:
        assert session.scalar(select(func.count()).select_from(CallAttempt)) == 0
    assert_counters_exact(service, batch.id)


def test_a_pause_answers_at_once_and_no_request_starts_after_it(service, sessions, clock):
    batch = new_batch(service, 40, reserved=40)
    hook = InFlight(0.3)
    provider = remote(clock, hook)
    engine = engine_for(sessions, provider, clock, calls_per_second=100.0, plan_concurrency=40)
    ticking = threading.Thread(target=engine.tick)
    ticking.start()
    deadline = time.monotonic() + 10
    while not hook.started and time.monotonic() < deadline:
        time.sleep(0.005)
    started = time.monotonic()
    service.pause(batch.id)
    answered = time.monotonic()
    ticking.join(30)
    assert answered - started < 2.5  # the calls being placed (0.3 s), not the queue
    assert hook.started and all(moment < answered for moment in hook.started)
    snapshot = service.get(batch.id)
    assert snapshot.status is BatchStatus.PAUSED
    sent = len(provider.placed_to())
    assert snapshot.counts[RecipientStatus.IN_PROGRESS] == sent
    assert snapshot.counts[RecipientStatus.PENDING] == 40 - sent
    assert_counters_exact(service, batch.id)


def real_time_engine(sessions, provider, clock, **settings) -> DialerEngine:
    """An engine that can wait (as the worker's): its waits advance the fake clock, so
    its pacing spreads the starts and leaves the requests in flight between ticks."""
    values = {"calls_per_second": 10.0, "plan_concurrency": 30, "placement_concurrency": 4}
    values.update(settings)
    return DialerEngine(
        sessions,
        provider,
        clock=clock,
        config=CONFIG,
        settings_overrides=values,
        sleep=clock.advance,
    )


def marked_moments(sessions) -> list:
    with sessions() as session:
        return sorted(session.scalars(select(CallAttempt.requested_at)).all())


def test_with_a_real_clock_the_starts_are_spread_and_answers_recorded_by_the_next_tick(
    service, sessions, clock
):
    """The tick hands each request to a sender at its evenly spread moment (one every
    1.03 / 10 s, not three at once), and returns with the requests still in flight: the
    next tick records their answers, and nobody is placed twice."""
    batch = new_batch(service, 3, reserved=3)
    release = threading.Event()
    provider = remote(clock, lambda _request: release.wait(10))
    engine = real_time_engine(sessions, provider, clock)
    try:
        first = engine.tick()
        assert first.placed == 0  # all three sent, none answered yet
        moments = marked_moments(sessions)
        assert len(moments) == 3
        interval = engine.pacer.interval.total_seconds()
        gaps = [(b - a).total_seconds() for a, b in itertools.pairwise(moments)]
        assert gaps == [pytest.approx(interval, abs=1e-6)] * 2 and interval == 0.103
        assert service.get(batch.id).counts[RecipientStatus.IN_PROGRESS] == 3
        release.set()
        placed = 0
        deadline = time.monotonic() + 10
        while placed < 3 and time.monotonic() < deadline:
            placed += engine.tick().placed
            time.sleep(0.01)
        assert placed == 3
    finally:
        release.set()
        engine.close()
    assert sorted(provider.placed_to()) == sorted(set(provider.placed_to()))
    with sessions() as session:
        ids = session.scalars(select(CallAttempt.provider_call_id)).all()
    assert len(ids) == 3 and all(ids)
    assert_counters_exact(service, batch.id)


def test_closing_records_the_answers_of_the_requests_still_in_flight(service, sessions, clock):
    batch = new_batch(service, 2, reserved=2)
    release = threading.Event()
    provider = remote(clock, lambda _request: release.wait(10))
    engine = real_time_engine(sessions, provider, clock)
    engine.tick()
    assert service.get(batch.id).counts[RecipientStatus.IN_PROGRESS] == 2
    release.set()
    engine.close()  # waits (a second at most) for the answers and stores the call ids
    with sessions() as session:
        ids = session.scalars(select(CallAttempt.provider_call_id)).all()
    assert len(ids) == 2 and all(ids)
    assert_counters_exact(service, batch.id)
