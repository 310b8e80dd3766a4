"""Migration 0007 (campaign policy) keeps every batch call, recipient and attempt of a 0003
database, and old batch calls read as one window, no local-hours rule, one attempt."""

from __future__ import annotations

from datetime import UTC, datetime

from alembic import command
from sqlalchemy import text
from sqlalchemy.orm import sessionmaker

from app.models.db import alembic_config, make_engine, migrate
from app.models.status import RecipientStatus
from app.services.batch_calls import BatchCallService


def test_a_0003_database_with_data_keeps_everything(database_url: str) -> None:
    engine = make_engine(database_url)
    config = alembic_config(engine)
    with engine.begin() as connection:
        config.attributes["connection"] = connection
        command.upgrade(config, "0003")
    with engine.begin() as c:
        c.execute(
            text(
                "INSERT INTO agents (id, name, kind, value, active, created_at) "
                "VALUES (1, 'A', 'twiml', '<Response/>', 1, '2026-11-01 10:00:00')"
            )
        )
        c.execute(
            text(
                "INSERT INTO from_numbers (id, phone_number, label, source, active, created_at) "
                "VALUES (1, '+12025550100', '', 'simulated', 1, '2026-11-01 10:00:00')"
            )
        )
        c.execute(
            text(
                "INSERT INTO batch_calls (id, name, status, agent_id, from_number_id, "
                "from_number, send_type, timezone, window_start, window_end, allowed_days, "
                "reserved_concurrency, total_recipients, pending_count, queued_count, "
                "in_progress_count, completed_count, failed_count, no_answer_count, "
                "retry_count, created_at, updated_at, created_by) VALUES (7, 'Old', "
                "'RUNNING', 1, 1, '+12025550100', 'SEND_NOW', 'America/New_York', '09:00', "
                "'17:00', '1,2,3', 2, 2, 1, 0, 0, 1, 0, 0, 0, '2026-11-01 10:00:00', "
                "'2026-11-01 10:00:00', 'ann')"
            )
        )
        c.execute(
            text(
                "INSERT INTO recipients (id, batch_call_id, row_number, phone_number, status, "
                "attempts) VALUES (1, 7, 2, '+13105550100', 'PENDING', 0), "
                "(2, 7, 3, '+12125550100', 'COMPLETED', 1)"
            )
        )
        c.execute(
            text(
                "INSERT INTO call_attempts (id, recipient_id, batch_call_id, attempt_number, "
                "provider, provider_call_id, to_number, from_number, outcome, created_at) "
                "VALUES (1, 2, 7, 1, 'simulation', 'CA1', '+12125550100', '+12025550100', "
                "'COMPLETED', '2026-11-01 10:05:00')"
            )
        )
    migrate(engine)
    service = BatchCallService(
        sessionmaker(engine, expire_on_commit=False),
        clock=lambda: datetime(2026, 11, 30, tzinfo=UTC),
    )
    old = service.get(7)
    assert (old.name, old.status.value, old.total_recipients) == ("Old", "RUNNING", 2)
    assert old.counts[RecipientStatus.PENDING] == 1
    assert old.counts[RecipientStatus.COMPLETED] == 1
    assert old.counts[RecipientStatus.EXPIRED] == 0
    assert old.time_ranges_display == "09:00 to 17:00"
    assert old.local_hours_display.startswith("Off")
    assert old.max_attempts == 1
    assert old.retries_display == "One attempt (no automatic retry)"
    assert old.end_at is None and old.blackout_dates == ""
    schedule = old.schedule
    assert schedule.is_open(datetime(2026, 12, 1, 15, 0, tzinfo=UTC))  # Tuesday 10:00 NY
    assert not schedule.is_open(datetime(2026, 12, 3, 15, 0, tzinfo=UTC))  # Thursday
    with engine.connect() as c:
        assert c.execute(text("SELECT count(*) FROM call_attempts")).scalar() == 1
        assert c.execute(text("SELECT timezones FROM recipients WHERE id = 1")).scalar() is None
    engine.dispose()
