"""The one definition of a new batch call's rules (service, dialog and CLI all call it)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from app.models.creation import SCHEDULE_GRACE, CreationRequest, creation_problems, name_problem

NOW = datetime(2026, 3, 2, 15, 0, tzinfo=UTC)


def problems(**changes: object) -> dict[str, str]:
    return creation_problems(CreationRequest(**{"name": "Flu shots", **changes}), NOW)  # type: ignore[arg-type]


def test_a_plain_request_has_no_problem() -> None:
    assert problems() == {}
    assert (
        problems(
            time_ranges="09:00-12:00,14:00-18:00",
            blackout_dates="2026-12-25",
            end_at=NOW + timedelta(days=30),
            local_hours="08:00-21:00",
            max_attempts=3,
            retry_delay_minutes=30,
            retry_outcomes="no-answer,busy,failed",
        )
        == {}
    )


def test_name_rules() -> None:
    assert name_problem("   ") == "Enter a name (1 to 100 characters)."
    assert "101 characters" in (name_problem("x" * 101) or "")
    assert name_problem("  ok  ") is None


def test_schedule_in_the_past_has_one_grace() -> None:
    just_now = NOW - SCHEDULE_GRACE + timedelta(seconds=1)
    assert problems(send_type="SCHEDULE", scheduled_at=just_now) == {}
    late = problems(send_type="SCHEDULE", scheduled_at=NOW - timedelta(minutes=5))
    assert "in the past" in late["scheduled_at"]
    assert "2026-03-02 14:55 (UTC)" in late["scheduled_at"]
    assert "needs a date" in problems(send_type="SCHEDULE")["scheduled_at"]


@pytest.mark.parametrize(
    ("changes", "field", "words"),
    [
        ({"timezone": "Mars/Base"}, "timezone", "not a known timezone"),
        ({"window_start": "10:00", "window_end": "10:00"}, "window_end", "empty"),
        ({"window_start": "25:00"}, "window_start", "HH:MM"),
        ({"time_ranges": "09:00-12:00,11:00-13:00"}, "time_ranges", "overlap"),
        ({"allowed_days": frozenset()}, "allowed_days", "at least one"),
        ({"blackout_dates": "christmas"}, "blackout_dates", "YYYY-MM-DD"),
        ({"reserved_concurrency": 0}, "reserved_concurrency", "1 to 10000"),
        ({"reserved_concurrency": True}, "reserved_concurrency", "whole number"),
        ({"local_hours": "21:00-08:00"}, "local_hours", "end after"),
        ({"max_attempts": 11}, "max_attempts", "1 to 10"),
        ({"retry_delay_minutes": -1}, "retry_delay_minutes", "0 to"),
        ({"retry_outcomes": "voicemail"}, "retry_outcomes", "no-answer, busy or failed"),
        ({"max_attempts": 2, "retry_outcomes": ""}, "retry_outcomes", "Choose which"),
        ({"end_at": NOW - timedelta(hours=1)}, "end_at", "after the batch call starts"),
        ({"end_at": datetime(2026, 3, 3)}, "end_at", "timezone"),
        ({"send_type": "LATER"}, "send_type", "Send Now or Schedule"),
    ],
)
def test_each_rule_names_its_field(changes: dict[str, object], field: str, words: str) -> None:
    found = problems(**changes)
    assert field in found, found
    assert words in found[field]


def test_an_end_date_before_any_window_opens_is_refused() -> None:
    # Monday 15:00 UTC is 10:00 in New York; window 18:00-20:00 opens after the end.
    found = problems(
        timezone="America/New_York",
        time_ranges="18:00-20:00",
        end_at=NOW + timedelta(hours=2),
    )
    assert "No calling window opens before the end date" in found["end_at"]


def test_end_date_is_checked_from_the_scheduled_start() -> None:
    start = NOW + timedelta(days=2)
    found = problems(send_type="SCHEDULE", scheduled_at=start, end_at=NOW + timedelta(days=1))
    assert "after the batch call starts" in found["end_at"]
