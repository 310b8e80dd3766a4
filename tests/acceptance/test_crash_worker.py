"""Crash safety (SPEC section 5, "No duplicates, nothing lost"): the headless worker is
killed with SIGKILL at random moments while it dials through the Twilio stand-in, again
and again, and restarted. At the end every recipient has a final status, and the
stand-in, which records every call it created, shows exactly one call per recipient."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest
from sqlalchemy import select

from app.models.schema import CallAttempt, Recipient
from app.models.status import BatchStatus
from app.services.settings import SettingsStore
from app.standin.twilio_server import TwilioStandin
from tests.services.engine_support import STANDIN_FROM, assert_counters_exact, new_batch, rows

ROOT = Path(__file__).resolve().parents[2]
KILLS = 20
RECIPIENTS = 150

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


def test_killed_at_random_moments_the_worker_calls_nobody_twice_and_loses_nobody(
    service, sessions, database_url, tmp_path
):
    rng = random.Random(20261127)
    people = rows(RECIPIENTS)
    outcomes = ["completed"] * 7 + ["busy", "no-answer", "failed"]
    with TwilioStandin(seed=2) as standin:
        for person in people:
            standin.program(
                person.phone_number,
                outcome=rng.choice(outcomes),
                ring_seconds=rng.uniform(0.2, 0.6),
                talk_seconds=rng.uniform(0.2, 1.0),
            )
        # Slow answers: a kill often lands while a request is in flight, the case that
        # must be reconciled (the stand-in still creates the call after the kill).
        standin.faults(delay_seconds=0.03)
        SettingsStore(sessions).update(
            provider="twilio", calls_per_second=40.0, plan_concurrency=12
        )
        batch = new_batch(service, people, from_number=STANDIN_FROM, reserved=12)
        env = dict(
            os.environ,
            BATCHCALLS_TWILIO_API_BASE=standin.base_url,
            BATCHCALLS_TWILIO_ACCOUNT_SID=standin.account_sid,
            BATCHCALLS_TWILIO_AUTH_TOKEN=standin.auth_token,
        )
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

        # A last worker is left to finish the job.
        worker = start_worker(database_url, env, log)
        try:
            deadline = time.monotonic() + 60
            while service.get(batch.id).status is not BatchStatus.COMPLETED:
                assert time.monotonic() < deadline, log.read_text()[-3000:]
                assert worker.poll() is None, log.read_text()[-3000:]
                time.sleep(0.1)
        finally:
            worker.send_signal(signal.SIGTERM)
            worker.wait(10)
        calls = standin.calls

    # Every recipient is final; the provider created exactly one call for each.
    snapshot = service.get(batch.id)
    assert snapshot.finished_count == RECIPIENTS
    assert_counters_exact(service, batch.id)
    created = Counter(call.to for call in calls)
    assert created == Counter({person.phone_number: 1 for person in people}), [
        number for number, n in created.items() if n != 1
    ]
    # And the database holds that one call as the recipient's one attempt.
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
