"""A week of one batch call on a fake clock, across the end of daylight-saving time."""

from __future__ import annotations

from collections import Counter
from datetime import UTC, date, datetime
from zoneinfo import ZoneInfo

from app.models.status import BatchStatus, RecipientStatus
from app.models.window import CallingWindow
from app.services.engine import DialerEngine, EngineConfig
from tests.conftest import FakeClock
from tests.services.engine_support import (
    ScriptedProvider,
    assert_counters_exact,
    new_batch,
    rows,
)

NEW_YORK = ZoneInfo("America/New_York")


def test_a_week_across_the_dst_change_calls_only_inside_the_window(service, sessions):
    # Thursday 29 Oct 2026, 07:00 EDT. Daylight-saving time ends on Sunday 1 Nov.
    clock = FakeClock(datetime(2026, 10, 29, 11, 0, tzinfo=UTC))
    service.clock = clock
    batch = new_batch(
        service,
        100,
        timezone="America/New_York",
        window=("09:00", "17:00"),
        days=frozenset({1, 2, 3, 4, 5}),
        reserved=1,
    )
    window = CallingWindow.from_text("America/New_York", "09:00", "17:00", "1,2,3,4,5")
    provider = ScriptedProvider(clock, seed=11)
    engine = DialerEngine(
        sessions,
        provider,
        clock=clock,
        config=EngineConfig(poll_interval_seconds=60, seed=1),
        settings_overrides={"calls_per_second": 1.0, "plan_concurrency": 10},
    )
    weekend_reason = None
    completed_at = None
    for _ in range(7 * 24 * 6):  # a week of ten-minute ticks (one call per tick at most)
        engine.tick()
        snapshot = service.get(batch.id)
        if clock() == datetime(2026, 10, 31, 12, 0, tzinfo=UTC):
            weekend_reason = snapshot.waiting_reason
        if snapshot.status is BatchStatus.COMPLETED:
            completed_at = clock()
            break
        assert snapshot.status is BatchStatus.RUNNING
        clock.advance(minutes=10)

    calls = [p.at for p in provider.placements]
    # No call outside the calling hours, on the timezone database's offsets.
    assert all(window.is_open(moment) for moment in calls)
    days = Counter(moment.astimezone(NEW_YORK).date() for moment in calls)
    assert set(days) == {date(2026, 10, 29), date(2026, 10, 30), date(2026, 11, 2)}
    # Friday's last call starts before 17:00 EDT (21:00 UTC); Monday's first at 09:00 EST,
    # which is 14:00 UTC (a fixed EDT offset would have called at 13:00 UTC).
    assert max(m for m in calls if m.day == 30) < datetime(2026, 10, 30, 21, 0, tzinfo=UTC)
    monday = [m for m in calls if m.astimezone(NEW_YORK).date() == date(2026, 11, 2)]
    assert min(monday) == datetime(2026, 11, 2, 14, 0, tzinfo=UTC)
    assert weekend_reason == (
        "Outside the calling hours until Mon 02 Nov 09:00 EST "
        "(09:00 to 17:00 America/New_York, Monday to Friday)."
    )
    # Every recipient called exactly once, every one final, and done on Monday.
    assert Counter(provider.placed_to()) == Counter({r.phone_number: 1 for r in rows(100)})
    snapshot = service.get(batch.id)
    assert snapshot.finished_count == 100
    assert snapshot.counts[RecipientStatus.COMPLETED] > 50
    assert completed_at is not None and snapshot.finished_at == completed_at
    assert max(calls) <= completed_at
    assert completed_at.astimezone(NEW_YORK).date() == date(2026, 11, 2)
    assert_counters_exact(service, batch.id)
