"""The engine against the local Twilio stand-in, through the real TwilioProvider: what the
"provider" saw is the measure (calls created, when, how many at once)."""

from __future__ import annotations

import logging
import time
from collections import Counter
from collections.abc import Iterable
from datetime import datetime, timedelta
from pathlib import Path

import pytest

from app.models.status import BatchStatus, RecipientStatus
from app.services.engine import DialerEngine, EngineConfig
from app.services.providers import build_provider
from app.services.settings import SettingsStore
from app.services.twilio_provider import TwilioProvider
from app.standin.twilio_server import CallRecord, TwilioStandin
from tests.conftest import Row
from tests.services.engine_support import (
    STANDIN_FROM,
    assert_counters_exact,
    attempts_by_recipient,
    finished,
    new_batch,
    recipient_statuses,
    rows,
    run_until,
)
from tests.standin.oai_validation import twilio_validator

CONFIG = EngineConfig(poll_interval_seconds=1.0, unknown_settle_seconds=5.0, seed=3)


@pytest.fixture
def standin(clock):
    with TwilioStandin(clock=clock, seed=5) as server:
        yield server
        # Whatever the engine sent during the test is valid against Twilio's OpenAPI
        # description (../shared/twilio-oai), faults and retries included.
        requests = list(server.requests)
    validator = twilio_validator()
    assert requests, "the engine sent nothing to the stand-in"
    for entry in requests:
        validator.assert_request_valid(entry)


@pytest.fixture
def twilio(standin):
    provider = TwilioProvider(
        standin.account_sid, standin.auth_token, base_url=standin.base_url, timeout=5
    )
    yield provider
    provider.close()


_ENGINES: list[DialerEngine] = []


@pytest.fixture(autouse=True)
def close_engines():
    """Every engine a test made is closed (its polling threads end with the test)."""
    yield
    while _ENGINES:
        _ENGINES.pop().close()


def make_engine(sessions, provider, clock, **settings) -> DialerEngine:
    values = {"calls_per_second": 5.0, "plan_concurrency": 10, "pickup_interval_seconds": 60.0}
    values.update(settings)
    engine = DialerEngine(sessions, provider, clock=clock, config=CONFIG, settings_overrides=values)
    _ENGINES.append(engine)
    return engine


def program_short_calls(standin: TwilioStandin, people: Iterable[Row], **outcomes: str) -> None:
    """Calls of a few seconds (so a test needs few ticks); `outcomes` by phone number."""
    for person in people:
        outcome = outcomes.get(person.phone_number, "completed")
        standin.program(person.phone_number, outcome=outcome, ring_seconds=2, talk_seconds=6)


def max_alive(calls: Iterable[CallRecord], now: datetime) -> int:
    """The most of these calls alive at once (created, not yet ended)."""
    events: list[tuple[datetime, int]] = []
    for call in calls:
        events.append((call.created_at, 1))
        events.append((call.ended_at or now, -1))
    events.sort(key=lambda event: (event[0], event[1]))
    best = current = 0
    for _, delta in events:
        current += delta
        best = max(best, current)
    return best


def test_concurrency_pacing_and_fair_share_as_seen_by_the_provider(
    service, sessions, clock, standin, twilio
):
    big_people, small_people = rows(80), rows(16, prefix="+1303555")
    program_short_calls(standin, [*big_people, *small_people])
    big = new_batch(service, big_people, name="Big", from_number=STANDIN_FROM, reserved=6)
    small = new_batch(service, small_people, name="Small", from_number=STANDIN_FROM, reserved=6)
    engine = make_engine(sessions, twilio, clock, plan_concurrency=8, calls_per_second=3)
    run_until(engine, clock, finished(service, big.id, small.id), step=1.0, max_ticks=2000)

    calls = standin.calls
    assert Counter(c.to for c in calls) == Counter(
        p.phone_number for p in [*big_people, *small_people]
    )
    assert standin.max_concurrent_in_progress() <= 8
    assert max_alive([c for c in calls if c.to.startswith("+1202")], clock()) <= 6
    assert max_alive([c for c in calls if c.to.startswith("+1303")], clock()) <= 6
    assert standin.max_calls_created_within(timedelta(seconds=1)) <= 3
    # Fair share: while both had recipients left, the small batch call got about half
    # of the calls, instead of waiting behind the big one.
    last_small = max(i for i, c in enumerate(calls) if c.to.startswith("+1303"))
    small_share = sum(c.to.startswith("+1303") for c in calls[: last_small + 1]) / (last_small + 1)
    assert 0.4 <= small_share <= 0.6
    assert last_small < 40
    for batch in (big, small):
        assert service.get(batch.id).status is BatchStatus.COMPLETED
        assert_counters_exact(service, batch.id)


def test_pause_then_resume(service, sessions, clock, standin, twilio):
    people = rows(30)
    program_short_calls(standin, people)
    batch = new_batch(service, people, from_number=STANDIN_FROM, reserved=4)
    engine = make_engine(sessions, twilio, clock)
    for _ in range(5):
        engine.tick()
        clock.advance(1)
    before = len(standin.calls)
    assert 0 < before < 30
    service.pause(batch.id)
    for _ in range(30):
        engine.tick()
        clock.advance(1)
    assert len(standin.calls) == before  # nothing new after the pause
    snapshot = service.get(batch.id)
    assert snapshot.status is BatchStatus.PAUSED
    assert snapshot.counts[RecipientStatus.IN_PROGRESS] == 0  # calls in progress were tracked
    assert snapshot.finished_count == before
    service.resume(batch.id)
    run_until(engine, clock, finished(service, batch.id), step=1.0)
    assert Counter(c.to for c in standin.calls) == Counter(p.phone_number for p in people)
    assert_counters_exact(service, batch.id)


def test_cancel_then_retry_calls_only_who_still_needs_a_call(
    service, sessions, clock, standin, twilio
):
    people = rows(20)
    busy = {people[0].phone_number, people[1].phone_number}
    program_short_calls(standin, people, **dict.fromkeys(busy, "busy"))
    batch = new_batch(service, people, from_number=STANDIN_FROM, reserved=4)
    engine = make_engine(sessions, twilio, clock)
    for _ in range(4):
        engine.tick()
        clock.advance(1)
    service.cancel(batch.id)
    for _ in range(20):
        engine.tick()
        clock.advance(1)
    called = Counter(c.to for c in standin.calls)
    assert 0 < len(called) < 20
    assert busy <= set(called)
    snapshot = service.get(batch.id)
    assert snapshot.status is BatchStatus.CANCELLED
    assert snapshot.counts[RecipientStatus.PENDING] == 20 - len(called)
    assert snapshot.counts[RecipientStatus.NO_ANSWER] == 2
    assert snapshot.counts[RecipientStatus.IN_PROGRESS] == 0

    service.retry(batch.id)
    assert service.get(batch.id).status is BatchStatus.SCHEDULED
    run_until(engine, clock, finished(service, batch.id), step=5.0)  # picked up within 60 s
    after = Counter(c.to for c in standin.calls)
    expected = {p.phone_number: 1 for p in people} | dict.fromkeys(busy, 2)
    assert after == Counter(expected)  # completed recipients were not called again
    assert service.get(batch.id).retry_count == 1
    assert_counters_exact(service, batch.id)


def test_delete_while_dialing_places_no_further_call(service, sessions, clock, standin, twilio):
    people = rows(30)
    program_short_calls(standin, people)
    batch = new_batch(service, people, from_number=STANDIN_FROM, reserved=4)
    engine = make_engine(sessions, twilio, clock)
    for _ in range(3):
        engine.tick()
        clock.advance(1)
    before = len(standin.calls)
    assert before > 0
    service.delete(batch.id)
    for _ in range(20):
        report = engine.tick()
        assert report.state == "dialing"
        clock.advance(1)
    assert len(standin.calls) == before
    assert service.find(batch.id) is None


def test_faults_lose_no_recipient_and_call_none_twice(
    service, sessions, clock, standin, twilio, caplog
):
    caplog.set_level(logging.WARNING)
    people = rows(60)
    program_short_calls(standin, people)
    standin.faults(
        rate_429=0.2,
        rate_500=0.1,
        drop_rate=0.03,
        lost_response_rate=0.03,
        delay_seconds=0.005,
        seed=9,
    )
    batch = new_batch(service, people, from_number=STANDIN_FROM, reserved=6)
    engine = make_engine(sessions, twilio, clock, calls_per_second=4)
    run_until(engine, clock, finished(service, batch.id), step=1.0, max_ticks=3000)

    statuses = recipient_statuses(service, batch.id)
    assert all(status.is_terminal for status in statuses.values())
    assert Counter(c.to for c in standin.calls) == Counter(p.phone_number for p in people)
    faults = Counter(r.status for r in standin.requests if r.method == "POST")
    assert faults[429] > 5 and faults[500] > 2 and faults[None] > 0  # the faults happened
    # One attempt per recipient, holding the one call the stand-in created for it.
    by_sid = {c.sid: c.to for c in standin.calls}
    for phone, attempts in attempts_by_recipient(service, batch.id).items():
        assert [a.attempt_number for a in attempts] == [1]
        assert by_sid[attempts[0].provider_call_id] == phone
    assert service.get(batch.id).status is BatchStatus.COMPLETED
    assert_counters_exact(service, batch.id)
    assert "no answer from the provider" in caplog.text  # lost answers were reconciled


def test_wrong_credentials_fail_the_batch_call_with_a_readable_reason(
    service, sessions, clock, standin
):
    batch = new_batch(service, 5, from_number=STANDIN_FROM)
    provider = TwilioProvider(standin.account_sid, "0" * 32, base_url=standin.base_url)
    engine = make_engine(sessions, provider, clock)
    engine.tick()
    provider.close()
    snapshot = service.get(batch.id)
    assert snapshot.status is BatchStatus.FAILED
    assert snapshot.failure_reason.startswith("Twilio rejected the credentials.")
    assert "Settings" in snapshot.failure_reason
    assert snapshot.counts[RecipientStatus.PENDING] == 5
    assert standin.calls == []


def test_a_from_number_the_account_does_not_own_fails_the_batch_call(
    service, sessions, clock, standin, twilio
):
    batch = new_batch(service, 3, from_number="+12025550100")
    engine = make_engine(sessions, twilio, clock)
    engine.tick()
    snapshot = service.get(batch.id)
    assert snapshot.status is BatchStatus.FAILED
    assert "from number" in snapshot.failure_reason


def test_an_invalid_destination_fails_that_recipient_and_the_batch_goes_on(
    service, sessions, clock, standin, twilio
):
    people = rows(4)
    people.append(Row(9, "+15005550001", "Magic invalid"))
    program_short_calls(standin, people[:4])
    batch = new_batch(service, people, from_number=STANDIN_FROM)
    engine = make_engine(sessions, twilio, clock)
    run_until(engine, clock, finished(service, batch.id), step=1.0)
    snapshot = service.get(batch.id)
    assert snapshot.status is BatchStatus.COMPLETED
    assert recipient_statuses(service, batch.id)["+15005550001"] is RecipientStatus.FAILED
    assert snapshot.counts[RecipientStatus.COMPLETED] == 4
    assert sorted(c.to for c in standin.calls) == sorted(p.phone_number for p in people[:4])


def test_the_auth_token_appears_nowhere(
    service, sessions, clock, standin, twilio, caplog, tmp_path
):
    caplog.set_level(logging.DEBUG)
    people = rows(6)
    people.append(Row(9, "+15005550002", "Unreachable"))
    program_short_calls(standin, people[:6], **{people[0].phone_number: "failed"})
    standin.faults(rate_500=0.2, seed=4)
    batch = new_batch(service, people, from_number=STANDIN_FROM)
    engine = make_engine(sessions, twilio, clock)
    run_until(engine, clock, finished(service, batch.id), step=1.0)
    engine.close()
    # And a rejected credential, whose error travels through the logs and the database.
    other = new_batch(service, 2, name="Other", from_number=STANDIN_FROM)
    wrong = TwilioProvider(standin.account_sid, standin.auth_token[::-1], base_url=standin.base_url)
    second = make_engine(sessions, wrong, clock)
    second.tick()
    second.close()
    wrong.close()
    assert service.get(other.id).status is BatchStatus.FAILED
    export = tmp_path / "export.csv"
    service.export_recipients(batch.id, export)
    service.sessions.kw["bind"].dispose()

    token = standin.auth_token.encode()
    database = Path(service.sessions.kw["bind"].url.database)
    for path in database.parent.glob(database.name + "*"):
        assert token not in path.read_bytes(), path.name
    assert token not in export.read_bytes()
    assert standin.auth_token not in caplog.text
    assert standin.auth_token[::-1] not in caplog.text
    assert "call placed to +1202***" in caplog.text  # the log is there, numbers masked


def test_credentials_fixed_after_a_failure_are_used_by_the_retry(
    service, sessions, clock, standin, monkeypatch
):
    monkeypatch.setenv("BATCHCALLS_TWILIO_API_BASE", standin.base_url)
    monkeypatch.setenv("BATCHCALLS_TWILIO_ACCOUNT_SID", standin.account_sid)
    monkeypatch.setenv("BATCHCALLS_TWILIO_AUTH_TOKEN", "f" * 32)
    SettingsStore(sessions).update(provider="twilio")
    people = rows(3)
    program_short_calls(standin, people)
    batch = new_batch(service, people, from_number=STANDIN_FROM)
    engine = DialerEngine(
        sessions,
        clock=clock,
        config=CONFIG,
        provider_factory=build_provider,
        settings_overrides={"calls_per_second": 5.0},
    )
    _ENGINES.append(engine)
    engine.tick()
    assert service.get(batch.id).status is BatchStatus.FAILED
    # The supervisor enters the right token in Settings, then retries (which wakes the
    # engine): no restart needed.
    monkeypatch.setenv("BATCHCALLS_TWILIO_AUTH_TOKEN", standin.auth_token)
    service.retry(batch.id)
    engine.request_pickup()
    run_until(engine, clock, finished(service, batch.id), step=1.0)
    assert service.get(batch.id).status is BatchStatus.COMPLETED
    assert sorted(c.to for c in standin.calls) == sorted(p.phone_number for p in people)


def test_a_slow_provider_does_not_hold_a_tick_past_the_polling_budget(
    service, sessions, clock, standin, twilio
):
    people = rows(10)
    program_short_calls(standin, people)
    batch = new_batch(service, people, from_number=STANDIN_FROM, reserved=10)
    engine = DialerEngine(
        sessions,
        twilio,
        clock=clock,
        config=EngineConfig(poll_interval_seconds=1.0, fetch_workers=2, poll_budget_seconds=0.3),
        settings_overrides={"calls_per_second": 20.0},
    )
    _ENGINES.append(engine)
    engine.tick()
    assert len(standin.calls) == 10
    standin.faults(delay_seconds=0.4)  # every answer now takes 0.4 s
    clock.advance(30)  # every call has ended
    started = time.monotonic()
    report = engine.tick()
    assert time.monotonic() - started < 1.5  # not 10 polls x 0.4 s / 2 threads = 2 s
    assert 0 < report.settled < 10  # the rest waits for the next tick
    run_until(engine, clock, finished(service, batch.id), step=1.0, max_ticks=20)
    assert service.get(batch.id).finished_count == 10
