"""Provider health's placing rate: 429s slow dialing and it recovers gradually, Retry-After
holds placing, Twilio's queue_time caps the rate at the account's real rate."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from app.services.engine.config import EngineConfig
from app.services.engine.health import PlacingRate, ProviderHealth
from app.services.telephony import TransientProviderError

T0 = datetime(2026, 11, 23, 14, 0, tzinfo=UTC)


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def too_many(retry_after: float | None = None) -> TransientProviderError:
    return TransientProviderError(
        "Twilio is limiting the request rate (HTTP 429).",
        http_status=429,
        code=20429,
        retry_after=retry_after,
    )


def test_a_429_lowers_the_rate_once_a_second_and_it_climbs_back_gradually():
    rate = PlacingRate()
    assert rate.current(10, at(0)) == 10
    for n in range(10):  # ten 429s within a second are one piece of evidence
        rate.rate_limited(at(n * 0.001), None)
    assert rate.current(10, at(0.01)) == pytest.approx(9.0, abs=0.02)
    assert "limiting the request rate" in (rate.reason(at(0.01)) or "")
    assert rate.current(10, at(0.5)) == pytest.approx(9.5, abs=0.02)  # a tenth of 10 a second
    for second in range(1, 4):  # 429s in each of three seconds: lowered once in each
        before = rate.current(10, at(second + 0.5))
        rate.rate_limited(at(second + 0.5), None)
        lowered = rate.current(10, at(second + 0.5))
        assert lowered == pytest.approx(before * 0.9)
        rate.rate_limited(at(second + 0.6), None)
        assert rate.current(10, at(second + 0.6)) > lowered
    assert rate.current(10, at(15)) == 10  # fully back
    assert rate.reason(at(15)) is None


def test_stray_429s_barely_slow_dialing():
    """20 % of creates answered 429 at 10 calls/s: the rate stays near the setting."""
    rate = PlacingRate()
    now = 0.0
    for second in range(60):
        for n in range(10):
            now = second + n / 10
            current = rate.current(10, at(now))
            if n in (3, 7):
                rate.rate_limited(at(now), None)
    assert current >= 8.5


def test_retry_after_holds_placing_until_then():
    health = ProviderHealth(EngineConfig(seed=1))

    trouble = health.note_create_failed(too_many(retry_after=3), at(0))

    assert trouble.stop_placing and trouble.next_try_at == at(3)
    assert health.placing_paused(at(2.9)) and not health.placing_paused(at(3))
    assert not health.unreachable(at(1))  # a rate limit is not an outage


def test_a_429_without_retry_after_does_not_stop_the_others():
    health = ProviderHealth(EngineConfig(seed=1))

    trouble = health.note_create_failed(too_many(), at(0))

    assert not trouble.stop_placing and not health.placing_paused(at(0))
    assert trouble.next_try_at == at(1)  # that recipient, a second later


def test_a_500_is_reconciled_and_only_repeated_ones_back_everyone_off():
    health = ProviderHealth(EngineConfig(seed=1))
    server_error = TransientProviderError("Twilio answered HTTP 500.", http_status=500)

    first = health.note_create_failed(server_error, at(0))
    second = health.note_create_failed(server_error, at(0.1))
    health.note_placed(at(0.2), None)  # a success in between: not an outage
    third = health.note_create_failed(server_error, at(0.3))
    fourth = health.note_create_failed(server_error, at(0.4))
    fifth = health.note_create_failed(server_error, at(0.5))

    assert not any(t.stop_placing for t in (first, second, third, fourth))
    assert fifth.stop_placing and health.unreachable(at(0.6))


def test_queue_time_caps_the_rate_at_the_accounts_real_rate():
    rate = PlacingRate()
    # Placed at 10 a second; Twilio dials 2 a second: each call waits 0.4 s longer.
    for n in range(12):
        rate.created(at(n / 10), 2.5 + n * 0.4)
    reason = rate.reason(at(1.2)) or ""

    assert 1.8 <= rate.current(10, at(1.2)) <= 2.0  # just under the real rate
    assert rate.paused_until(at(1.2)) is not None  # until the queue has drained
    assert "Twilio queues calls beyond this account's real rate (about 2 calls/s)" in reason
    # Calls dialed at once again: the cap lifts slowly (the account may have been raised).
    rate.created(at(30), 0.3)
    soon, later = rate.current(10, at(31)), rate.current(10, at(40))
    assert 1.9 < soon < later < 10


def test_a_429_on_a_lookup_slows_placing_but_blocks_nothing():
    health = ProviderHealth(EngineConfig(seed=1))

    health.note_rate_limited(too_many(), at(0))

    assert not health.blocked(at(0)) and not health.placing_paused(at(0))
    assert health.placing_rate(10, at(0)) < 10


def test_queue_time_answers_in_any_order_measure_the_same_rate_and_drain_moment():
    """Ten creates in flight at once, answered in whatever order their threads finish:
    the account's rate and the moment Twilio's queue drains do not depend on it (they
    did: answered last-first, no rate was measured and placing resumed 4.5 s early)."""
    queued = [3.0 + 0.5 * n for n in range(10)]  # Twilio dials 2 a second
    results = set()
    for order in (queued, queued[::-1], queued[5:] + queued[:5]):
        rate = PlacingRate()
        for seconds in order:
            rate.created(at(0), seconds)
        assert rate.account_rate is not None and rate.queue_until is not None
        results.add((round(rate.account_rate, 6), rate.queue_until))
    assert results == {(1.9, at(5.5))}


def test_a_429_on_the_polls_pauses_them_a_second_however_many_come_in_a_row():
    health = ProviderHealth(EngineConfig(seed=1))
    for n in range(6):  # six rounds in a row answered 429
        health.note_polls_stopped(too_many(), at(n))
        assert health.polls_paused(at(n + 0.9)) and not health.polls_paused(at(n + 1))
    health.note_polls_stopped(too_many(retry_after=5), at(10))
    assert health.polls_paused(at(14.9)) and not health.polls_paused(at(15))
    assert health.placing.limited_rate is not None  # placing slows a little too
    assert not health.unreachable(at(10))
