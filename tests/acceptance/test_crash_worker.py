"""Crash safety (SPEC section 5, "No duplicates, nothing lost"): the headless worker is
killed with SIGKILL at random moments while it dials through the Twilio stand-in, again
and again, and restarted. At the end every recipient has a final status, and the
stand-in, which records every call it created, shows exactly one call per recipient.

The second test gives the stand-in a realistic create latency (each create answered
100-300 ms after the call is made, as real Twilio does) and several creates in flight at
once, and kills the worker while it places calls, so that kills land between a create
and its stored call id; it counts those kills (on SQLite and on PostgreSQL)."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from app.models.db import open_database
from app.models.schema import CallAttempt, Recipient
from app.models.snapshots import BatchCallSnapshot
from app.models.status import BatchStatus
from app.services.batch_calls import Actor, BatchCallService
from app.services.settings import SettingsStore
from app.standin.twilio_server import TwilioStandin
from app.testing.data import Row
from tests.conftest import fresh_postgres
from tests.services.engine_support import STANDIN_FROM, assert_counters_exact, new_batch, rows

ROOT = Path(__file__).resolve().parents[2]
KILLS = 20
RECIPIENTS = 150
#: Real Twilio answers a create in about 100-300 ms; each create draws its own delay.
LATENCY = (0.1, 0.3)
LATENCY_KILLS = 20
LATENCY_RECIPIENTS = 250
#: Kills that must land between a create and its stored call id, at least (of 20).
IN_GAP_AT_LEAST = 8

pytestmark = [pytest.mark.slow, pytest.mark.timeout(240)]


def start_worker(database_url: str, env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    with log.open("ab") as stderr:  # the child keeps its own copy of the file
        return subprocess.Popen(
            [
                sys.executable, "-m", "app.services.worker",
                "--database-url", database_url,
                "--pickup-interval", "0.5",
                "--dial-interval", "0.05",
                "--poll-interval", "0.2",
                "--unknown-settle-seconds", "1",
            ],
            cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=stderr,
        )  # fmt: skip


def standin_env(standin: TwilioStandin) -> dict[str, str]:
    return dict(
        os.environ,
        BATCHCALLS_TWILIO_API_BASE=standin.base_url,
        BATCHCALLS_TWILIO_ACCOUNT_SID=standin.account_sid,
        BATCHCALLS_TWILIO_AUTH_TOKEN=standin.auth_token,
    )


def program_outcomes(standin: TwilioStandin, people: list[Row], rng: random.Random) -> None:
    outcomes = ["completed"] * 7 + ["busy", "no-answer", "failed"]
    for person in people:
        standin.program(
            person.phone_number,
            outcome=rng.choice(outcomes),
            ring_seconds=rng.uniform(0.2, 0.6),
            talk_seconds=rng.uniform(0.2, 1.0),
        )


def finish_and_check(
    service: BatchCallService,
    sessions: sessionmaker[Session],
    standin: TwilioStandin,
    batch: BatchCallSnapshot,
    people: list[Row],
    start: Callable[[], subprocess.Popen[bytes]],
    log: Path,
) -> None:
    """A last worker is left to finish the job; then every recipient is final, the
    provider created exactly one call for each, and the database holds that one call as
    the recipient's one attempt."""
    worker = start()
    try:
        deadline = time.monotonic() + 90
        while service.get(batch.id).status is not BatchStatus.COMPLETED:
            assert time.monotonic() < deadline, log.read_text()[-3000:]
            assert worker.poll() is None, log.read_text()[-3000:]
            time.sleep(0.1)
    finally:
        worker.send_signal(signal.SIGTERM)
        worker.wait(10)
    calls = standin.calls

    snapshot = service.get(batch.id)
    assert snapshot.finished_count == len(people)
    assert_counters_exact(service, batch.id)
    created = Counter(call.to for call in calls)
    assert created == Counter({person.phone_number: 1 for person in people}), [
        number for number, n in created.items() if n != 1
    ]
    creates = Counter(
        r.form["To"][0]
        for r in standin.requests
        if r.method == "POST" and r.path.endswith("/Calls.json") and r.status == 201
    )
    assert creates == created  # the request log agrees: one create answered for each
    by_sid = {call.sid: call.to for call in calls}
    with sessions() as session:
        attempts = session.execute(
            select(CallAttempt.to_number, CallAttempt.attempt_number, CallAttempt.provider_call_id)
        ).all()
        recipients = session.execute(select(Recipient.phone_number, Recipient.attempts)).all()
    assert sorted(a.to_number for a in attempts) == sorted(p.phone_number for p in people)
    assert all(
        a.attempt_number == 1 and by_sid[a.provider_call_id] == a.to_number for a in attempts
    )
    assert all(r.attempts == 1 for r in recipients)


def test_killed_at_random_moments_the_worker_calls_nobody_twice_and_loses_nobody(
    service, sessions, database_url, tmp_path
):
    rng = random.Random(20261127)
    people = rows(RECIPIENTS)
    with TwilioStandin(seed=2) as standin:
        program_outcomes(standin, people, rng)
        # Slow answers: a kill often lands while a request is in flight, the case that
        # must be reconciled (the stand-in still creates the call after the kill).
        standin.faults(delay_seconds=0.03)
        SettingsStore(sessions).update(
            provider="twilio", calls_per_second=40.0, plan_concurrency=12
        )
        batch = new_batch(service, people, from_number=STANDIN_FROM, reserved=12)
        env = standin_env(standin)
        log = tmp_path / "worker.log"
        kills = 0
        while kills < KILLS:
            worker = start_worker(database_url, env, log)
            try:
                # Wait until it runs (its start-up line), then until it talks to the
                # provider (dialing, tracking, reconciling), and kill it at a random
                # moment of that work.
                deadline = time.monotonic() + 20
                while log.read_text().count("worker started") <= kills:
                    assert worker.poll() is None, f"the worker exited: {log.read_text()[-2000:]}"
                    assert time.monotonic() < deadline, "the worker did not start"
                    time.sleep(0.01)
                requests_before = len(standin.requests)
                while len(standin.requests) == requests_before and time.monotonic() < deadline:
                    time.sleep(0.005)
                time.sleep(rng.uniform(0.0, 0.3))
            finally:
                worker.send_signal(signal.SIGKILL)
                worker.wait(10)
            kills += 1
            if service.get(batch.id).status is BatchStatus.COMPLETED:
                break  # everyone reached before twenty kills: start again would not dial
        assert kills == KILLS, "the batch call finished too early to be killed often enough"

        again = lambda: start_worker(database_url, env, log)  # noqa: E731
        finish_and_check(service, sessions, standin, batch, people, again, log)


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def crash_database(
    request: pytest.FixtureRequest,
) -> Iterator[tuple[str, sessionmaker[Session], BatchCallService]]:
    """(URL, sessions, service) on a fresh SQLite file, or on the test PostgreSQL."""
    if request.param == "postgres":
        url = request.getfixturevalue("postgres_url")
        fresh_postgres(url)
    else:
        url = request.getfixturevalue("database_url")
    engine, sessions = open_database(url)
    try:
        yield url, sessions, BatchCallService(sessions, actor=Actor("qa", "test-host"))
    finally:
        engine.dispose()


def unstored_calls(standin: TwilioStandin, sessions: sessionmaker[Session]) -> set[str]:
    """Once the stand-in has answered every request it received (the dead worker's
    included): the calls it created whose call id no attempt holds. The request log
    shows each such call's create answered 201, to nobody."""
    deadline = time.monotonic() + 10
    settled = 0
    while settled < 3:  # idle three looks in a row: nothing left on its way in
        assert time.monotonic() < deadline, "the stand-in kept answering"
        settled = settled + 1 if standin.requests_in_flight == 0 else 0
        time.sleep(0.02)
    calls = standin.calls
    with sessions() as session:
        stored = set(
            session.scalars(
                select(CallAttempt.provider_call_id).where(
                    CallAttempt.provider_call_id.is_not(None)
                )
            )
        )
    unstored = {call.sid: call.to for call in calls if call.sid not in stored}
    while True:  # a request is logged just after it stops counting as in flight
        answered = Counter(
            r.form["To"][0]
            for r in standin.requests
            if r.method == "POST" and r.path.endswith("/Calls.json") and r.status == 201
        )
        if all(answered[to] >= 1 for to in unstored.values()):
            return set(unstored)
        assert time.monotonic() < deadline, "a created call's create is not in the log"
        time.sleep(0.02)


def test_killed_between_a_create_and_its_stored_call_id_the_worker_calls_nobody_twice(
    crash_database, tmp_path
):
    url, sessions, service = crash_database
    rng = random.Random(20261130)
    people = rows(LATENCY_RECIPIENTS)
    low, high = LATENCY
    with TwilioStandin(seed=3, create_delay=low, create_delay_max=high) as standin:
        program_outcomes(standin, people, rng)
        SettingsStore(sessions).update(
            provider="twilio", calls_per_second=20.0, plan_concurrency=12, placement_concurrency=6
        )
        batch = new_batch(service, people, from_number=STANDIN_FROM, reserved=12)
        env = standin_env(standin)
        log = tmp_path / "worker.log"
        in_gap = 0
        unstored_before: set[str] = set()
        for kill in range(LATENCY_KILLS):
            created_before = len(standin.calls)
            worker = start_worker(url, env, log)
            try:
                # Wait until it places a call (the stand-in has made it; its answer comes
                # 100-300 ms later), then kill it within the longest answer delay.
                deadline = time.monotonic() + 30
                while len(standin.calls) == created_before:
                    assert worker.poll() is None, f"the worker exited: {log.read_text()[-2000:]}"
                    assert time.monotonic() < deadline, f"no call placed: {log.read_text()[-2000:]}"
                    time.sleep(0.005)
                time.sleep(rng.uniform(0.0, high))
            finally:
                worker.send_signal(signal.SIGKILL)
                worker.wait(10)
            unstored = unstored_calls(standin, sessions)
            if unstored - unstored_before:  # a call made for this worker, its id never stored
                in_gap += 1
            unstored_before = unstored
            status = service.get(batch.id).status
            assert status is not BatchStatus.COMPLETED, f"finished after {kill + 1} kills"
        print(
            f"{in_gap} of {LATENCY_KILLS} kills landed between a create and its stored call "
            f"id ({len(standin.calls)} calls made, {service.get(batch.id).finished_count} of "
            f"{len(people)} recipients final before the last worker)"
        )
        assert in_gap >= IN_GAP_AT_LEAST, f"only {in_gap} of {LATENCY_KILLS} kills in the gap"

        again = lambda: start_worker(url, env, log)  # noqa: E731
        finish_and_check(service, sessions, standin, batch, people, again, log)
