"""The engine on QA's fast clock (docs/qa.md): the budgets that keep the application
responsive are measured on the real clock, so a clock running 300 times faster than real
time still dials (issue 12 item 1)."""

from __future__ import annotations

import threading
import time
from collections import Counter

from sqlalchemy import select

from app.models.db import open_database
from app.models.schema import CallAttempt
from app.models.status import BatchStatus
from app.services.batch_calls import Actor, BatchCallService
from app.services.engine import EngineRunner
from app.services.simulation import SimulationProvider
from app.testing.clocks import SpeedClock
from tests.services.engine_support import assert_counters_exact, new_batch, rows

#: Real seconds after which the run counts as stuck: it takes about 5 s on a shared
#: machine (before the fix, 32 of the 50 calls were placed in 40 s).
REAL_TIME_LIMIT = 30.0


def test_five_competing_batch_calls_complete_on_a_clock_300_times_faster(database_url):
    clock = SpeedClock(speed=300)
    db, sessions = open_database(database_url)
    service = BatchCallService(sessions, clock=clock, actor=Actor("qa", "test-host"))
    batches = [
        new_batch(service, rows(10, start=10 * i), name=f"Campaign {i}", reserved=5)
        for i in range(5)
    ]
    stop = threading.Event()
    # Ten lines shared by five batch calls that each want five: they compete for lines
    # and for the pacing (one call per simulated second).
    runner = EngineRunner(
        database_url,
        stop=stop,
        provider=SimulationProvider(clock, seed=7),
        clock=clock,
        settings_overrides={"plan_concurrency": 10, "calls_per_second": 1.0},
    )
    started = time.monotonic()
    try:
        while time.monotonic() - started < REAL_TIME_LIMIT:
            report = runner.tick()
            assert report.status.state == "dialing", report.status.text
            if all(service.get(b.id).status is BatchStatus.COMPLETED for b in batches):
                break
            stop.wait(runner.seconds_to_next_tick(report))
    finally:
        runner.close()
    statuses = {b.name: service.get(b.id).status for b in batches}
    assert set(statuses.values()) == {BatchStatus.COMPLETED}, statuses
    with sessions() as session:
        numbers = Counter(session.scalars(select(CallAttempt.to_number)).all())
    assert len(numbers) == 50 and set(numbers.values()) == {1}  # each called once
    for batch in batches:
        assert_counters_exact(service, batch.id)
    db.dispose()
