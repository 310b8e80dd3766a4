"""Import completeness in the schema: how rows from before migration 0004 read, and who owns
an import."""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import UTC, datetime, timedelta

from alembic import command
from sqlalchemy import text

from app.models.db import alembic_config, make_engine, migrate
from app.models.imports import IMPORT_STALE_AFTER, ImportOwner, ImportState, import_state

NOW = datetime(2026, 11, 30, 12, 0, tzinfo=UTC)


def test_rows_from_before_0004_keep_working_and_a_half_import_is_never_dialable(database_url):
    engine = make_engine(database_url)
    config = alembic_config(engine)
    with engine.begin() as connection:
        config.attributes["connection"] = connection
        command.upgrade(config, "0003")
    columns = (
        "name, status, agent_id, from_number_id, from_number, send_type, timezone, "
        "window_start, window_end, allowed_days, reserved_concurrency, total_recipients, "
        "pending_count, queued_count, in_progress_count, completed_count, failed_count, "
        "no_answer_count, retry_count, created_at, updated_at, created_by, import_heartbeat_at"
    )
    with engine.begin() as connection:
        connection.execute(
            text(
                "INSERT INTO agents (name, kind, value, active, created_at) "
                "VALUES ('A', 'twiml', '<Response/>', 1, '2026-11-01')"
            )
        )
        connection.execute(
            text(
                "INSERT INTO from_numbers (phone_number, label, source, active, created_at) "
                "VALUES ('+12025550100', '', 'simulated', 1, '2026-11-01')"
            )
        )
        for name, status, heartbeat in (
            ("Whole", "SCHEDULED", None),
            ("Half, importing", "PENDING", "2026-11-01 10:00:00"),
            ("Half, retried", "RUNNING", "2026-11-01 10:00:00"),
        ):
            connection.execute(
                text(
                    f"INSERT INTO batch_calls ({columns}) VALUES (:name, :status, 1, 1, "
                    "'+12025550100', 'SEND_NOW', 'UTC', '09:00', '18:00', '1,2,3,4,5', 1, 5, "
                    "5, 0, 0, 0, 0, 0, 0, '2026-11-01', '2026-11-01', 'qa', :heartbeat)"
                ),
                {"name": name, "status": status, "heartbeat": heartbeat},
            )
    migrate(engine)
    with engine.connect() as connection:
        rows = connection.execute(
            text(
                "SELECT name, status, import_complete, failure_reason FROM batch_calls ORDER BY id"
            )
        ).all()
    engine.dispose()
    assert [(r.name, r.status, bool(r.import_complete)) for r in rows] == [
        ("Whole", "SCHEDULED", True),
        ("Half, importing", "PENDING", False),
        ("Half, retried", "FAILED", False),
    ]
    assert "not all stored" in rows[2].failure_reason


def test_import_state():
    fresh, stale = NOW - timedelta(seconds=5), NOW - IMPORT_STALE_AFTER * 2
    elsewhere = ImportOwner("another-boot", 1, "1", "other-host").text()
    assert import_state(True, None, None, NOW) is ImportState.COMPLETE
    # Another machine (or an unreadable owner): the heartbeat tells.
    assert import_state(False, fresh, elsewhere, NOW) is ImportState.IMPORTING
    assert import_state(False, stale, elsewhere, NOW) is ImportState.INTERRUPTED
    assert import_state(False, None, None, NOW) is ImportState.INTERRUPTED
    assert import_state(False, fresh, "not an owner", NOW) is ImportState.IMPORTING
    mine = ImportOwner.current()
    if ImportOwner.parse(mine).machine:  # type: ignore[union-attr]
        # This machine: the process itself tells, whatever the heartbeat says.
        assert import_state(False, stale, mine, NOW) is ImportState.IMPORTING


def test_the_owner_is_this_process_and_a_dead_process_is_gone():
    mine = ImportOwner.parse(ImportOwner.current())
    assert mine is not None and mine.pid == os.getpid()
    assert not mine.provably_gone()
    if mine.machine:  # Linux: boot id and PID namespace
        child = subprocess.Popen([sys.executable, "-c", "pass"])
        child.wait()
        assert ImportOwner(mine.machine, child.pid, mine.started, mine.host).provably_gone()
    assert not ImportOwner("other-boot", os.getpid() + 1, "1", "elsewhere").provably_gone()
