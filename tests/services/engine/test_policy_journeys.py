"""SPEC 10 journeys on a fake clock, through the real TwilioProvider against the Twilio
stand-in. The stand-in's request log is the witness for every "not called": a number
that is not called never appears in a POST to Calls.json, and a number called late
appears only from the moment it may be called.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from itertools import pairwise
from zoneinfo import ZoneInfo

import pytest

from app.models.status import BatchStatus, RecipientStatus
from app.services.batch_calls import Actor, NewBatchCall
from app.services.do_not_call import DoNotCallService
from app.services.engine import DialerEngine, EngineConfig
from app.services.twilio_provider import TwilioProvider
from app.standin.twilio_server import TwilioStandin
from tests.conftest import Row
from tests.services.engine_support import STANDIN_FROM, assert_counters_exact, run_until

NEW_YORK = ZoneInfo("America/New_York")
LOS_ANGELES = ZoneInfo("America/Los_Angeles")
WEEK = frozenset(range(1, 8))
CONFIG = EngineConfig(poll_interval_seconds=1.0, unknown_settle_seconds=5.0, seed=3)


@pytest.fixture
def standin(clock):
    with TwilioStandin(clock=clock, seed=5) as server:
        yield server


@pytest.fixture
def engines(sessions, standin, clock):
    made: list[DialerEngine] = []
    providers: list[TwilioProvider] = []

    def make(**settings: object) -> DialerEngine:
        provider = TwilioProvider(
            standin.account_sid, standin.auth_token, base_url=standin.base_url, timeout=5
        )
        providers.append(provider)
        values: dict[str, object] = {
            "calls_per_second": 5.0,
            "plan_concurrency": 10,
            "pickup_interval_seconds": 60.0,
        }
        values.update(settings)
        engine = DialerEngine(
            sessions, provider, clock=clock, config=CONFIG, settings_overrides=values
        )
        made.append(engine)
        return engine

    yield make
    for engine in made:
        engine.close()
    for provider in providers:
        provider.close()


def calls_to(standin: TwilioStandin) -> list[tuple[str, datetime]]:
    """(number, when) of every call creation the stand-in answered: the witness."""
    return [
        (request.form["To"][0], request.time)
        for request in standin.requests
        if request.method == "POST"
        and request.path.endswith("/Calls.json")
        and request.status == 201
    ]


def policy_batch(service, people: Iterable[Row], name: str = "Policy", **policy: object):
    agents = {a.name: a for a in service.list_agents()}
    agent = agents.get("Agent") or service.add_agent(
        "Agent", "twiml", "<Response><Say>Hello</Say></Response>"
    )
    number = service.add_from_number(STANDIN_FROM, "Main line")
    values: dict[str, object] = {
        "timezone": "America/New_York",
        "window_start": "09:00",
        "window_end": "18:00",
        "allowed_days": WEEK,
        "reserved_concurrency": 2,
    }
    values.update(policy)
    spec = NewBatchCall(name, agent.id, number.id, **values)  # type: ignore[arg-type]
    return service.create(spec, [list(people)])


def program(standin: TwilioStandin, people: Iterable[Row], talk: float = 60, **kw) -> None:
    for person in people:
        standin.program(person.phone_number, ring_seconds=5, talk_seconds=talk, **kw)


def done(service, *batch_ids: int):
    return lambda: all(service.get(b).status is BatchStatus.COMPLETED for b in batch_ids)


def test_a_los_angeles_number_waits_for_eight_pacific_in_an_open_new_york_window(
    service, clock, standin, engines
):
    # Monday 2026-11-23 14:00 UTC: 09:00 in New York, 06:00 in Los Angeles.
    la, ny = Row(2, "+13105550100"), Row(3, "+12125550100")
    program(standin, [la, ny])
    batch = policy_batch(service, [la, ny], local_hours="08:00-21:00")
    engine = engines()
    seen_reason: list[str] = []

    def watch(_report: object) -> None:
        reason = service.get(batch.id).waiting_reason
        if reason and reason not in seen_reason:
            seen_reason.append(reason)

    run_until(engine, clock, done(service, batch.id), step=60, max_ticks=600, each=watch)
    witness = dict(calls_to(standin))
    assert witness[ny.phone_number] < datetime(2026, 11, 23, 14, 5, tzinfo=UTC)
    eight_pacific = datetime(2026, 11, 23, 8, 0, tzinfo=LOS_ANGELES)
    assert eight_pacific <= witness[la.phone_number] < eight_pacific + timedelta(minutes=5)
    assert (
        "1 recipient waits for their local calling hours (08:00 to 21:00 in each recipient's "
        "timezone). The next opens Mon 23 Nov 11:00 EST." in seen_reason
    )
    assert_counters_exact(service, batch.id)


def test_a_number_in_two_timezones_waits_for_the_later_one(service, clock, standin, engines):
    idaho = Row(2, "+12085550100")  # America/Boise and America/Los_Angeles
    program(standin, [idaho])
    batch = policy_batch(service, [idaho], timezone="America/Denver", local_hours="08:00-21:00")
    clock.set(datetime(2026, 11, 23, 14, 30, tzinfo=UTC))  # 07:30 Boise, 06:30 LA
    run_until(engines(), clock, done(service, batch.id), step=60, max_ticks=600)
    ((number, at),) = calls_to(standin)
    # 08:00 in Boise (15:00 UTC) is not enough: 08:00 in Los Angeles is 16:00 UTC.
    assert number == idaho.phone_number
    assert (
        datetime(2026, 11, 23, 16, 0, tzinfo=UTC) <= at < datetime(2026, 11, 23, 16, 5, tzinfo=UTC)
    )


def test_a_number_added_to_the_do_not_call_list_while_running_is_never_called(
    service, sessions, clock, standin, engines
):
    people = [Row(i + 2, f"+1202555{i:04d}") for i in range(6)]
    program(standin, people, talk=120)
    batch = policy_batch(service, people, window_start="00:00", window_end="23:59",
                         reserved_concurrency=1)  # fmt: skip
    engine = engines(calls_per_second=1.0)
    run_until(engine, clock, lambda: len(calls_to(standin)) >= 1, step=5, max_ticks=100)
    blocked = people[3].phone_number
    DoNotCallService(sessions, clock=clock, actor=Actor("ann", "desk")).add(blocked)
    run_until(engine, clock, done(service, batch.id), step=30, max_ticks=2000)
    called = [number for number, _ in calls_to(standin)]
    assert blocked not in called
    assert sorted(called) == sorted(p.phone_number for p in people if p.phone_number != blocked)
    finished = service.get(batch.id)
    assert finished.counts[RecipientStatus.DO_NOT_CALL] == 1
    assert finished.finished_count == 6
    skipped = service.recipients_page(batch.id, _query(RecipientStatus.DO_NOT_CALL))
    assert [r.phone_number for r in skipped] == [blocked]
    assert skipped[0].attempts == 0 and "do-not-call" in (skipped[0].last_error or "")
    assert_counters_exact(service, batch.id)


def _query(status: RecipientStatus):
    from app.services.batch_calls import RecipientQuery

    return RecipientQuery(status=status)


def test_a_no_answer_is_called_again_after_the_delay_and_not_before_at_most_the_maximum(
    service, clock, standin, engines
):
    quiet, busy = Row(2, "+12025550101"), Row(3, "+12025550102")
    standin.program(quiet.phone_number, outcome="no-answer", ring_seconds=20, talk_seconds=0)
    standin.program(busy.phone_number, outcome="busy", ring_seconds=3, talk_seconds=0)
    batch = policy_batch(
        service,
        [quiet, busy],
        window_start="00:00",
        window_end="23:59",
        max_attempts=3,
        retry_delay_minutes=10,
        retry_outcomes="no-answer",  # busy is not retried
    )
    engine = engines()
    waiting_seen: list[int] = []

    def watch(_report: object) -> None:
        waiting_seen.append(service.get(batch.id).counts[RecipientStatus.WAITING_RETRY])

    run_until(engine, clock, done(service, batch.id), step=15, max_ticks=1000, each=watch)
    witness = calls_to(standin)
    quiet_calls = [at for number, at in witness if number == quiet.phone_number]
    assert len(quiet_calls) == 3  # at most the maximum
    for first, second in pairwise(quiet_calls):
        # The call rang 20 s; the next attempt comes 10 minutes after it ended, not before.
        assert second - first >= timedelta(minutes=10, seconds=20)
        assert second - first < timedelta(minutes=12)
    assert [n for n, _ in witness].count(busy.phone_number) == 1
    assert max(waiting_seen) == 1  # visible as waiting for a retry in between
    final = service.get(batch.id)
    assert final.counts[RecipientStatus.NO_ANSWER] == 2
    assert final.counts[RecipientStatus.WAITING_RETRY] == 0
    assert_counters_exact(service, batch.id)


def test_nobody_is_called_more_than_the_cap_in_24_hours_across_two_batch_calls(
    service, sessions, clock, standin, engines
):
    from app.services.settings import SettingsStore

    shared, other = Row(2, "+12025550111"), Row(3, "+12025550112")
    program(standin, [shared, other])
    SettingsStore(sessions).update(max_attempts_per_number_24h=1)
    first = policy_batch(service, [shared], name="First", window_start="00:00", window_end="23:59")
    second = policy_batch(
        service, [shared, other], name="Second", window_start="00:00", window_end="23:59"
    )
    engine = engines()
    start = clock()
    run_until(engine, clock, done(service, first.id), step=30, max_ticks=500)
    run_until(engine, clock, lambda: clock() - start > timedelta(hours=23), step=600, max_ticks=500)
    to_shared = [at for number, at in calls_to(standin) if number == shared.phone_number]
    assert len(to_shared) == 1  # the second batch call waits for the 24 hours to pass
    assert service.get(second.id).status is BatchStatus.RUNNING
    run_until(engine, clock, done(service, second.id), step=300, max_ticks=500)
    to_shared = [at for number, at in calls_to(standin) if number == shared.phone_number]
    assert len(to_shared) == 2 and to_shared[1] - to_shared[0] >= timedelta(hours=24)


def test_nothing_is_dialed_on_a_blackout_date_or_outside_two_ranges_across_the_dst_change(
    service, clock, standin, engines
):
    # Saturday 2026-03-07; clocks go forward on Sunday 03-08; Monday 03-09 is a holiday.
    clock.set(datetime(2026, 3, 7, 12, 0, tzinfo=UTC))
    people = [Row(i + 2, f"+1202555{i:04d}") for i in range(24)]
    program(standin, people, talk=50 * 60)  # one call at a time, about an hour each
    batch = policy_batch(
        service,
        people,
        time_ranges="09:00-12:00,14:00-18:00",
        blackout_dates="2026-03-09",
        reserved_concurrency=1,
    )
    run_until(engines(), clock, done(service, batch.id), step=300, max_ticks=3000)
    witness = calls_to(standin)
    assert len(witness) == 24
    for _, at in witness:
        local = at.astimezone(NEW_YORK)
        minutes = local.hour * 60 + local.minute
        assert 9 * 60 <= minutes < 12 * 60 or 14 * 60 <= minutes < 18 * 60, local
        assert local.date().isoformat() != "2026-03-09", local
    # On the day of the change 09:00 New York is 13:00 UTC (the day before: 14:00 UTC).
    sunday = sorted(at for _, at in witness if at.astimezone(NEW_YORK).day == 8)
    assert sunday[0] - datetime(2026, 3, 8, 13, 0, tzinfo=UTC) < timedelta(minutes=6)
    saturday = sorted(at for _, at in witness if at.astimezone(NEW_YORK).day == 7)
    assert saturday[0] >= datetime(2026, 3, 7, 14, 0, tzinfo=UTC)


def test_the_end_date_expires_the_rest(service, clock, standin, engines):
    people = [Row(i + 2, f"+1202555{i:04d}") for i in range(10)]
    program(standin, people, talk=20 * 60)
    end = clock() + timedelta(hours=1)
    batch = policy_batch(
        service,
        people,
        window_start="00:00",
        window_end="23:59",
        reserved_concurrency=1,
        end_at=end,
    )
    run_until(engines(), clock, done(service, batch.id), step=60, max_ticks=500)
    witness = calls_to(standin)
    assert witness and all(at < end for _, at in witness)
    final = service.get(batch.id)
    assert final.counts[RecipientStatus.EXPIRED] == 10 - len(witness)
    assert final.counts[RecipientStatus.EXPIRED] >= 5
    assert final.status is BatchStatus.COMPLETED
    assert_counters_exact(service, batch.id)


def test_a_recipient_queued_before_its_local_hours_close_is_not_called_after(
    service, clock, standin, engines
):
    # 19:30 in Los Angeles; calls of 50 minutes on one line: the third would start after
    # 21:00 if the recipient waiting in the queue were not given back.
    clock.set(datetime(2026, 11, 23, 19, 30, tzinfo=LOS_ANGELES))
    people = [Row(i + 2, f"+1310555{i:04d}") for i in range(4)]
    program(standin, people, talk=50 * 60)
    batch = policy_batch(
        service,
        people,
        timezone="America/Los_Angeles",
        window_start="00:00",
        window_end="23:59",
        reserved_concurrency=1,
        local_hours="08:00-21:00",
    )
    run_until(engines(), clock, done(service, batch.id), step=120, max_ticks=1000)
    witness = calls_to(standin)
    assert len(witness) == 4
    for _, at in witness:
        local = at.astimezone(LOS_ANGELES).time()
        assert (
            local >= datetime(2026, 1, 1, 8, 0).time()
            and local < datetime(2026, 1, 1, 21, 0).time()
        ), at
    next_morning = [at for _, at in witness if at.astimezone(LOS_ANGELES).day == 24]
    assert next_morning and min(next_morning) < datetime(2026, 11, 24, 8, 5, tzinfo=LOS_ANGELES)
