"""A frozen lease holder on a shared PostgreSQL database (issue 7 item 3): the holding
worker is stopped with SIGSTOP while inside a transaction. A standby takes over within
the lease's expiry plus 5 s, a supervisor's `batchcalls pause` answers within 5 s, and
the holder, woken, places nothing (the Twilio stand-in's request log is the witness)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest
from sqlalchemy import select, text

from app.models.db import make_engine, open_database
from app.models.schema import EngineLease
from app.models.status import BatchStatus
from app.services.batch_calls import Actor, BatchCallService
from app.services.engine import EngineConfig
from app.services.settings import SettingsStore
from app.standin.twilio_server import TwilioStandin
from tests.conftest import fresh_postgres
from tests.services.engine_support import STANDIN_FROM, new_batch, rows

ROOT = Path(__file__).resolve().parents[2]
LEASE_TTL = EngineConfig().lease_ttl_seconds

pytestmark = [pytest.mark.slow, pytest.mark.timeout(240)]


def with_name(url: str, name: str) -> str:
    """The URL with a libpq application_name, to find the process's sessions."""
    return f"{url}{'&' if '?' in url else '?'}application_name={name}"


def start_worker(url: str, env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    with log.open("ab") as stderr:
        return subprocess.Popen(
            [
                sys.executable, "-m", "app.services.worker",
                "--database-url", url,
                "--pickup-interval", "0.5",
                "--dial-interval", "0.05",
                "--poll-interval", "0.5",
            ],
            cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=stderr,
        )  # fmt: skip


def wait_for(what: str, check, seconds: float, log: Path | None = None) -> float:  # type: ignore[no-untyped-def]
    until = time.monotonic() + seconds
    while not check():
        assert time.monotonic() < until, f"{what}: {log.read_text()[-3000:] if log else ''}"
        time.sleep(0.01)
    return time.monotonic()


def creates(standin: TwilioStandin) -> int:
    return sum(1 for r in standin.requests if r.method == "POST" and r.path.endswith("/Calls.json"))


def creates_settled(standin: TwilioStandin, quiet: float = 1.0, limit: float = 15.0) -> int:
    """The creates once none has arrived for `quiet` seconds (both workers stopped: what
    still arrives was in flight before)."""
    count, since, started = creates(standin), time.monotonic(), time.monotonic()
    while time.monotonic() - since < quiet and time.monotonic() - started < limit:
        time.sleep(0.05)
        now = creates(standin)
        if now != count:
            count, since = now, time.monotonic()
    return count


def test_a_holder_frozen_inside_a_transaction_is_taken_over_and_places_nothing_when_woken(
    postgres_url, tmp_path, request
):
    fresh_postgres(postgres_url)
    db, sessions = open_database(postgres_url)
    service = BatchCallService(sessions, actor=Actor("supervisor", "desk"))
    watcher = make_engine(postgres_url, isolation_level="AUTOCOMMIT")
    # Closed however the test ends (a failure left them to the garbage collector, whose
    # ResourceWarnings then failed the next test's setup).
    request.addfinalizer(db.dispose)
    request.addfinalizer(watcher.dispose)
    holder = standby = None
    with TwilioStandin(seed=4) as standin:
        people = rows(400)
        for person in people:
            standin.program(person.phone_number, ring_seconds=0.5, talk_seconds=2.0)
        SettingsStore(sessions).update(
            provider="twilio", calls_per_second=20.0, plan_concurrency=40
        )
        paused = new_batch(
            service, people[:200], name="To pause", from_number=STANDIN_FROM, reserved=20
        )
        other = new_batch(
            service, people[200:], name="Goes on", from_number=STANDIN_FROM, reserved=20
        )
        env = dict(
            os.environ,
            BATCHCALLS_TWILIO_API_BASE=standin.base_url,
            BATCHCALLS_TWILIO_ACCOUNT_SID=standin.account_sid,
            BATCHCALLS_TWILIO_AUTH_TOKEN=standin.auth_token,
        )
        holder_log, standby_log = tmp_path / "holder.log", tmp_path / "standby.log"
        try:
            holder = start_worker(with_name(postgres_url, "frozen-holder"), env, holder_log)
            wait_for("the holder dials", lambda: len(standin.calls) >= 10, 30, holder_log)
            standby = start_worker(with_name(postgres_url, "standby"), env, standby_log)
            wait_for(
                "the standby stands by",
                lambda: "standing by" in standby_log.read_text(),
                30,
                standby_log,
            )

            # Freeze the holder while one of its sessions is inside a transaction.
            in_transaction = text(
                "SELECT count(*) FROM pg_stat_activity "
                "WHERE application_name = 'frozen-holder' AND xact_start IS NOT NULL"
            )
            tries = 0
            with watcher.connect() as connection:
                while True:
                    tries += 1
                    assert tries < 20_000, "never caught the holder inside a transaction"
                    if not connection.execute(in_transaction).scalar():
                        continue
                    holder.send_signal(signal.SIGSTOP)
                    frozen_at = time.monotonic()
                    if connection.execute(in_transaction).scalar():
                        break
                    holder.send_signal(signal.SIGCONT)  # it had just committed: again
            with sessions() as session:
                frozen_holder = session.scalar(select(EngineLease.holder))

            # The supervisor pauses a batch call: the answer comes within 5 s.
            started = time.monotonic()
            pause = subprocess.run(
                [sys.executable, "-m", "app", "pause", str(paused.id)],
                cwd=ROOT,
                env=dict(env, BATCHCALLS_DATABASE_URL=postgres_url),
                capture_output=True,
                text=True,
                timeout=60,
            )
            pause_seconds = time.monotonic() - started
            assert pause.returncode == 0, pause.stdout + pause.stderr
            assert service.get(paused.id).status is BatchStatus.PAUSED

            # The standby takes over within the lease's expiry plus 5 s.
            def taken_over() -> bool:
                with sessions() as session:
                    current = session.scalar(select(EngineLease.holder))
                return current not in (None, frozen_holder)

            took_over_at = wait_for("the standby takes over", taken_over, LEASE_TTL + 30)
            takeover_seconds = took_over_at - frozen_at
            wait_for(
                "the standby dials",
                lambda: "now holds the dialer lease" in standby_log.read_text(),
                10,
            )

            # The holder wakes while the standby is stopped: any create from now on would
            # be the holder's, once the standby's requests in flight have arrived (under
            # load one took longer than a fixed 0.5 s and was counted as the holder's).
            standby.send_signal(signal.SIGSTOP)
            before = creates_settled(standin)
            noticed = holder_log.read_text().count("standing by")
            holder.send_signal(signal.SIGCONT)
            wait_for(
                "the woken holder notices it was taken over",
                lambda: holder_log.read_text().count("standing by") > noticed,
                5,
                holder_log,
            )
            time.sleep(3.0)  # and goes on standing by
            after_wake = creates(standin)
            standby.send_signal(signal.SIGCONT)
            print(
                f"\nfrozen holder: standby took over after {takeover_seconds:.1f} s "
                f"(lease expiry {LEASE_TTL:g} s); `batchcalls pause` answered in "
                f"{pause_seconds:.1f} s; creates by the woken holder: {after_wake - before}"
            )
            assert after_wake == before, "the woken holder placed calls"
            assert takeover_seconds <= LEASE_TTL + 5
            assert pause_seconds < 5.0
            wait_for(
                "the other batch call completes",
                lambda: service.get(other.id).status is BatchStatus.COMPLETED,
                90,
                standby_log,
            )
        finally:
            for process in (holder, standby):
                if process is not None:
                    process.send_signal(signal.SIGCONT)
                    process.send_signal(signal.SIGTERM)
            for process in (holder, standby):
                if process is not None:
                    try:
                        process.wait(15)
                    except subprocess.TimeoutExpired:
                        process.kill()
        calls = standin.calls
    # Nobody was called twice, whoever placed the calls.
    created = Counter(call.to for call in calls)
    assert max(created.values()) == 1, [n for n, c in created.items() if c > 1]
