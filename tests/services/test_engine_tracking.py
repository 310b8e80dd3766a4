"""Tracking that scales: many live calls are tracked with a few list requests a round,
calls the lists miss are asked one by one, and status callbacks replace most polling."""

from __future__ import annotations

import socket
from collections import Counter
from collections.abc import Iterator
from datetime import datetime

import pytest

from app.models.status import BatchStatus, RecipientStatus
from app.services.engine import DialerEngine, EngineConfig
from app.services.status_callbacks import StatusCallbackReceiver
from app.services.telephony import CallState
from app.services.twilio_provider import TwilioProvider
from app.standin.twilio_server import TwilioStandin
from tests.services.engine_support import (
    STANDIN_FROM,
    assert_counters_exact,
    finished,
    new_batch,
    rows,
    run_until,
)
from tests.standin.oai_validation import twilio_validator

CONFIG = EngineConfig(poll_interval_seconds=3.0, unknown_settle_seconds=5.0, seed=3)


@pytest.fixture
def standin(clock) -> Iterator[TwilioStandin]:
    with TwilioStandin(clock=clock, seed=8) as server:
        yield server
        validator = twilio_validator()
        for entry in server.requests:
            validator.assert_request_valid(entry)


def tracking_requests(standin: TwilioStandin) -> Counter[str]:
    """GET requests on calls: 'list' (the Calls list) and 'fetch' (one call)."""
    kinds: Counter[str] = Counter()
    for entry in standin.requests:
        if entry.method == "GET" and entry.path.endswith("/Calls.json"):
            kinds["list"] += 1
        elif entry.method == "GET" and "/Calls/" in entry.path:
            kinds["fetch"] += 1
    return kinds


def creates(standin: TwilioStandin) -> int:
    return sum(1 for r in standin.requests if r.method == "POST" and r.path.endswith("/Calls.json"))


def engine_for(sessions, provider, clock, **kwargs) -> DialerEngine:
    return DialerEngine(
        sessions,
        provider,
        clock=clock,
        config=kwargs.pop("config", CONFIG),
        settings_overrides={
            "calls_per_second": 50.0,
            "plan_concurrency": 300,
            "pickup_interval_seconds": 60.0,
        },
        **kwargs,
    )


def test_many_live_calls_are_tracked_with_a_few_list_requests(service, sessions, clock, standin):
    people = rows(200)
    for person in people:
        standin.program(person.phone_number, ring_seconds=5, talk_seconds=40)
    batch = new_batch(service, people, from_number=STANDIN_FROM, reserved=300)
    provider = TwilioProvider(standin.account_sid, standin.auth_token, base_url=standin.base_url)
    engine = engine_for(sessions, provider, clock)
    try:
        run_until(engine, clock, finished(service, batch.id), step=1.0, max_ticks=600)
    finally:
        engine.close()
        provider.close()

    kinds = tracking_requests(standin)
    calls = creates(standin)
    assert calls == 200 and standin.max_concurrent_in_progress() == 200
    assert (kinds["list"] + kinds["fetch"]) / calls <= 0.5  # one request a call: 15 a call
    assert kinds["list"] >= 2
    assert service.get(batch.id).status is BatchStatus.COMPLETED
    assert service.get(batch.id).counts[RecipientStatus.COMPLETED] == 200
    assert_counters_exact(service, batch.id)


def test_calls_placed_a_few_at_a_time_are_still_tracked_in_bulk(service, sessions, clock, standin):
    """Calls placed evenly (a few per tick, as the pacing spreads them) fall due a few at a
    time: they are listed together with the calls half an interval from due, not asked
    about one by one (one request a call a poll interval)."""
    people = rows(120)
    for person in people:
        standin.program(person.phone_number, ring_seconds=5, talk_seconds=60)
    batch = new_batch(service, people, from_number=STANDIN_FROM, reserved=300)
    provider = TwilioProvider(standin.account_sid, standin.auth_token, base_url=standin.base_url)
    engine = DialerEngine(
        sessions,
        provider,
        clock=clock,
        config=CONFIG,
        settings_overrides={
            "calls_per_second": 5.0,
            "plan_concurrency": 300,
            "pickup_interval_seconds": 60.0,
        },
    )
    try:
        run_until(engine, clock, finished(service, batch.id), step=0.5, max_ticks=2000)
    finally:
        engine.close()
        provider.close()

    kinds = tracking_requests(standin)
    assert creates(standin) == 120
    assert (kinds["list"] + kinds["fetch"]) / 120 <= 2  # one at a time: about 20 a call
    assert service.get(batch.id).counts[RecipientStatus.COMPLETED] == 120
    assert_counters_exact(service, batch.id)


class ListsMissSome:
    """A Twilio provider whose lists leave out every other call (a lagging list)."""

    def __init__(self, provider: TwilioProvider) -> None:
        self._provider = provider

    def __getattr__(self, name: str) -> object:
        return getattr(self._provider, name)

    def calls_since(self, since: datetime) -> list[CallState]:
        listed = self._provider.calls_since(since)
        return [state for index, state in enumerate(listed) if index % 2]


def test_calls_the_lists_miss_are_asked_one_by_one(service, sessions, clock, standin):
    people = rows(40)
    for person in people:
        standin.program(person.phone_number, outcome="busy", ring_seconds=8)
    batch = new_batch(service, people, from_number=STANDIN_FROM, reserved=300)
    twilio = TwilioProvider(standin.account_sid, standin.auth_token, base_url=standin.base_url)
    engine = engine_for(sessions, ListsMissSome(twilio), clock)
    try:
        run_until(engine, clock, finished(service, batch.id), step=1.0, max_ticks=300)
    finally:
        engine.close()
        twilio.close()

    assert tracking_requests(standin)["fetch"] >= 20
    assert service.get(batch.id).counts[RecipientStatus.NO_ANSWER] == 40
    assert_counters_exact(service, batch.id)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def test_status_callbacks_settle_calls_without_polling_each_one(service, sessions, clock, standin):
    people = rows(12)
    for index, person in enumerate(people):
        outcome = "no-answer" if index % 3 == 0 else "completed"
        standin.program(person.phone_number, outcome=outcome, ring_seconds=5, talk_seconds=20)
    batch = new_batch(service, people, from_number=STANDIN_FROM, reserved=300)
    port = free_port()
    url = f"http://127.0.0.1:{port}/twilio/status"
    with StatusCallbackReceiver(url, standin.auth_token, listen=("127.0.0.1", port)) as receiver:
        provider = TwilioProvider(
            standin.account_sid,
            standin.auth_token,
            base_url=standin.base_url,
            status_callback_url=url,
        )
        engine = engine_for(sessions, provider, clock, status_callbacks=receiver)
        try:
            run_until(
                engine,
                clock,
                finished(service, batch.id),
                step=1.0,
                max_ticks=300,
                each=lambda _report: standin.deliver_callbacks(),
            )
        finally:
            engine.close()
            provider.close()

    counts = service.get(batch.id).counts
    assert (counts[RecipientStatus.COMPLETED], counts[RecipientStatus.NO_ANSWER]) == (8, 4)
    assert receiver.received >= 12 and receiver.rejected == 0
    # Each call was asked about once at most (right after it was placed), not every 3 s.
    assert tracking_requests(standin)["fetch"] <= 12
    assert_counters_exact(service, batch.id)
