"""The worker says a database outage once, reminds now and then, and says the recovery."""

from __future__ import annotations

import logging

from app.services.outage import OutageLog


class Ticker:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_an_outage_is_logged_once_then_reminded_then_its_end(caplog):
    caplog.set_level(logging.INFO)
    clock = Ticker()
    outage = OutageLog(logging.getLogger("test.outage"), remind_every=300, clock=clock)

    for tick in range(10 * 60 * 5 + 1):  # ten minutes of failing ticks, five a second
        clock.now = tick / 5
        outage.failed("OperationalError")
    outage.succeeded()
    outage.succeeded()

    messages = [r.getMessage() for r in caplog.records]
    assert len(messages) == 4, messages  # start, two reminders (5 and 10 min), recovery
    assert messages[0].startswith("database busy or unreachable (OperationalError)")
    assert "still busy or unreachable after 5 min" in messages[1]
    assert "reachable again after 10 min" in messages[-1]
    assert [r.levelname for r in caplog.records] == ["WARNING", "WARNING", "WARNING", "INFO"]


def test_a_new_outage_after_recovery_is_logged_again(caplog):
    clock = Ticker()
    outage = OutageLog(logging.getLogger("test.outage"), clock=clock)
    outage.failed("OperationalError")
    outage.succeeded()
    outage.failed("OperationalError")
    warnings = [r for r in caplog.records if r.levelname == "WARNING"]
    assert len(warnings) == 2 and outage.ongoing


def test_the_worker_logs_an_outage_on_its_changes_of_state(database_url, monkeypatch, caplog):
    """Two hundred failing ticks in a row (a dead database server): one warning, then the
    recovery, not two hundred warnings."""
    import sqlite3
    import threading

    from sqlalchemy.exc import OperationalError

    from app.services import worker

    caplog.set_level(logging.INFO)
    stop = threading.Event()
    from app.services.engine.dialer import DialerEngine

    real_tick = DialerEngine.tick
    ticks = {"count": 0}

    def tick(self, *args, **kwargs):  # type: ignore[no-untyped-def]
        ticks["count"] += 1
        if ticks["count"] <= 200:
            raise OperationalError("SELECT 1", {}, sqlite3.OperationalError("disk I/O error"))
        if ticks["count"] >= 203:
            stop.set()
        return real_tick(self, *args, **kwargs)

    monkeypatch.setattr(DialerEngine, "tick", tick)
    code = worker.run_worker(
        database_url, stop_event=stop, settings_overrides={"dial_interval_seconds": 0.01}
    )

    assert code == worker.EXIT_OK
    outage_lines = [r.getMessage() for r in caplog.records if "database" in r.getMessage()]
    warned = [m for m in outage_lines if "busy or unreachable" in m and "engine:" not in m]
    assert len(warned) == 1, outage_lines
    assert any("reachable again" in m for m in outage_lines)


def test_the_worker_stops_on_a_damaged_file_instead_of_retrying_forever(
    database_url, monkeypatch, caplog
):
    import sqlite3

    from sqlalchemy.exc import DatabaseError

    from app.services import worker

    ticks = {"count": 0}

    def tick(self, *args, **kwargs):  # type: ignore[no-untyped-def]
        ticks["count"] += 1
        raise DatabaseError(
            "SELECT 1", {}, sqlite3.DatabaseError("database disk image is malformed")
        )

    from app.services.engine.dialer import DialerEngine

    monkeypatch.setattr(DialerEngine, "tick", tick)
    code = worker.run_worker(database_url, settings_overrides={"dial_interval_seconds": 0.01})

    assert code == worker.EXIT_DATABASE
    assert ticks["count"] == 1
    path = database_url.removeprefix("sqlite:///")
    assert f"The database file {path} is damaged" in caplog.text
    assert "restore a backup" in caplog.text
