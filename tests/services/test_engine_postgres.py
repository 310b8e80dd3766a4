"""The engine on PostgreSQL (the shared deployment): the same pickup, dialing, locks and
lease as on SQLite, with no SQLite-only SQL. make test starts the server."""

from __future__ import annotations

import threading
import time

import pytest
from sqlalchemy import text

import app.services.engine.store as engine_store
from app.models.db import open_database
from app.models.status import BatchStatus, RecipientStatus
from app.services.batch_calls import Actor, BatchCallService
from app.services.engine import DialerEngine, EngineConfig
from app.services.telephony import CallRequest
from tests.conftest import FakeClock, fresh_postgres
from tests.services.engine_support import (
    ScriptedProvider,
    assert_counters_exact,
    finished,
    new_batch,
    run_until,
)

pytestmark = pytest.mark.postgres

CONFIG = EngineConfig(poll_interval_seconds=1.0, seed=5)


@pytest.fixture
def pg(postgres_url):
    fresh_postgres(postgres_url)
    engine, sessions = open_database(postgres_url)
    clock = FakeClock()
    service = BatchCallService(sessions, clock=clock, actor=Actor("qa", "pg-host"))
    yield service, sessions, clock
    engine.dispose()


def make_engine_for(sessions, provider, clock, **settings) -> DialerEngine:
    values = {"calls_per_second": 10.0, "plan_concurrency": 10}
    values.update(settings)
    return DialerEngine(sessions, provider, clock=clock, config=CONFIG, settings_overrides=values)


def test_a_batch_call_runs_to_completion_on_postgresql(pg):
    service, sessions, clock = pg
    batch = new_batch(service, 30, reserved=4)
    provider = ScriptedProvider(clock)
    engine = make_engine_for(sessions, provider, clock)
    run_until(engine, clock, finished(service, batch.id), step=5)
    snapshot = service.get(batch.id)
    assert snapshot.status is BatchStatus.COMPLETED and snapshot.finished_count == 30
    assert len(provider.placed_to()) == len(set(provider.placed_to())) == 30
    assert_counters_exact(service, batch.id)


def test_racing_pickups_take_each_batch_call_once_on_postgresql(pg, postgres_url):
    service, _, clock = pg
    batches = [new_batch(service, 1, name=f"B{i}") for i in range(10)]
    databases = [open_database(postgres_url) for _ in range(3)]
    engines = [
        DialerEngine(s, ScriptedProvider(clock), clock=clock, use_lease=False) for _, s in databases
    ]
    barrier = threading.Barrier(len(engines))
    taken: list[int] = []
    lock = threading.Lock()

    def race(engine: DialerEngine) -> None:
        barrier.wait()
        mine = engine.pickup(clock())
        with lock:
            taken.extend(mine)

    threads = [threading.Thread(target=race, args=(e,)) for e in engines]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    for db, _ in databases:
        db.dispose()
    assert sorted(taken) == [b.id for b in batches]


def test_a_pause_waits_for_the_call_being_placed_on_postgresql(pg):
    """FOR SHARE on the batch call row makes the supervisor's UPDATE wait for the call
    being placed; after the pause commits no call is placed."""
    service, sessions, clock = pg
    batch = new_batch(service, 30, reserved=10)
    committed: list[float] = []
    placed: list[float] = []
    worker: list[threading.Thread] = []
    #: Recorded, not asserted, in the provider call: the engine would swallow an assert.
    overtaken: list[int] = []

    def supervisor() -> None:
        service.pause(batch.id)
        committed.append(time.monotonic())

    def during_place(request: CallRequest) -> None:
        if len(placed) == 2 and not worker:
            thread = threading.Thread(target=supervisor)
            worker.append(thread)
            thread.start()
            time.sleep(0.2)
            if committed:
                overtaken.append(len(placed))
        placed.append(time.monotonic())

    provider = ScriptedProvider(clock, on_place=during_place)
    engine = make_engine_for(sessions, provider, clock)
    engine.tick()
    worker[0].join(30)
    assert overtaken == [], "the pause must wait for the call being placed"
    assert committed and all(moment < committed[0] for moment in placed)
    calls = len(provider.placed_to())
    for _ in range(10):
        clock.advance(60)
        engine.tick()
    assert len(provider.placed_to()) == calls
    snapshot = service.get(batch.id)
    assert snapshot.status is BatchStatus.PAUSED
    assert snapshot.counts[RecipientStatus.PENDING] == 30 - calls
    assert snapshot.finished_count == calls
    assert_counters_exact(service, batch.id)


def test_only_one_engine_dials_a_postgresql_database(pg, postgres_url):
    service, sessions, clock = pg
    batch = new_batch(service, 10, reserved=2)
    other_db, other_sessions = open_database(postgres_url)
    first_provider, second_provider = ScriptedProvider(clock), ScriptedProvider(clock)
    first = make_engine_for(sessions, first_provider, clock)
    second = make_engine_for(other_sessions, second_provider, clock)
    assert first.tick().state == "dialing"
    assert second.tick().status.text.startswith("standby: dialing is done by")
    clock.advance(40)  # the first engine died: its lease expired
    assert second.tick().state == "dialing"
    run_until(second, clock, finished(service, batch.id), step=5)
    other_db.dispose()
    everyone = first_provider.placed_to() + second_provider.placed_to()
    assert sorted(everyone) == sorted(set(everyone)) and len(everyone) == 10


def _waiting_for_a_lock(sessions) -> bool:
    """Another backend of this database waits for a row lock (the supervisor's UPDATE)."""
    with sessions() as session:
        return bool(
            session.scalar(
                text(
                    "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
                    "AND wait_event_type = 'Lock'"
                )
            )
        )


def test_a_pause_during_the_queue_top_up_leaves_nothing_queued_on_postgresql(pg, monkeypatch):
    """The engine is moving the next recipients PENDING -> QUEUED when the supervisor
    pauses: the Pause waits for that move (FOR SHARE on the batch call), then takes the
    queued recipients back, so the paused batch call has nothing QUEUED."""
    service, sessions, clock = pg
    batch = new_batch(service, 30, reserved=5)
    engine = make_engine_for(
        sessions, ScriptedProvider(clock), clock, calls_per_second=1.0, plan_concurrency=10
    )
    engine.tick()  # picked up, one call placed, four recipients queued
    real_move = engine_store.move_recipients
    pausing: list[threading.Thread] = []

    def move(session, batch_id, sources, target, **kwargs):  # type: ignore[no-untyped-def]
        if target is RecipientStatus.QUEUED and not pausing:
            thread = threading.Thread(target=service.pause, args=(batch.id,))
            pausing.append(thread)
            thread.start()
            deadline = time.monotonic() + 5  # until the Pause waits for the lock or is done
            while thread.is_alive() and not _waiting_for_a_lock(sessions):
                assert time.monotonic() < deadline
                time.sleep(0.01)
        return real_move(session, batch_id, sources, target, **kwargs)

    monkeypatch.setattr(engine_store, "move_recipients", move)
    clock.advance(2)
    engine.tick()  # tops the queue up
    assert pausing
    pausing[0].join(30)
    snapshot = service.get(batch.id)
    assert snapshot.status is BatchStatus.PAUSED
    assert snapshot.counts[RecipientStatus.QUEUED] == 0
    assert_counters_exact(service, batch.id)
