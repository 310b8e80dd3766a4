"""The dialer engine with a fake clock and the simulation provider: pickup, calling
hours, capacity, pacing, errors, tracking, reconciliation and supervisor races."""

from __future__ import annotations

import itertools
import threading
import time
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import func, select

from app.models.schema import CallAttempt, Recipient
from app.models.snapshots import SendType
from app.models.status import BatchStatus, RecipientStatus
from app.services.batch_calls import NewBatchCall
from app.services.engine import (
    NO_FINAL_STATUS,
    DialerEngine,
    EngineConfig,
)
from app.services.telephony import (
    CallOutcome,
    CallRequest,
    CallState,
    FatalProviderError,
    TransientProviderError,
)
from tests.conftest import FakeClock
from tests.services.engine_support import (
    ScriptedProvider,
    assert_counters_exact,
    attempts_by_recipient,
    finished,
    new_batch,
    recipient_statuses,
    rows,
    run_until,
)

CONFIG = EngineConfig(poll_interval_seconds=1.0, unknown_settle_seconds=5.0, seed=7)


def make_engine(sessions, provider, clock, **overrides) -> DialerEngine:
    settings = {"calls_per_second": 5.0, "plan_concurrency": 10, "pickup_interval_seconds": 60.0}
    settings.update(overrides)
    return DialerEngine(sessions, provider, clock=clock, config=CONFIG, settings_overrides=settings)


# ----------------------------------------------------------------------- pickup
def test_send_now_is_picked_up_at_the_first_tick(service, sessions, clock):
    batch = new_batch(service, 3)
    engine = make_engine(sessions, ScriptedProvider(clock), clock)
    report = engine.tick()
    snapshot = service.get(batch.id)
    assert report.picked_up == [batch.id]
    assert snapshot.status is BatchStatus.RUNNING
    assert snapshot.started_at == clock()
    assert batch.id in report.changed


def test_a_scheduled_batch_call_starts_at_the_first_tick_after_its_time(
    service, sessions, clock, agent_and_number
):
    agent, number = agent_and_number
    at = clock() + timedelta(hours=2)
    spec = NewBatchCall(
        "Later",
        agent.id,
        number.id,
        send_type=SendType.SCHEDULE,
        scheduled_at=at,
        window_start="00:00",
        window_end="23:59",
        allowed_days=frozenset(range(1, 8)),
    )
    batch = service.create(spec, [rows(2)])
    engine = make_engine(sessions, ScriptedProvider(clock), clock)
    ticks = run_until(
        engine, clock, lambda: service.get(batch.id).status is BatchStatus.RUNNING, step=60
    )
    started = service.get(batch.id).started_at
    assert at <= started < at + timedelta(seconds=61)
    assert ticks > 100


def test_retry_keeps_the_first_start_time(service, sessions, clock):
    batch = new_batch(service, 10, reserved=1)
    engine = make_engine(sessions, ScriptedProvider(clock), clock)
    engine.tick()
    first_start = service.get(batch.id).started_at
    service.cancel(batch.id)
    clock.advance(600)
    service.retry(batch.id)
    engine.request_pickup()
    assert engine.tick().picked_up == [batch.id]
    snapshot = service.get(batch.id)
    assert snapshot.status is BatchStatus.RUNNING and snapshot.started_at == first_start


def test_two_engines_racing_for_a_pickup_take_each_batch_call_once(service, sessions, clock):
    batches = [new_batch(service, 1, name=f"B{i}") for i in range(12)]
    engines = [
        DialerEngine(sessions, ScriptedProvider(clock), clock=clock, use_lease=False)
        for _ in range(2)
    ]
    taken: list[list[int]] = [[], []]
    barrier = threading.Barrier(2)

    def race(i: int) -> None:
        barrier.wait()
        taken[i] = engines[i].pickup(clock())

    threads = [threading.Thread(target=race, args=(i,)) for i in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert sorted(taken[0] + taken[1]) == [b.id for b in batches]
    assert all(service.get(b.id).status is BatchStatus.RUNNING for b in batches)


# ----------------------------------------------------------------------- calling hours
def test_outside_the_calling_hours_nothing_is_dialed_and_the_reason_names_the_next_window(
    service, sessions
):
    clock = FakeClock(datetime(2026, 11, 28, 15, 0, tzinfo=UTC))  # Saturday 10:00 in New York
    provider = ScriptedProvider(clock)
    service.clock = clock
    batch = new_batch(
        service,
        20,
        timezone="America/New_York",
        window=("09:00", "17:00"),
        days=frozenset({1, 2, 3, 4, 5}),
    )
    engine = make_engine(sessions, provider, clock)
    report = engine.tick()
    snapshot = service.get(batch.id)
    expected = (
        "Outside the calling hours until Mon 30 Nov 09:00 EST "
        "(09:00 to 17:00 America/New_York, Monday to Friday)."
    )
    assert snapshot.status is BatchStatus.RUNNING
    assert snapshot.waiting_reason == expected
    assert report.waiting_reasons == {batch.id: expected}
    assert snapshot.counts[RecipientStatus.PENDING] == 20
    assert provider.placements == []
    # The reason is written once, not at every tick.
    clock.advance(60)
    assert engine.tick().waiting_reasons == {}
    # Monday 09:00 EST = 14:00 UTC: dialing starts and the reason is cleared.
    clock.set(datetime(2026, 11, 30, 14, 0, tzinfo=UTC))
    report = engine.tick()
    assert report.placed > 0 and report.waiting_reasons == {batch.id: ""}
    assert service.get(batch.id).waiting_reason is None


def test_queued_recipients_go_back_to_pending_when_the_window_closes(service, sessions):
    clock = FakeClock(datetime(2026, 11, 23, 21, 59, 50, tzinfo=UTC))  # Mon 16:59:50 NY
    service.clock = clock
    provider = ScriptedProvider(clock)
    batch = new_batch(
        service, 30, timezone="America/New_York", window=("09:00", "17:00"), reserved=3
    )
    engine = make_engine(sessions, provider, clock, plan_concurrency=3)
    engine.tick()
    clock.advance(1)
    engine.tick()  # three calls in progress, the next three wait for a line
    assert service.get(batch.id).counts[RecipientStatus.QUEUED] == 3
    clock.advance(14)  # 17:00:05
    engine.tick()
    snapshot = service.get(batch.id)
    assert snapshot.counts[RecipientStatus.QUEUED] == 0
    assert snapshot.waiting_reason.startswith("Outside the calling hours")
    assert_counters_exact(service, batch.id)


def test_no_call_starts_after_the_window_closes_even_within_a_tick(service, sessions):
    clock = FakeClock(datetime(2026, 11, 23, 21, 59, 59, 500000, tzinfo=UTC))  # 16:59:59.5
    service.clock = clock
    starts: list[datetime] = []

    def slow_call(request: CallRequest) -> None:  # each call takes 0.3 s to place
        starts.append(clock().astimezone(ZoneInfo("America/New_York")))
        clock.advance(0.3)

    slow = ScriptedProvider(clock, on_place=slow_call)
    batch = new_batch(
        service, 10, timezone="America/New_York", window=("09:00", "17:00"), reserved=10
    )
    engine = make_engine(sessions, slow, clock, calls_per_second=10)
    engine.tick()  # ten claimed at 16:59:59.5
    assert [f"{s:%H:%M:%S.%f}" for s in starts] == ["16:59:59.500000", "16:59:59.800000"]
    assert service.get(batch.id).counts[RecipientStatus.IN_PROGRESS] == 2
    clock.advance(1)
    engine.tick()
    snapshot = service.get(batch.id)
    assert snapshot.counts[RecipientStatus.PENDING] == 8  # deferred, not skipped
    assert len(slow.placements) == 2
    assert_counters_exact(service, batch.id)


# ----------------------------------------------------------------------- capacity and pacing
def test_concurrency_limits_and_completion(service, sessions, clock):
    small = new_batch(service, 12, name="Small", reserved=2)
    big = new_batch(service, 60, name="Big", reserved=50, from_number="+12025550111")
    provider = ScriptedProvider(clock)
    engine = make_engine(sessions, provider, clock, plan_concurrency=8, calls_per_second=4)
    peaks = {"small": 0, "all": 0, "queued": 0}

    def check(report) -> None:
        s, b = service.get(small.id), service.get(big.id)
        peaks["small"] = max(peaks["small"], s.counts[RecipientStatus.IN_PROGRESS])
        peaks["all"] = max(
            peaks["all"],
            s.counts[RecipientStatus.IN_PROGRESS] + b.counts[RecipientStatus.IN_PROGRESS],
        )
        peaks["queued"] = max(peaks["queued"], b.counts[RecipientStatus.QUEUED])
        assert report.placed <= 4  # calls per second (the pacing window is one second)

    run_until(
        engine, clock, finished(service, small.id, big.id), step=2.0, max_ticks=5_000, each=check
    )
    assert peaks["small"] == 2 and peaks["all"] == 8
    assert peaks["queued"] <= 50  # only as many as can be dialed soon
    for batch in (small, big):
        snapshot = service.get(batch.id)
        assert snapshot.status is BatchStatus.COMPLETED
        assert snapshot.finished_count == snapshot.total_recipients
        assert snapshot.finished_at is not None
        assert_counters_exact(service, batch.id)
    assert sorted(provider.placed_to()) == sorted(
        [r.phone_number for r in rows(12)] + [r.phone_number for r in rows(60)]
    )


def test_with_a_real_time_sleep_the_starts_are_spread_evenly_across_ticks(service, sessions, clock):
    """With a real-time sleep (here advancing the fake clock), a tick waits for each
    start's evenly spread moment, one every (1 s + the guard) / 4, instead of four at
    the start of a second and nothing until the next; the next tick goes on at that pace."""
    batch = new_batch(service, 20, reserved=20)
    provider = ScriptedProvider(clock)
    engine = DialerEngine(
        sessions,
        provider,
        clock=clock,
        config=CONFIG,
        settings_overrides={"calls_per_second": 4.0, "plan_concurrency": 20},
        sleep=lambda seconds: clock.advance(seconds),
    )
    for _ in range(4):
        engine.tick()
    starts = [p.at for p in provider.placements]
    interval = timedelta(seconds=(1 + CONFIG.pacing_guard_seconds) / 4)
    assert len(starts) >= 5
    assert [b - a for a, b in itertools.pairwise(starts)] == [interval] * (len(starts) - 1)
    assert service.get(batch.id).counts[RecipientStatus.IN_PROGRESS] == len(starts)
    for moment in starts:
        assert sum(moment <= other < moment + timedelta(seconds=1) for other in starts) <= 4


def test_waiting_for_capacity_is_explained(service, sessions, clock):
    first = new_batch(service, 10, name="First", reserved=2)
    second = new_batch(service, 10, name="Second", reserved=2, from_number="+12025550111")
    provider = ScriptedProvider(clock)
    engine = make_engine(sessions, provider, clock, plan_concurrency=2, calls_per_second=10)
    engine.tick()
    engine.tick()
    reasons = {service.get(b.id).waiting_reason for b in (first, second)}
    assert reasons == {
        "Waiting for capacity: all 2 simultaneous calls of the plan are in use. "
        "Calls start as lines free up."
    }


# ----------------------------------------------------------------------- errors
def test_an_invalid_destination_fails_only_that_recipient(service, sessions, clock):
    people = rows(4)
    people[1] = type(people[1])(3, "+15005550001", "Invalid")
    batch = new_batch(service, people)
    provider = ScriptedProvider(clock)
    engine = make_engine(sessions, provider, clock)
    run_until(engine, clock, finished(service, batch.id), step=5)
    snapshot = service.get(batch.id)
    assert snapshot.status is BatchStatus.COMPLETED
    statuses = recipient_statuses(service, batch.id)
    assert statuses["+15005550001"] is RecipientStatus.FAILED
    with sessions() as session:
        error = session.scalar(
            select(Recipient.last_error).where(Recipient.phone_number == "+15005550001")
        )
    assert "not appear to be valid" in error
    assert sum(s.is_terminal for s in statuses.values()) == 4


def test_a_fatal_error_fails_the_batch_call_with_a_readable_reason(service, sessions, clock):
    batch = new_batch(service, 6)
    reason = "Twilio rejected the credentials. Check the Account SID and Auth Token in Settings."
    provider = ScriptedProvider(clock, always=FatalProviderError(reason, http_status=401))
    engine = make_engine(sessions, provider, clock)
    engine.tick()
    snapshot = service.get(batch.id)
    assert snapshot.status is BatchStatus.FAILED
    assert snapshot.failure_reason == reason
    # Nobody was called, nobody is lost: a Retry reaches everyone.
    assert snapshot.counts[RecipientStatus.PENDING] == 6
    assert attempts_by_recipient(service, batch.id) == {}
    assert len(provider.placements) == 1
    assert_counters_exact(service, batch.id)


def test_call_settings_that_cannot_be_used_fail_the_batch_call_not_its_recipients(
    service, sessions, clock
):
    batch = new_batch(service, 4)
    provider = ScriptedProvider(clock)
    engine = make_engine(sessions, provider, clock, ring_timeout_seconds=2)
    engine.tick()
    snapshot = service.get(batch.id)
    assert snapshot.status is BatchStatus.FAILED
    assert snapshot.failure_reason.startswith("The call settings cannot be used: Ring timeout")
    assert snapshot.failure_reason.endswith("Fix them in Settings.")
    assert snapshot.counts[RecipientStatus.PENDING] == 4
    assert provider.placements == []


def test_transient_errors_back_off_and_never_fail_or_repeat_a_recipient(service, sessions, clock):
    batch = new_batch(service, 5, reserved=1)
    target = rows(5)[0].phone_number
    provider = ScriptedProvider(
        clock,
        errors={
            target: [
                TransientProviderError(
                    "Twilio is limiting the request rate (HTTP 429). Retrying.",
                    http_status=429,
                    code=20429,
                ),
                TransientProviderError("Could not connect to Twilio. Retrying."),
            ]
        },
    )
    engine = make_engine(sessions, provider, clock)
    engine.tick()
    snapshot = service.get(batch.id)
    assert snapshot.status is BatchStatus.RUNNING
    clock.advance(0.5)
    engine.tick()
    # A 429 slows dialing (the others are still called) and the details say so.
    assert len(provider.placements) == 2 and target not in provider.placed_to()
    reason = service.get(batch.id).waiting_reason
    assert "Twilio is limiting the request rate (HTTP 429)" in reason
    assert reason.startswith("Dialing at 4.75 calls/s, below the setting of 5:")
    # No connection at all: nothing is placed until the next try, and the reason says so.
    tried = lambda: [p.to for p in provider.placements].count(target) == 2  # noqa: E731
    run_until(engine, clock, tried, step=0.5, max_ticks=400)
    reason = service.get(batch.id).waiting_reason
    assert reason.startswith("Provider unreachable: Could not connect to Twilio.")
    assert "Next try at" in reason
    run_until(engine, clock, finished(service, batch.id), step=2)
    assert provider.placed_to().count(target) == 1
    assert len(provider.placements) == 7  # two refusals, five calls
    attempts = attempts_by_recipient(service, batch.id)[target]
    assert [a.attempt_number for a in attempts] == [1]
    assert recipient_statuses(service, batch.id)[target].is_terminal
    assert service.get(batch.id).waiting_reason is None
    assert_counters_exact(service, batch.id)


class _LostAnswer(ScriptedProvider):
    """Creates the call, then the answer is lost (a timeout after sending)."""

    lose: set[str]

    def place_call(self, request: CallRequest) -> CallState:
        state = super().place_call(request)
        if request.to in self.lose:
            self.lose.discard(request.to)
            raise TransientProviderError("The connection to Twilio was lost.", outcome_unknown=True)
        return state


def test_a_lost_answer_is_reconciled_by_adopting_the_call_not_by_calling_again(
    service, sessions, clock
):
    batch = new_batch(service, 3, reserved=3)
    lost = rows(3)[1].phone_number
    refused = rows(3)[2].phone_number
    provider = _LostAnswer(
        clock, errors={refused: [TransientProviderError("HTTP 500", http_status=500)]}
    )
    provider.lose = {lost}
    engine = make_engine(sessions, provider, clock)
    engine.tick()
    attempts = attempts_by_recipient(service, batch.id)
    assert attempts[lost][0].provider_call_id is None  # kept, not voided
    run_until(engine, clock, finished(service, batch.id), step=2)
    assert sorted(provider.placed_to()) == sorted(r.phone_number for r in rows(3))
    final = attempts_by_recipient(service, batch.id)
    assert [a.attempt_number for a in final[lost]] == [1]
    assert final[lost][0].provider_call_id == provider.placements[1].call_id
    assert [a.attempt_number for a in final[refused]] == [1]  # the 500 was voided
    assert all(s.is_terminal for s in recipient_statuses(service, batch.id).values())
    assert_counters_exact(service, batch.id)


def test_attempts_left_by_a_crash_are_reconciled_at_start_up(service, sessions, clock):
    batch = new_batch(service, 2, reserved=2)
    placed, never = (r.phone_number for r in rows(2))
    provider = ScriptedProvider(clock)
    first = make_engine(sessions, provider, clock)
    # Crash after transaction A; one request had reached the provider, one had not.
    first.placer.place_all = lambda provider_, claims, windows, report: None  # type: ignore[method-assign]
    first.tick()
    claimed = attempts_by_recipient(service, batch.id)
    assert set(claimed) == {placed, never}
    request = CallRequest(placed, "+12025550100", provider_agent(), {})
    provider.place_call(request)
    assert service.get(batch.id).counts[RecipientStatus.IN_PROGRESS] == 2

    clock.advance(6)
    restarted = make_engine(sessions, provider, clock)
    restarted.lease = None  # the crashed engine's lease has not expired yet
    run_until(restarted, clock, finished(service, batch.id), step=2)
    assert sorted(provider.placed_to()) == sorted([placed, never])
    attempts = attempts_by_recipient(service, batch.id)
    assert attempts[placed][0].provider_call_id == provider.placements[0].call_id
    assert [a.attempt_number for a in attempts[never]] == [1]
    assert_counters_exact(service, batch.id)


def provider_agent():
    from app.services.telephony import AgentSpec

    return AgentSpec("twiml", "<Response/>")


class _NeverEnds(ScriptedProvider):
    def fetch_call(self, call_id: str) -> CallState:
        state = super().fetch_call(call_id)
        return CallState(
            **{
                **state.__dict__,
                "raw_status": "in-progress",
                "outcome": CallOutcome.IN_PROGRESS,
                "ended_at": None,
            }
        )


def test_a_call_never_reported_as_ended_is_settled_failed(service, sessions, clock):
    batch = new_batch(service, 1)
    provider = _NeverEnds(clock)
    engine = make_engine(
        sessions, provider, clock, max_call_duration_seconds=600, ring_timeout_seconds=30
    )
    engine.tick()
    placed_at = clock()
    ticks = run_until(engine, clock, finished(service, batch.id), step=30)
    snapshot = service.get(batch.id)
    assert snapshot.counts[RecipientStatus.FAILED] == 1
    assert clock() >= placed_at + timedelta(seconds=690)
    assert ticks < 40
    with sessions() as session:
        recipient = session.scalars(select(Recipient)).one()
    assert recipient.last_error == NO_FINAL_STATUS


def test_a_final_outcome_is_never_overwritten(service, sessions, clock):
    batch = new_batch(service, 1)
    provider = ScriptedProvider(clock)
    engine = make_engine(sessions, provider, clock)
    run_until(engine, clock, finished(service, batch.id), step=10)
    before = recipient_statuses(service, batch.id)
    with sessions() as session:
        attempt = session.scalars(select(CallAttempt)).one()
    from app.services.engine.attempts import OpenAttempt, settle
    from app.services.lease import write_transaction

    late = CallState(
        attempt.provider_call_id,
        "failed",
        CallOutcome.FAILED,
        "",
        "",
        None,
        None,
        clock(),
        0,
        None,
        None,
        "late",
    )
    open_attempt = OpenAttempt(
        attempt.id, attempt.recipient_id, batch.id, 1, attempt.provider_call_id, clock()
    )
    with write_transaction(sessions) as session:
        assert settle(session, open_attempt, late, clock()) is False
    assert recipient_statuses(service, batch.id) == before
    assert_counters_exact(service, batch.id)


# ----------------------------------------------------------------------- supervisor races
def test_pause_between_claim_and_call_voids_the_attempt(service, sessions, clock):
    batch = new_batch(service, 3, reserved=3)
    provider = ScriptedProvider(clock)
    engine = make_engine(sessions, provider, clock)
    place_all = engine.placer.place_all

    def pause_first(provider_, claims, windows, report):
        service.pause(batch.id)
        place_all(provider_, claims, windows, report)

    engine.placer.place_all = pause_first  # type: ignore[method-assign]
    engine.tick()
    snapshot = service.get(batch.id)
    assert provider.placements == []
    assert snapshot.status is BatchStatus.PAUSED
    assert snapshot.counts[RecipientStatus.PENDING] == 3
    with sessions() as session:
        assert session.scalar(select(func.count()).select_from(CallAttempt)) == 0
        assert session.scalar(select(func.max(Recipient.attempts))) == 0
    assert_counters_exact(service, batch.id)


@pytest.mark.parametrize("action", ["pause", "cancel", "delete"])
def test_no_call_is_placed_after_a_supervisor_action_commits(service, sessions, clock, action):
    """The action is requested while a call is being placed: it commits at once, waits
    for the request already marked for sending (no lock is held while the provider is
    asked), and once it has answered no other call is placed."""
    batch = new_batch(service, 40, reserved=20)
    committed: list[float] = []
    placed: list[float] = []
    worker: list[threading.Thread] = []
    #: Recorded, not asserted, in the provider call: the engine would swallow an assert.
    overtaken: list[int] = []

    def supervisor() -> None:
        getattr(service, action)(batch.id)
        committed.append(time.monotonic())

    def during_place(request: CallRequest) -> None:
        if len(placed) == 3 and not worker:
            thread = threading.Thread(target=supervisor)
            worker.append(thread)
            thread.start()
            time.sleep(0.2)  # give the action every chance to overtake the call
            if committed:
                overtaken.append(len(placed))
        placed.append(time.monotonic())

    provider = ScriptedProvider(clock, on_place=during_place)
    engine = make_engine(sessions, provider, clock, calls_per_second=100, plan_concurrency=20)
    engine.tick()
    worker[0].join(30)
    assert overtaken == [], "the action must wait for the call being placed"
    assert committed
    assert all(moment < committed[0] for moment in placed)
    calls_before = len(provider.placed_to())
    assert calls_before == len(placed) >= 4
    for _ in range(15):  # long enough for every call in progress to end
        clock.advance(60)
        engine.tick()
    assert len(provider.placed_to()) == calls_before
    if action != "delete":
        snapshot = service.get(batch.id)
        assert snapshot.counts[RecipientStatus.PENDING] == 40 - calls_before
        assert snapshot.counts[RecipientStatus.QUEUED] == 0
        # Calls in progress were tracked to their end.
        assert snapshot.finished_count == calls_before
        assert_counters_exact(service, batch.id)
    else:
        with sessions() as session:
            assert session.scalar(select(func.count()).select_from(Recipient)) == 0


# ----------------------------------------------------------------------- review fixes
def test_a_call_left_by_a_crash_is_found_when_this_computers_clock_is_ahead(
    service, sessions, clock
):
    """The provider stamps its calls with its own clock, here 90 s behind this computer's:
    reconciliation must still find the call (and not place a second one)."""
    batch = new_batch(service, 1)
    person = rows(1)[0].phone_number
    provider = ScriptedProvider(lambda: clock() - timedelta(seconds=90))
    first = make_engine(sessions, provider, clock)
    first.placer.place_all = lambda provider_, claims, windows, report: None  # type: ignore[method-assign]
    first.tick()  # claimed, then the engine crashed while its request was on the way
    clock.advance(1)
    provider.place_call(CallRequest(person, "+12025550100", provider_agent(), {}))
    clock.advance(10)
    restarted = make_engine(sessions, provider, clock)  # measured no clock difference yet
    restarted.lease = None
    run_until(restarted, clock, finished(service, batch.id), step=2)
    assert provider.placed_to() == [person]
    attempts = attempts_by_recipient(service, batch.id)[person]
    assert [(a.attempt_number, a.provider_call_id) for a in attempts] == [
        (1, provider.placements[0].call_id)
    ]
    assert_counters_exact(service, batch.id)


class _AnswersLate(ScriptedProvider):
    """The request to `slow` takes 12 s and times out; the provider creates that call
    4 s later (Twilio was slow, not down)."""

    slow: str
    late: list[tuple[CallRequest, datetime]]

    def place_call(self, request: CallRequest) -> CallState:
        if request.to == self.slow and not self.late:
            self.clock.advance(12)  # type: ignore[union-attr]
            self.late.append((request, self.clock() + timedelta(seconds=4)))
            raise TransientProviderError(
                "Twilio did not answer within 12 s. Retrying.", outcome_unknown=True
            )
        return super().place_call(request)

    def materialise(self) -> None:
        for request, at in list(self.late):
            if self.clock() >= at:
                self.late[:] = [(request, datetime.max.replace(tzinfo=UTC))]
                ScriptedProvider.place_call(self, request)

    def find_calls(self, to: str, from_: str, since: datetime) -> list[CallState]:
        self.materialise()
        return super().find_calls(to, from_, since)

    def fetch_call(self, call_id: str) -> CallState:
        self.materialise()
        return super().fetch_call(call_id)


def test_a_call_created_after_its_slow_request_timed_out_is_adopted_not_placed_again(
    service, sessions, clock
):
    batch = new_batch(service, 2, reserved=2)
    slow = rows(2)[0].phone_number
    provider = _AnswersLate(clock)
    provider.slow, provider.late = slow, []
    engine = make_engine(sessions, provider, clock)
    run_until(
        engine,
        clock,
        finished(service, batch.id),
        step=1,
        each=lambda report: provider.materialise(),
    )
    assert provider.placed_to().count(slow) == 1
    assert [a.attempt_number for a in attempts_by_recipient(service, batch.id)[slow]] == [1]
    assert_counters_exact(service, batch.id)


def test_placing_stops_when_its_time_budget_is_used_and_the_rest_stay_queued(
    service, sessions, clock
):
    """Each request takes 0.3 s of real time: a tick places for about a second (the
    budget is real time, whatever the engine's clock), then lets a Pause in; the calls
    not placed wait, queued, for the next."""

    def slow(request: CallRequest) -> None:
        time.sleep(0.3)
        clock.advance(0.3)

    batch = new_batch(service, 30, reserved=30)
    provider = ScriptedProvider(clock, on_place=slow)
    engine = make_engine(sessions, provider, clock, calls_per_second=100, plan_concurrency=30)
    report = engine.tick()
    placed = len(provider.placements)
    assert placed in (3, 4)  # sent at about 0, 0.3, 0.6 and 0.9 s
    assert report.budget_used
    assert report.next_tick_in is not None and report.next_tick_in >= 0.1
    snapshot = service.get(batch.id)
    assert snapshot.counts[RecipientStatus.IN_PROGRESS] == placed
    assert snapshot.counts[RecipientStatus.QUEUED] == 30 - placed
    assert_counters_exact(service, batch.id)


def test_the_placing_budget_is_real_time_not_the_engines_clock(service, sessions, clock):
    """QA's fast clock (issue 12): a request that takes no real time but moves the
    engine's clock a whole second does not use the tick's placing budget up."""
    batch = new_batch(service, 8, reserved=8)
    provider = ScriptedProvider(clock, on_place=lambda request: clock.advance(1.0))
    engine = make_engine(sessions, provider, clock, calls_per_second=100, plan_concurrency=8)
    report = engine.tick()
    assert len(provider.placements) == 8 and not report.budget_used
    assert service.get(batch.id).counts[RecipientStatus.IN_PROGRESS] == 8


def test_a_pause_gets_in_quickly_while_slow_calls_are_being_placed(service, database_url):
    """Real time: each request takes 0.1 s and the engine ticks back to back (the worst
    host). The Pause must not wait for the whole queue to be placed."""
    from app.services.engine import open_engine_database

    batch = new_batch(service, 200, reserved=100)
    provider = ScriptedProvider(real_clock, on_place=lambda request: time.sleep(0.1))
    db, engine_sessions = open_engine_database(database_url)
    stop = threading.Event()
    engine = DialerEngine(
        engine_sessions,
        provider,
        clock=real_clock,
        config=CONFIG,
        settings_overrides={"calls_per_second": 100.0, "plan_concurrency": 100},
        sleep=stop.wait,
    )

    def run() -> None:
        while not stop.is_set():
            engine.tick()

    ticking = threading.Thread(target=run)
    ticking.start()
    paused: list[float] = []
    try:
        deadline = time.monotonic() + 10
        while len(provider.placements) < 3 and time.monotonic() < deadline:
            time.sleep(0.01)
        started = time.monotonic()

        def pause() -> None:
            service.pause(batch.id)
            paused.append(time.monotonic())

        pausing = threading.Thread(target=pause)
        pausing.start()
        pausing.join(5)
        took = time.monotonic() - started
        calls_at_pause = len(provider.placed_to())
        time.sleep(0.3)
        calls_after = len(provider.placed_to())
    finally:
        stop.set()
        engine.request_stop()
        ticking.join(30)
        engine.close()
        db.dispose()
    assert paused, "the Pause did not get in within 5 s"
    assert took < 3.0  # about the placing budget (1 s) and one request, not the queue
    assert calls_after == calls_at_pause
    assert service.get(batch.id).status is BatchStatus.PAUSED


def real_clock() -> datetime:
    return datetime.now(UTC)


def test_a_refused_connection_places_no_call_and_holds_no_line(service, sessions, clock):
    batch = new_batch(service, 3, reserved=3)
    target = rows(3)[0].phone_number
    refused = TransientProviderError(
        "Could not connect to Twilio (connection refused or host unknown). Check the "
        "network; retrying."
    )
    provider = ScriptedProvider(clock, errors={target: [refused]})
    engine = make_engine(sessions, provider, clock)
    engine.tick()
    snapshot = service.get(batch.id)
    assert snapshot.counts[RecipientStatus.IN_PROGRESS] == 0  # nothing to reconcile
    assert attempts_by_recipient(service, batch.id) == {}
    assert recipient_statuses(service, batch.id)[target] is RecipientStatus.PENDING
    assert snapshot.waiting_reason.startswith("Provider unreachable: Could not connect")
    run_until(engine, clock, finished(service, batch.id), step=5)
    assert sorted(provider.placed_to()) == sorted(r.phone_number for r in rows(3))
    assert_counters_exact(service, batch.id)


def test_a_provider_unreachable_while_every_line_is_busy_is_explained(service, sessions, clock):
    batch = new_batch(service, 10, reserved=3)
    provider = ScriptedProvider(clock)
    engine = make_engine(sessions, provider, clock, calls_per_second=10)
    engine.tick()  # three calls in progress: every line of the batch call is busy
    refused = TransientProviderError(
        "Could not connect to Twilio (connection refused or host unknown). Check the "
        "network; retrying."
    )
    provider.fetch_errors = [refused] * 1000
    states: set[str] = set()
    for _ in range(180):
        clock.advance(1)
        states.add(engine.tick().status.text)
        reason = service.get(batch.id).waiting_reason
        assert reason is not None and reason.startswith(
            "Provider unreachable: Could not connect to Twilio"
        ), reason
    assert all(s.startswith("error: the telephony provider cannot be reached") for s in states)
    provider.fetch_errors.clear()  # it answers again
    run_until(engine, clock, finished(service, batch.id), step=5)
    assert service.get(batch.id).waiting_reason is None
    assert_counters_exact(service, batch.id)


class _CannotList(ScriptedProvider):
    def find_calls(self, to: str, from_: str, since: datetime) -> list[CallState]:
        raise FatalProviderError(
            "Twilio refused access (HTTP 403): this API key may not list calls.", http_status=403
        )


def test_a_call_the_provider_never_confirms_is_settled_failed_after_its_limits(
    service, sessions, clock
):
    batch = new_batch(service, 2)
    lost = rows(2)[0].phone_number
    provider = _CannotList(
        clock, errors={lost: [TransientProviderError("Answer lost.", outcome_unknown=True)]}
    )
    engine = make_engine(
        sessions, provider, clock, ring_timeout_seconds=30, max_call_duration_seconds=60
    )
    reasons: list[str | None] = []
    sent = clock()
    run_until(
        engine,
        clock,
        finished(service, batch.id),
        step=30,
        max_ticks=200,
        each=lambda report: reasons.append(service.get(batch.id).waiting_reason),
    )
    # Past ring timeout + maximum duration + margins (30 + 60 + 60 + 600 s), not before.
    assert clock() >= sent + timedelta(seconds=750)
    assert clock() < sent + timedelta(seconds=750 + 120)
    assert recipient_statuses(service, batch.id)[lost] is RecipientStatus.FAILED
    with sessions() as session:
        error = session.scalar(select(Recipient.last_error).where(Recipient.phone_number == lost))
    assert error.startswith("Outcome unknown: the provider never confirmed this call")
    assert "HTTP 403" in error
    assert any(
        r and r.startswith("Cannot confirm 1 call with the provider: Twilio refused access")
        for r in reasons
    )
    assert lost not in provider.placed_to()  # never placed a second time
    snapshot = service.get(batch.id)
    assert snapshot.status is BatchStatus.COMPLETED and snapshot.waiting_reason is None
    assert_counters_exact(service, batch.id)


def test_reconciliation_finds_its_attempts_through_an_index(sessions):
    """Refused attempts (no call id, FAILED) pile up for ever: the query run every tick
    for attempts to reconcile must not walk them (SQLite's plan names the index)."""
    from app.services.engine.unresolved import UNRESOLVED_ATTEMPTS

    with sessions() as session:
        connection = session.connection()
        compiled = UNRESOLVED_ATTEMPTS.compile(connection.engine)
        values = {"p_limit": 50, "param_1": 0, "provider_status_1": "server error"}
        plan = connection.exec_driver_sql(
            "EXPLAIN QUERY PLAN " + str(compiled),
            tuple(values.get(name, "2026-01-01") for name in compiled.positiontup or ()),
        ).all()
    details = " ".join(str(row[-1]) for row in plan)
    assert "ix_call_attempts_unresolved (outcome=? AND provider_call_id=?)" in details, details
    assert "TEMP B-TREE" not in details  # already in id order
