"""The headless worker: one tick, a run stopped by an event or a signal, the command line
against the Twilio stand-in, and what it logs (masked numbers, never a secret)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from datetime import UTC, datetime
from pathlib import Path

import pytest

from app.models.status import BatchStatus, RecipientStatus
from app.services.settings import AppSettings, SettingsStore
from app.services.worker import EXIT_DATABASE, EXIT_OK, run_worker
from app.standin.twilio_server import TwilioStandin
from tests.services.engine_support import STANDIN_FROM, ScriptedProvider, new_batch, rows

ROOT = Path(__file__).resolve().parents[2]


def real_clock() -> datetime:
    return datetime.now(UTC)


def test_once_runs_a_single_tick(service, database_url):
    batch = new_batch(service, 3)
    provider = ScriptedProvider(real_clock)
    assert run_worker(database_url, once=True, provider=provider) == EXIT_OK
    assert service.get(batch.id).status is BatchStatus.RUNNING
    assert len(provider.placements) == 1  # one call per second by default


def test_runs_until_the_stop_event_is_set(service, database_url):
    batch = new_batch(service, 3)
    stop = threading.Event()
    codes: list[int] = []
    provider = ScriptedProvider(real_clock)
    worker = threading.Thread(
        target=lambda: codes.append(
            run_worker(
                database_url,
                stop_event=stop,
                provider=provider,
                settings_overrides={"dial_interval_seconds": 0.05, "calls_per_second": 100},
            )
        )
    )
    worker.start()
    deadline = time.monotonic() + 10
    while len(provider.placements) < 3 and time.monotonic() < deadline:
        time.sleep(0.02)
    stopped_at = time.monotonic()
    stop.set()
    worker.join(5)
    assert not worker.is_alive() and codes == [EXIT_OK]
    assert time.monotonic() - stopped_at < 2
    assert service.get(batch.id).counts[RecipientStatus.IN_PROGRESS] == 3


def test_sigterm_stops_placing_calls_at_once(service, database_url):
    """The signal arrives while a tick is placing its calls: the call being placed is the
    last one, not the whole round."""
    if threading.current_thread() is not threading.main_thread():
        pytest.skip("signal handlers are installed only in the main thread")
    batch = new_batch(service, 30, reserved=30)

    def terminate_at_the_third_call(request: object) -> None:
        if len(provider.placements) == 2:
            os.kill(os.getpid(), signal.SIGTERM)

    provider = ScriptedProvider(real_clock, on_place=terminate_at_the_third_call)
    code = run_worker(
        database_url,
        provider=provider,
        settings_overrides={"calls_per_second": 100.0, "plan_concurrency": 30},
    )
    assert code == EXIT_OK
    assert len(provider.placements) == 3
    snapshot = service.get(batch.id)
    assert snapshot.counts[RecipientStatus.IN_PROGRESS] == 3
    assert snapshot.counts[RecipientStatus.PENDING] + snapshot.counts[RecipientStatus.QUEUED] == 27


def test_an_unreachable_database_is_a_clear_error(tmp_path, caplog):
    blocker = tmp_path / "a-file"
    blocker.write_text("x")
    code = run_worker(f"sqlite:///{blocker}/db.sqlite3", once=True)
    assert code == EXIT_DATABASE
    assert "is a file, not a folder" in caplog.text and str(blocker) in caplog.text


def test_twilio_without_credentials_fails_the_batch_call_with_what_to_do(
    service, sessions, database_url, monkeypatch
):
    for name in ("BATCHCALLS_TWILIO_ACCOUNT_SID", "BATCHCALLS_TWILIO_AUTH_TOKEN"):
        monkeypatch.delenv(name, raising=False)
    SettingsStore(sessions).update(provider="twilio")
    batch = new_batch(service, 2)
    run_worker(database_url, once=True)
    snapshot = service.get(batch.id)
    assert snapshot.status is BatchStatus.FAILED
    assert "BATCHCALLS_TWILIO_AUTH_TOKEN" in snapshot.failure_reason  # no keyring: the env way
    assert snapshot.counts[RecipientStatus.PENDING] == 2


def test_the_command_line_worker_dials_through_twilio_and_stops_on_sigterm(
    service, sessions, database_url
):
    people = rows(8)
    with TwilioStandin(seed=1) as standin:
        for person in people:
            standin.program(person.phone_number, ring_seconds=0.5, talk_seconds=0.5)
        SettingsStore(sessions).update(provider="twilio", calls_per_second=20.0)
        batch = new_batch(service, people, from_number=STANDIN_FROM, reserved=4)
        env = dict(
            os.environ,
            BATCHCALLS_TWILIO_API_BASE=standin.base_url,
            BATCHCALLS_TWILIO_ACCOUNT_SID=standin.account_sid,
            BATCHCALLS_TWILIO_AUTH_TOKEN=standin.auth_token,
        )
        process = subprocess.Popen(
            [
                sys.executable, "-m", "app.services.worker",
                "--database-url", database_url,
                "--pickup-interval", "1",
                "--dial-interval", "0.1",
                "--poll-interval", "0.3",
            ],
            cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )  # fmt: skip
        try:
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline:
                if service.get(batch.id).status is BatchStatus.COMPLETED:
                    break
                time.sleep(0.1)
            process.send_signal(signal.SIGTERM)
            _, stderr = process.communicate(timeout=10)
        finally:
            if process.poll() is None:
                process.kill()
                process.communicate()
        assert process.returncode == 0, stderr
        assert service.get(batch.id).status is BatchStatus.COMPLETED
        assert sorted(c.to for c in standin.calls) == sorted(p.phone_number for p in people)
        token = standin.auth_token
    assert 'picked up batch call 1 "Reminders"' in stderr
    assert "call placed to +1202***0000" in stderr
    assert "ended: COMPLETED" in stderr
    assert "received SIGTERM" in stderr and "worker stopped" in stderr
    assert token not in stderr
    assert "+12025550000" not in stderr  # numbers are masked
    database = Path(database_url.removeprefix("sqlite:///"))
    for path in database.parent.glob(database.name + "*"):
        assert token.encode() not in path.read_bytes()


@pytest.mark.parametrize("argument", ["--pickup-interval", "--dial-interval"])
def test_the_command_line_refuses_bad_intervals(argument, database_url):
    result = subprocess.run(
        [sys.executable, "-m", "app.services.worker", "--database-url", database_url,
         argument, "0"],
        cwd=ROOT, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert result.returncode != 0
    assert "is not a positive number of seconds" in result.stderr


# --------------------------------------------------------------------------- engine settings


def test_engine_config_follows_the_stored_settings_and_this_workers_overrides(sessions):
    from app.services.engine import EngineConfig
    from app.services.engine_settings import effective_settings, engine_config_for

    SettingsStore(sessions).update(poll_interval_seconds="7", lease_expiry_seconds="90")
    settings = effective_settings(sessions, {"lease_heartbeat_seconds": 10.0})
    config = engine_config_for(settings, EngineConfig(unknown_settle_seconds=4.0))

    assert config.poll_interval_seconds == 7.0
    assert (config.lease_heartbeat_seconds, config.lease_ttl_seconds) == (10.0, 90.0)
    assert config.unknown_settle_seconds == 4.0  # what the host set itself is kept
    assert SettingsStore(sessions).load().lease_heartbeat_seconds == 5.0  # not stored


def test_the_worker_logs_the_timing_it_runs_with(service, database_url, caplog):
    caplog.set_level("INFO")
    provider = ScriptedProvider(real_clock)
    overrides = {"poll_interval_seconds": 2.5, "lease_heartbeat_seconds": 4.0}
    assert run_worker(database_url, once=True, provider=provider, settings_overrides=overrides) == 0
    assert "poll interval 2.5 s, lease heartbeat 4 s, expiry 30 s" in caplog.text


def test_an_override_out_of_range_stops_the_worker_before_it_starts(database_url):
    from app.services.settings import SettingsError

    with pytest.raises(SettingsError, match=r"The poll interval must be between 0\.1 and 300"):
        run_worker(database_url, once=True, settings_overrides={"poll_interval_seconds": 301})


def test_batchcalls_worker_options_override_the_settings_for_this_worker(
    database_url, sessions, capsys
):
    from app.cli import main

    code = main(["worker", "--once", "--database-url", database_url, "--lease-expiry", "5"])
    err = capsys.readouterr().err
    assert code == 1
    assert "batchcalls: error: The lease expiry must be between 10 and 3600; 5.0 is not." in err

    code = main(["worker", "--once", "--database-url", database_url, "--lease-heartbeat", "20"])
    assert code == 1
    assert "at most a third of the lease expiry" in capsys.readouterr().err

    code = main(
        [
            "worker",
            "--once",
            "--database-url",
            database_url,
            "--poll-interval",
            "0.5",
            "--lease-expiry",
            "60",
        ]
    )
    assert code == 0
    assert "poll interval 0.5 s, lease heartbeat 5 s, expiry 60 s" in capsys.readouterr().err
    assert SettingsStore(sessions).load().poll_interval_seconds == 3.0


def test_placement_concurrency_is_a_worker_option_too(database_url, sessions, capsys):
    from app.cli import main
    from app.services.engine import EngineRunner
    from app.services.worker import _parser
    from app.services.worker_options import engine_overrides

    overrides = engine_overrides(_parser().parse_args(["--placement-concurrency", "4"]))
    assert overrides == {"placement_concurrency": 4}
    runner = EngineRunner(
        database_url,
        stop=threading.Event(),
        provider=ScriptedProvider(real_clock),
        settings_overrides=overrides,
    )
    try:
        assert runner.engine.settings.placement_concurrency == 4  # what the engine places with
    finally:
        runner.close()
    stored = SettingsStore(sessions).load().placement_concurrency
    assert stored == AppSettings().placement_concurrency  # not stored: still the default

    base = ["worker", "--once", "--database-url", database_url]
    assert main([*base, "--placement-concurrency", "101"]) == 1
    assert "Placement concurrency must be between 1 and 100; 101 is not." in (
        capsys.readouterr().err
    )
    assert main([*base, "--placement-concurrency", "0"]) == 2  # a usage error
    assert '"0" is not a whole number of at least 1.' in capsys.readouterr().err


def test_worker_log_lines_can_be_json(database_url, capsys):
    import json

    from app.cli import main

    code = main(["worker", "--once", "--database-url", database_url, "--log-format", "json"])
    lines = capsys.readouterr().err.splitlines()
    assert code == 0
    records = [json.loads(line) for line in lines]  # every line is one JSON object
    assert {"time", "level", "logger", "message"} <= set(records[0])
    assert any(r["message"] == "worker stopped" and r["level"] == "INFO" for r in records)
    assert all(r["time"].endswith("+00:00") for r in records)
