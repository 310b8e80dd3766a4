"""Simulation mode: realistic, deterministic calls driven by a fake clock."""

from __future__ import annotations

import threading
from collections import Counter
from datetime import timedelta

import pytest

from app.services.simulation import SimulationProvider, SimulationSettings
from app.services.telephony import (
    AgentSpec,
    CallOutcome,
    CallRequest,
    FatalProviderError,
    RecipientProviderError,
    TransientProviderError,
)

AGENT = AgentSpec("twiml", "<Response><Say>Hi</Say></Response>")
CALLER = "+14155550100"


def request(index: int = 0, **options) -> CallRequest:
    return CallRequest(f"+1202555{index:04d}", CALLER, AGENT, **options)


def final_states(provider: SimulationProvider, clock, count: int, **options):
    ids = [provider.place_call(request(i, **options)).call_id for i in range(count)]
    clock.advance(days=1)
    return [provider.fetch_call(call_id) for call_id in ids]


def summary(states) -> list[tuple[str, int | None, str | None]]:
    return [(s.raw_status, s.duration_seconds, s.answered_by) for s in states]


def test_same_seed_same_calls_other_seed_other_calls(clock):
    first = summary(final_states(SimulationProvider(clock, seed=5), clock, 50))
    again = summary(final_states(SimulationProvider(clock, seed=5), clock, 50))
    other = summary(final_states(SimulationProvider(clock, seed=6), clock, 50))

    assert first == again
    assert first != other


def test_outcome_mix_over_2000_calls(clock):
    states = final_states(SimulationProvider(clock, seed=1), clock, 2000, machine_detection=True)

    kinds = Counter("machine" if s.answered_by == "machine_start" else s.raw_status for s in states)
    share = {kind: count / 2000 for kind, count in kinds.items()}
    assert share["completed"] == pytest.approx(0.65, abs=0.035)
    assert share["no-answer"] == pytest.approx(0.15, abs=0.025)
    assert share["busy"] == pytest.approx(0.08, abs=0.02)
    assert share["failed"] == pytest.approx(0.04, abs=0.015)
    assert share["machine"] == pytest.approx(0.08, abs=0.02)
    talk = sorted(s.duration_seconds for s in states if s.raw_status == "completed")
    assert 30 <= talk[len(talk) // 2] <= 60  # median around 45 s
    assert max(talk) <= 600
    assert all(s.outcome is not CallOutcome.IN_PROGRESS for s in states)


def test_call_progresses_with_the_fake_clock(clock):
    provider = SimulationProvider(clock, seed=1)
    answered = next(
        s
        for s in final_states(provider, clock, 20)
        if s.raw_status == "completed" and s.duration_seconds > 5
    )
    placed_at = answered.created_at
    moments = {
        "queued": placed_at,
        "ringing": placed_at + timedelta(seconds=1.6),
        "in-progress": answered.answered_at,
        "completed": answered.ended_at,
    }

    seen = {}
    for expected, moment in moments.items():
        clock.set(moment)
        seen[expected] = provider.fetch_call(answered.call_id)

    assert [state.raw_status for state in seen.values()] == list(moments)
    assert seen["queued"].outcome is CallOutcome.IN_PROGRESS
    assert seen["in-progress"].answered_at == answered.answered_at
    assert seen["in-progress"].ended_at is None and seen["in-progress"].duration_seconds is None
    assert seen["completed"].outcome is CallOutcome.COMPLETED
    assert answered.ended_at - answered.answered_at == pytest.approx(
        timedelta(seconds=answered.duration_seconds), abs=timedelta(seconds=0.5)
    )
    assert 3 <= (answered.answered_at - placed_at).total_seconds() <= 25 + 1.5


def test_a_short_ring_timeout_turns_late_answers_into_no_answer(clock):
    patient = final_states(SimulationProvider(clock, seed=2), clock, 200, ring_timeout=600)
    hasty = final_states(SimulationProvider(clock, seed=2), clock, 200, ring_timeout=5)

    assert (
        Counter(s.raw_status for s in hasty)["no-answer"]
        > Counter(s.raw_status for s in patient)["no-answer"]
    )


def test_time_limit_caps_the_talk_time(clock):
    states = final_states(SimulationProvider(clock, seed=3), clock, 100, time_limit=10)

    assert max(s.duration_seconds for s in states) <= 10


@pytest.mark.parametrize(
    ("to", "code"),
    [
        ("+15005550001", 21217),
        ("+15005550002", 21214),
        ("+15005550003", 21215),
        ("+15005550004", 21216),
        ("0123", 21211),
    ],
)
def test_twilio_test_numbers_fail_like_twilio(clock, to, code):
    with pytest.raises(RecipientProviderError) as caught:
        SimulationProvider(clock).place_call(CallRequest(to, CALLER, AGENT))

    assert caught.value.code == code


def test_invalid_from_number_fails_the_batch(clock):
    with pytest.raises(FatalProviderError, match="from number"):
        SimulationProvider(clock).place_call(CallRequest("+14155551234", "office", AGENT))


def test_calls_survive_a_restart_of_the_provider(clock):
    before = SimulationProvider(clock, seed=4)
    placed = [before.place_call(request(i)).call_id for i in range(10)]
    clock.advance(hours=2)
    expected = summary(before.fetch_call(call_id) for call_id in placed)

    after_restart = SimulationProvider(clock, seed=4)

    assert summary(after_restart.fetch_call(call_id) for call_id in placed) == expected
    with pytest.raises(RecipientProviderError, match="no record"):
        SimulationProvider(clock, seed=5).fetch_call(placed[0])
    with pytest.raises(RecipientProviderError):
        after_restart.fetch_call("CA-not-a-call")


def test_find_calls(clock):
    provider = SimulationProvider(clock)
    old = provider.place_call(request(1))
    clock.advance(60.0004)  # below the millisecond a call id keeps
    since = clock()
    new = provider.place_call(request(1))
    provider.place_call(request(2))

    found = provider.find_calls(request(1).to, CALLER, since)

    assert [s.call_id for s in found] == [new.call_id]
    assert old.call_id != new.call_id


def test_account_and_numbers(clock):
    provider = SimulationProvider(clock)

    assert provider.check_credentials().status == "active"
    assert provider.list_from_numbers() == []
    assert provider.list_applications() == []
    assert provider.name == "simulation"


def test_threads_get_distinct_calls_and_the_same_mix(clock):
    provider = SimulationProvider(clock, seed=9)
    ids: list[str] = []
    lock = threading.Lock()

    def worker(offset: int) -> None:
        for i in range(250):
            call_id = provider.place_call(request(offset * 250 + i)).call_id
            with lock:
                ids.append(call_id)

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    clock.advance(days=1)

    assert len(set(ids)) == 2000
    threaded = Counter(provider.fetch_call(call_id).raw_status for call_id in ids)
    serial = Counter(
        s.raw_status for s in final_states(SimulationProvider(clock, seed=9), clock, 2000)
    )
    assert threaded == serial  # outcomes depend on the call index, not on thread timing


def test_transient_failures_can_be_injected(clock):
    settings = SimulationSettings(transient_error_rate=0.3)
    provider = SimulationProvider(clock, seed=1, settings=settings)

    failures = 0
    for i in range(300):
        try:
            provider.place_call(request(i))
        except TransientProviderError:
            failures += 1

    assert 60 <= failures <= 120


def test_settings_are_validated():
    with pytest.raises(ValueError, match="add up to 1"):
        SimulationSettings(answered_rate=0.9)
    with pytest.raises(ValueError, match="between 0 and 1"):
        SimulationSettings(transient_error_rate=2)


def test_naive_clock_is_refused():
    from datetime import datetime

    with pytest.raises(ValueError, match="timezone-aware"):
        SimulationProvider(lambda: datetime(2026, 1, 1)).place_call(request())
