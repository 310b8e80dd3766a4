"""Placing at high rates (issue 8, the no-latency ceiling): a tick claims about what its
placing budget sends, marks are made in groups while the pacing is far from its limit,
and the answers' call ids are stored together; exactly once and exact counters kept."""

from __future__ import annotations

import logging
import threading
import time

from sqlalchemy import select

from app.models.schema import CallAttempt
from app.models.status import RecipientStatus
from app.services.engine import DialerEngine, EngineConfig, attempts, claiming
from app.services.telephony import REMOTE_SERVICE, CallRequest
from tests.services.engine_support import ScriptedProvider, assert_counters_exact, new_batch, rows

CONFIG = EngineConfig(poll_interval_seconds=1.0, unknown_settle_seconds=5.0, seed=7)


class InFlight:
    """Counts the create requests in flight at once (a provider hook)."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self.lock = threading.Lock()
        self.now = 0
        self.most = 0

    def __call__(self, request: CallRequest) -> None:
        with self.lock:
            self.now += 1
            self.most = max(self.most, self.now)
        time.sleep(self.seconds)
        with self.lock:
            self.now -= 1


def engine_for(sessions, provider, clock, **settings) -> DialerEngine:
    values = {"calls_per_second": 1000.0, "plan_concurrency": 40, "placement_concurrency": 4}
    values.update(settings)
    return DialerEngine(sessions, provider, clock=clock, config=CONFIG, settings_overrides=values)


def record_marks(monkeypatch) -> list[int]:
    """The size of every mark transaction (attempts marked for sending at once)."""
    sizes: list[int] = []
    real = attempts.mark_sending

    def mark_sending(session, attempt_ids, now):  # type: ignore[no-untyped-def]
        sizes.append(len(attempt_ids))
        return real(session, attempt_ids, now)

    monkeypatch.setattr(attempts, "mark_sending", mark_sending)
    return sizes


def record_claims(monkeypatch) -> list[int]:
    """How many recipients each claiming transaction asked for."""
    counts: list[int] = []
    real = claiming.claim

    def claim(session, batch, count, *args, **kwargs):  # type: ignore[no-untyped-def]
        counts.append(count)
        return real(session, batch, count, *args, **kwargs)

    monkeypatch.setattr(claiming, "claim", claim)
    return counts


def call_ids(sessions, batch_id: int) -> list[str | None]:
    with sessions() as session:
        return list(
            session.scalars(
                select(CallAttempt.provider_call_id).where(CallAttempt.batch_call_id == batch_id)
            )
        )


def test_marks_are_made_in_groups_while_the_pacing_is_far_from_its_limit(
    service, sessions, clock, monkeypatch
):
    """1,000 calls/s allowed, four sending threads: each mark is one transaction for the
    requests the free threads take (the pacing's mark-ahead, bounded by the threads)."""
    batch = new_batch(service, 40, reserved=40)
    hook = InFlight(0.02)
    provider = ScriptedProvider(clock, on_place=hook, capabilities=REMOTE_SERVICE)
    marks = record_marks(monkeypatch)
    engine = engine_for(sessions, provider, clock)
    ticks = 0
    while len(provider.placed_to()) < 40 and ticks < 20:
        engine.tick()
        ticks += 1
        clock.advance(1)
    assert sorted(provider.placed_to()) == sorted(r.phone_number for r in rows(40))
    assert hook.most == 4  # never more requests in flight than sending threads
    assert max(marks) == 4 and sum(marks) == 40
    assert len(marks) <= 40 // 4 + ticks  # a small group only at the end of a tick
    assert None not in call_ids(sessions, batch.id)
    assert service.get(batch.id).counts[RecipientStatus.IN_PROGRESS] == 40
    assert_counters_exact(service, batch.id)


def test_marks_follow_the_free_threads_when_the_pacing_is_near_its_limit(
    service, sessions, clock, monkeypatch
):
    """12 calls/s with four threads: nothing is marked ahead (a marked request would
    hold its place in the pacing while it waits for a thread)."""
    batch = new_batch(service, 12, reserved=12)
    hook = InFlight(0.05)
    provider = ScriptedProvider(clock, on_place=hook, capabilities=REMOTE_SERVICE)
    marks = record_marks(monkeypatch)
    engine_for(sessions, provider, clock, calls_per_second=12.0).tick()
    assert len(provider.placed_to()) == 12 and hook.most == 4
    assert max(marks) <= 4
    assert_counters_exact(service, batch.id)


def test_a_tick_claims_about_what_its_placing_budget_sent_then_more(
    service, sessions, clock, monkeypatch
):
    """Requests of 0.15 s, one at a time: the first tick claims 60 and sends about
    seven in its second of placing, the rest given back; the next claims about what was
    sent, not 60 again. Once every claim is sent in time, a tick claims more, soon."""
    slow = [True]

    def answer(request: CallRequest) -> None:
        if slow[0]:
            time.sleep(0.15)

    batch = new_batch(service, 80, reserved=60)
    provider = ScriptedProvider(clock, on_place=answer)
    claims = record_claims(monkeypatch)
    engine = engine_for(
        sessions, provider, clock, calls_per_second=100.0, plan_concurrency=60,
        placement_concurrency=2,
    )  # fmt: skip
    report = engine.tick()
    first = report.placed
    assert claims == [60] and report.budget_used and 0 < first < 30
    snapshot = service.get(batch.id)
    assert snapshot.counts[RecipientStatus.IN_PROGRESS] == first
    assert snapshot.counts[RecipientStatus.QUEUED] == 60 - first
    assert_counters_exact(service, batch.id)
    clock.advance(1)
    engine.tick()
    assert claims[1] == max(2, first + first // 5)
    slow[0] = False
    clock.advance(1)
    report = engine.tick()
    assert report.placed == claims[2] and not report.budget_used
    assert report.next_tick_in == CONFIG.lock_gap_seconds  # more to place: soon
    clock.advance(1)
    engine.tick()
    assert claims[3] > claims[2]
    assert None not in call_ids(sessions, batch.id)
    assert_counters_exact(service, batch.id)


def test_call_ids_stored_together_skip_a_batch_call_deleted_meanwhile(
    service, sessions, clock, caplog
):
    """A batch call is deleted while its calls are being placed: the answers stored
    together with another batch call's lose nothing of the other one."""
    caplog.set_level(logging.WARNING)
    doomed = new_batch(service, rows(8, start=0), name="Doomed", reserved=8)
    kept = new_batch(service, rows(8, start=100), name="Kept", reserved=8)
    deleted = threading.Event()

    def delete_once(request: CallRequest) -> None:
        if request.to == rows(1, start=0)[0].phone_number and not deleted.is_set():
            deleted.set()
            service.delete(doomed.id)  # waits for the calls being placed (about 1 s)
        time.sleep(0.01)

    provider = ScriptedProvider(clock, on_place=delete_once, capabilities=REMOTE_SERVICE)
    engine = engine_for(sessions, provider, clock, plan_concurrency=16)
    for _ in range(5):
        engine.tick()
        clock.advance(1)
    assert deleted.is_set() and service.find(doomed.id) is None
    ids = call_ids(sessions, kept.id)
    assert len(ids) == 8 and None not in ids
    kept_numbers = {r.phone_number for r in rows(8, start=100)}
    assert sorted(n for n in provider.placed_to() if n in kept_numbers) == sorted(kept_numbers)
    assert service.get(kept.id).counts[RecipientStatus.QUEUED] == 0
    assert_counters_exact(service, kept.id)
    assert "placed for a batch call deleted meanwhile" in caplog.text
