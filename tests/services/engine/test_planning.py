"""The engine's planning with plain values: no database, no provider, no clock."""

from __future__ import annotations

import itertools
import random
from datetime import UTC, datetime, timedelta

import pytest

from app.models.policy import CallingSchedule, LocalHours
from app.models.window import WindowError
from app.services.engine import state as states
from app.services.engine.config import EngineConfig
from app.services.engine.health import ProviderHealth, maybe_placed, stops_polling
from app.services.engine.planning import (
    NO_PROVIDER,
    CallPacer,
    ProviderView,
    RunningBatch,
    backoff_delay,
    call_deadline,
    demand,
    lookback_start,
    mask_number,
    plan_batch,
    queue_wanted,
    share_capacity,
)
from app.services.telephony import (
    FatalProviderError,
    RecipientProviderError,
    TransientProviderError,
)

MONDAY_NOON = datetime(2026, 1, 5, 12, 0, tzinfo=UTC)


def test_pacer_allows_at_most_the_rate_in_every_one_second_window():
    start = datetime(2026, 1, 5, tzinfo=UTC)
    pacer = CallPacer(3)
    starts: list[datetime] = []
    now = start
    for _ in range(400):  # ticks at uneven moments, placing whatever is allowed
        for _ in range(pacer.available(now)):
            pacer.record(now)
            starts.append(now)
        now += timedelta(milliseconds=137)
    assert len(starts) >= 3 * 50  # it does reach the rate over 54.8 s
    for i, moment in enumerate(starts):
        within = [s for s in starts[i:] if s < moment + timedelta(seconds=1)]
        assert len(within) <= 3


def test_pacer_below_one_call_per_second_spaces_calls():
    start = datetime(2026, 1, 5, tzinfo=UTC)
    pacer = CallPacer(0.5)
    assert pacer.available(start) == 1
    pacer.record(start)
    assert pacer.available(start + timedelta(seconds=1.99)) == 0
    assert pacer.available(start + timedelta(seconds=2)) == 1
    assert pacer.frees_at() is None


def test_fair_share_gives_a_small_batch_call_an_equal_share_of_free_lines():
    # 100,000-recipient batch 1 already holds 6 lines, batch 2 (10 recipients) none.
    shares = share_capacity({1: (6, 500), 2: (0, 10)}, capacity=8)
    assert shares == {1: 1, 2: 7}
    # Equal load: the remainder alternates with the rotation.
    assert share_capacity({1: (0, 9), 2: (0, 9)}, 5, rotation=0) == {1: 3, 2: 2}
    assert share_capacity({1: (0, 9), 2: (0, 9)}, 5, rotation=1) == {1: 2, 2: 3}
    # Leftover capacity goes to whoever still wants it.
    assert share_capacity({1: (0, 100), 2: (0, 2)}, 10) == {1: 8, 2: 2}
    assert share_capacity({}, 10) == {}


def test_numbers_are_masked_in_logs():
    assert mask_number("+15551234567") == "+1555***4567"
    assert "1234" not in mask_number("+4912345")


def batch(**changes: object) -> RunningBatch:
    values: dict[str, object] = {
        "id": 1,
        "name": "Reminders",
        "timezone": "UTC",
        "window_start": "09:00",
        "window_end": "17:00",
        "allowed_days": "1,2,3,4,5",  # Monday to Friday
        "reserved_concurrency": 5,
        "pending": 100,
        "queued": 0,
        "in_progress": 0,
        "waiting_reason": None,
        "agent_kind": "twiml",
        "agent_value": "<Response/>",
        "from_number": "+12025550100",
    }
    values.update(changes)
    return RunningBatch(**values)  # type: ignore[arg-type]


READY = ProviderView(ready=True)


def test_a_batch_call_inside_its_window_with_work_dials():
    step = plan_batch(batch(), batch().window(), MONDAY_NOON, READY)
    assert step.dial and step.fail is None and step.reason is None and step.provider_matters


def test_outside_its_window_a_batch_call_waits_and_gives_its_queue_back():
    evening = MONDAY_NOON.replace(hour=18)
    step = plan_batch(batch(queued=3), batch().window(), evening, READY)
    assert not step.dial and step.requeue
    assert step.reason is not None and step.reason.startswith("Outside the calling hours")
    assert "until Tue 06 Jan 09:00" in step.reason
    # Nothing queued: nothing to give back.
    assert not plan_batch(batch(), batch().window(), evening, READY).requeue


def test_calling_hours_that_cannot_be_used_fail_the_batch_call():
    with pytest.raises(WindowError) as caught:
        batch(timezone="Mars/Olympus").window()
    step = plan_batch(batch(), caught.value, MONDAY_NOON, READY)
    assert step.fail is not None and step.fail.startswith("The calling hours cannot be used")


def test_a_provider_that_cannot_be_asked_is_the_reason_even_when_every_line_is_busy():
    blocked = ProviderView(True, None, MONDAY_NOON + timedelta(seconds=30), "No route; retrying.")
    for shape in (batch(), batch(pending=0, in_progress=5)):
        step = plan_batch(shape, shape.window(), MONDAY_NOON, blocked)
        assert not step.dial and step.provider_matters
        assert step.reason == "Provider unreachable: No route. Next try at 12:00:30 UTC."
    # Once the retry time has come, it dials again.
    later = MONDAY_NOON + timedelta(seconds=30)
    assert plan_batch(batch(), batch().window(), later, blocked).dial


def test_no_provider_fails_a_batch_call_with_work_but_not_one_that_only_waits():
    missing = ProviderView(ready=False)
    assert plan_batch(batch(), batch().window(), MONDAY_NOON, missing).fail == NO_PROVIDER
    broken = ProviderView(ready=False, failure="No Twilio credentials are saved.")
    step = plan_batch(batch(), batch().window(), MONDAY_NOON, broken)
    assert step.fail == "No Twilio credentials are saved."
    waiting = batch(pending=0, in_progress=2)
    step = plan_batch(waiting, waiting.window(), MONDAY_NOON, missing)
    assert step.fail is None and not step.dial and not step.provider_matters


def test_nothing_left_to_call_shows_the_reconciliation_reason():
    waiting = batch(pending=0, queued=0, in_progress=1)
    step = plan_batch(waiting, waiting.window(), MONDAY_NOON, READY, "Cannot confirm 1 call")
    assert not step.dial and step.reason == "Cannot confirm 1 call"
    assert batch(pending=0).finished and not waiting.finished


def test_the_queue_is_topped_up_only_to_what_can_be_dialed_soon():
    assert queue_wanted(batch(reserved_concurrency=5, queued=2), lookahead=1000) == 3
    assert queue_wanted(batch(reserved_concurrency=50, queued=0), lookahead=10) == 10
    assert queue_wanted(batch(reserved_concurrency=5, queued=7), lookahead=1000) == 0
    assert queue_wanted(batch(pending=0), lookahead=1000) == 0


def test_a_batch_call_asks_for_no_more_lines_than_its_reserved_concurrency():
    assert demand(batch(reserved_concurrency=5, in_progress=3), queued=10) == (3, 2)
    assert demand(batch(reserved_concurrency=5, in_progress=0), queued=2) == (0, 2)
    assert demand(batch(reserved_concurrency=5, in_progress=5), queued=10) is None
    assert demand(batch(), queued=0) is None


def test_deadlines_and_lookback_are_computed_from_plain_values():
    assert call_deadline(MONDAY_NOON, 30, 600, 60) == MONDAY_NOON + timedelta(seconds=690)
    started = MONDAY_NOON - timedelta(hours=2)
    # From the batch call's start, less the allowance and the measured clock difference.
    since = lookback_start(MONDAY_NOON, started, 600, timedelta(seconds=-90))
    assert since == started - timedelta(seconds=690)
    # Never more than a day back, and never after the attempt itself.
    week_old = MONDAY_NOON - timedelta(days=7)
    since = lookback_start(MONDAY_NOON, week_old, 0, None)
    assert since == MONDAY_NOON - timedelta(hours=24)
    assert lookback_start(MONDAY_NOON, None, 10, None) == MONDAY_NOON - timedelta(seconds=10)


def test_backoff_grows_is_capped_and_honours_retry_after():
    delays = [backoff_delay(n, None, 2.0, 60.0, jitter=1.0).total_seconds() for n in (1, 2, 3)]
    assert delays == [2.0, 4.0, 8.0]
    assert backoff_delay(30, None, 2.0, 60.0, jitter=1.0).total_seconds() == 60.0
    assert backoff_delay(1, None, 2.0, 60.0, jitter=0.0).total_seconds() == 1.0
    assert backoff_delay(1, 20.0, 2.0, 60.0, jitter=0.0).total_seconds() == 20.0
    assert backoff_delay(1, 600.0, 2.0, 60.0, jitter=0.0).total_seconds() == 60.0


def test_provider_health_is_one_state_object():
    health = ProviderHealth(EngineConfig(seed=1))
    assert not health.blocked(MONDAY_NOON)
    refused = TransientProviderError("Could not connect. Retrying.")
    retry_at = health.note_trouble(refused, MONDAY_NOON)
    assert health.blocked(MONDAY_NOON) and health.unreachable(MONDAY_NOON)
    assert not health.blocked(retry_at)
    assert health.view(True, None).retry_at == retry_at
    assert health.reason("UTC").startswith("Provider unreachable: Could not connect.")
    limited = TransientProviderError("Too many requests", http_status=429)
    health.note_trouble(limited, MONDAY_NOON)
    assert health.blocked(MONDAY_NOON) and not health.unreachable(MONDAY_NOON)
    health.note_ok()
    assert not health.blocked(MONDAY_NOON) and health.failures == 0


def test_which_errors_stop_a_round_and_which_may_have_placed_a_call():
    assert stops_polling(TransientProviderError("refused"))  # never connected
    assert stops_polling(TransientProviderError("slow down", http_status=429))
    assert stops_polling(FatalProviderError("bad credentials", http_status=401))
    assert not stops_polling(RecipientProviderError("no such call", http_status=404))
    assert not maybe_placed(TransientProviderError("slow down", http_status=429))
    assert not maybe_placed(TransientProviderError("refused"))
    assert maybe_placed(TransientProviderError("timed out", outcome_unknown=True))
    assert maybe_placed(TransientProviderError("server error", http_status=500))


def test_engine_states_are_an_enum_with_a_detail():
    assert states.DIALING.text == "dialing"
    standby = states.standby("host:1:ab")
    assert standby.state is states.EngineState.STANDBY
    assert standby.text == "standby: dialing is done by host:1:ab"
    assert states.error("the database is busy").text == "error: the database is busy"


def test_a_window_is_built_from_the_stored_text():
    window = batch().window()
    assert isinstance(window, CallingSchedule)
    assert window.describe() == "09:00 to 17:00 UTC, Monday to Friday"
    # The campaign policy's columns: several ranges, blackout dates, an end date.
    policy = batch(
        time_ranges="09:00-12:00,14:00-18:00",
        blackout_dates="2026-01-06",
        end_at=MONDAY_NOON + timedelta(days=3),
        local_hours_start="08:00",
        local_hours_end="21:00",
    )
    schedule = policy.window()
    assert not schedule.is_open(MONDAY_NOON)  # 12:00: between the two ranges
    assert schedule.next_open(MONDAY_NOON) == MONDAY_NOON.replace(hour=14)
    assert not schedule.is_open(MONDAY_NOON + timedelta(days=1))  # the blackout date
    assert policy.local_hours() == LocalHours()
    assert batch().local_hours() is None


def test_past_its_end_date_the_rest_expires():
    ended = batch(end_at=MONDAY_NOON - timedelta(minutes=1))
    step = plan_batch(ended, ended.window(), MONDAY_NOON, READY)
    assert step.expire and not step.dial
    busy = batch(end_at=MONDAY_NOON, pending=0, in_progress=2)
    step = plan_batch(busy, busy.window(), MONDAY_NOON, READY)
    assert not step.expire and step.reason == (
        "Past its end date: waiting for the 2 calls in progress."
    )
    # Waiting for a retry counts as work: the batch call is not finished.
    assert batch(pending=0, waiting_retry=1).has_work
    assert not batch(pending=0, waiting_retry=1).finished


def test_a_start_counts_from_its_send_and_its_slot_is_held_from_its_reservation():
    """A request handed to a sending thread holds its slot until it is sent (however late
    the thread gets to it), and counts from the send: the window of sends never holds more
    than the rate. A request never sent does not count."""
    start = datetime(2026, 1, 5, tzinfo=UTC)
    pacer = CallPacer(2)
    first = pacer.reserve(start)
    second = pacer.reserve(start + timedelta(milliseconds=100))
    assert pacer.available(start + timedelta(milliseconds=200)) == 0
    pacer.start(first, start + timedelta(milliseconds=400))  # its thread was late
    assert pacer.available(start + timedelta(seconds=1.3)) == 0  # the second is not sent yet
    pacer.cancel(second)  # never sent: it does not count
    assert pacer.available(start + timedelta(seconds=1.3)) == 1  # the first counts until 1.4 s
    assert pacer.available(start + timedelta(seconds=1.4)) == 2


def sends(pacer: CallPacer, seconds: float, step_ms: int, delay_ms: int = 0) -> list[datetime]:
    """A dispatcher that looks every `step_ms` (a late one, when larger than the spacing)
    and hands out what is due; each send happens up to `delay_ms` after its reservation
    (a busy thread). Returns the send moments."""

    rng = random.Random(5)
    begin = datetime(2026, 1, 5, tzinfo=UTC)
    now = begin
    waiting: list[tuple[datetime, int]] = []
    sent: list[datetime] = []
    while now < begin + timedelta(seconds=seconds):
        for at, slot in [w for w in waiting if w[0] <= now]:
            pacer.start(slot, at)
            sent.append(at)
            waiting.remove((at, slot))
        for _ in range(pacer.due(now)):
            delay = timedelta(milliseconds=rng.randint(0, delay_ms))
            waiting.append((now + delay, pacer.reserve(now)))
        now += timedelta(milliseconds=step_ms)
    return sorted(sent)


def most_within(moments: list[datetime], window: timedelta) -> int:
    return max(sum(1 for m in moments[i:] if m < first + window) for i, first in enumerate(moments))


def test_spread_starts_come_one_by_one_at_the_rate_never_a_burst():
    pacer = CallPacer(10, guard_seconds=0.03, spread=True)
    moments = sends(pacer, 10.0, step_ms=1)
    gaps = [(b - a).total_seconds() for a, b in itertools.pairwise(moments)]
    assert min(gaps) >= 0.1  # one every 1.03 / 10 s, not ten at the start of a second
    assert len(moments) >= 96  # 10 / 1.03 a second: 0.97 of the setting
    assert most_within(moments, timedelta(seconds=1.03)) <= 10


def test_a_request_arriving_late_by_less_than_the_guard_never_makes_one_too_many():
    """Sends up to 200 ms after their reservation, then arriving at the provider up to
    the guard later: no second of the provider's sees more than the rate."""

    rng = random.Random(9)
    for rate in (1.0, 10.0, 30.0, 100.0):
        pacer = CallPacer(rate, guard_seconds=0.03, spread=True)
        moments = sends(pacer, 5.0 if rate > 1 else 12.0, step_ms=3, delay_ms=200)
        arrivals = sorted(m + timedelta(milliseconds=rng.uniform(0, 29.9)) for m in moments)
        assert most_within(arrivals, timedelta(seconds=1)) <= rate
        assert len(moments) >= 0.85 * rate * (5.0 if rate > 1 else 12.0)


def test_late_starts_are_caught_up_at_twice_the_pace_never_at_once():
    """After a short stall (the tick's own work), the starts missed are made up one by
    one, half an interval apart; after a long pause nothing is owed."""
    begin = datetime(2026, 1, 5, tzinfo=UTC)
    pacer = CallPacer(100, guard_seconds=0.03, spread=True)
    half = pacer.interval / 2
    pacer.record(begin)
    late = begin + timedelta(milliseconds=100)  # about nine starts behind
    assert pacer.due(late) == 1
    pacer.record(late)
    assert pacer.due(late) == 0
    assert pacer.next_due(late) == late + half  # not a whole interval: catching up
    moment, caught_up = late, 0
    while pacer.next_due(moment) == moment + half:
        moment += half
        pacer.record(moment)
        caught_up += 1
    # The starts owed are made up at twice the pace: as many started since `begin` as
    # one an interval would have; then one an interval again.
    assert abs(caught_up + 2 - (moment - begin) / pacer.interval) <= 1.5
    assert half < pacer.next_due(moment) - moment <= pacer.interval
    idle = moment + timedelta(seconds=5)
    pacer.record(idle)
    assert pacer.next_due(idle) == idle + pacer.interval  # nothing owed after a pause


def test_without_spreading_the_window_alone_paces_as_a_fake_clock_needs():
    """A fake clock stands still within a tick: the whole second's starts are allowed at
    once (no guard, no spreading), and again a second later."""
    begin = datetime(2026, 1, 5, tzinfo=UTC)
    pacer = CallPacer(5)
    assert pacer.due(begin) == 5
    for _ in range(5):
        pacer.record(begin)
    assert pacer.due(begin) == 0 and pacer.next_due(begin) == begin + timedelta(seconds=1)
    assert pacer.due(begin + timedelta(seconds=1)) == 5


def test_a_lowered_rate_spaces_the_starts_and_the_setting_stays_the_ceiling():
    """Lowered to 9.5 calls/s (a 429) below a setting of 10: one start every 1.03 / 9.5 s,
    not 9 a second (the whole calls of 9.5), and never more than 10 in any second."""
    pacer = CallPacer(10, guard_seconds=0.03, spread=True)
    pacer.set_rate(9.5, 10)
    assert pacer.limit == 10
    assert pacer.interval == timedelta(seconds=1.03) / 9.5
    moments = sends(pacer, 10.0, step_ms=1)
    assert 9.5 * 10 / 1.03 - 2 <= len(moments) <= 10 * 10 / 1.03 + 1
    assert most_within(moments, timedelta(seconds=1.03)) <= 10


def test_a_429_created_nothing_so_its_start_stops_counting():
    begin = datetime(2026, 1, 5, tzinfo=UTC)
    pacer = CallPacer(2, guard_seconds=0.03, spread=True)
    pacer.record(begin)
    later = begin + pacer.interval
    pacer.record(later)
    assert pacer.available(later) == 0
    pacer.release(later)  # answered 429: never processed by Twilio
    assert pacer.available(later) == 1
    assert pacer.next_due(later) == later + pacer.interval / 2  # its moment given back
