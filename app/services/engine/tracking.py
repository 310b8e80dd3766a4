"""Tracking calls in progress: ask the provider about the open calls (a bounded pool,
a time budget, backoff on rate limits) and record the outcomes; a call unresolved long
past its limits is settled FAILED.

With many open calls and a provider that lists calls in bulk (`BulkCallTracking`), a
round is a few paged list requests (calls started since the oldest open one, and the
calls still queued) rather than one request per call: 1,000 live calls cost a handful
of requests a round. With status callbacks (a server Twilio can reach), the provider
reports how calls end by itself; polling then only runs, slowly, as the safety net."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Protocol

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from app.models.schema import CallAttempt
from app.services.engine import attempts, polling
from app.services.engine.attempts import NO_FINAL_STATUS, OpenAttempt
from app.services.engine.config import Clock, EngineConfig
from app.services.engine.health import ProviderHealth, stops_polling
from app.services.engine.planning import call_deadline
from app.services.engine.state import TickReport
from app.services.lease import write_transaction
from app.services.settings import AppSettings
from app.services.telephony import (
    BulkCallTracking,
    CallOutcome,
    CallState,
    ProviderError,
    RecipientProviderError,
    TelephonyProvider,
    TransientProviderError,
)

log = logging.getLogger(__name__)

Answer = CallState | ProviderError | None
#: A bulk listing starts this long before the oldest call it covers: the provider's
#: start times have whole seconds, and a call starts ringing after it was requested.
_BULK_MARGIN = timedelta(seconds=60)


class CallbackSource(Protocol):
    """Status callbacks received (`StatusCallbackReceiver`): each call's latest state."""

    def take(self) -> dict[str, CallState]: ...


def attempt_deadline(attempt: OpenAttempt, settings: AppSettings, config: EngineConfig) -> datetime:
    """When this call must have ended (ring timeout + maximum duration + a margin)."""
    return call_deadline(
        attempt.started,
        settings.ring_timeout_seconds,
        settings.max_call_duration_seconds,
        config.settle_margin_seconds,
    )


@dataclass
class Polls:
    """Polls started by one tick: answers come inline (a simulated provider) or from the pool."""

    attempts: list[OpenAttempt]
    stop: threading.Event
    answers: list[Answer] = field(default_factory=list)
    futures: list[Future[Answer]] = field(default_factory=list)
    #: A bulk round: one job that lists the calls, then asks about the rest one by one.
    bulk: Future[list[Answer]] | None = None

    @property
    def in_flight(self) -> bool:
        """The answers come from other threads (placing may go on meanwhile)."""
        return bool(self.futures) or self.bulk is not None


def sort_answers(
    results: list[tuple[OpenAttempt, CallState | ProviderError]],
    now: datetime,
    deadline_of: Callable[[OpenAttempt], datetime],
    give_up_after: timedelta,
) -> tuple[list[tuple[OpenAttempt, CallState | None, str | None]], dict[str | None, list[int]]]:
    """The answers of a round of polls: (calls to settle, open calls by raw status).

    An ended call is settled with its outcome; one still open past its deadline is settled
    FAILED (no final status); a call the provider has no record of (or cannot be asked
    about long past its deadline) too; the others stay open."""
    still_open: dict[str | None, list[int]] = {}
    finals: list[tuple[OpenAttempt, CallState | None, str | None]] = []
    for attempt, outcome in results:
        if isinstance(outcome, CallState):
            if outcome.outcome is not CallOutcome.IN_PROGRESS:
                finals.append((attempt, outcome, None))
            elif now >= deadline_of(attempt):
                finals.append((attempt, outcome, None))  # settled FAILED: no final status
            else:
                still_open.setdefault(outcome.raw_status[:16], []).append(attempt.id)
        elif isinstance(outcome, RecipientProviderError) or (
            now >= deadline_of(attempt) + give_up_after
        ):
            # The provider has no record of the call (or none for far too long).
            finals.append((attempt, None, f"{NO_FINAL_STATUS} ({outcome.message})"))
        else:
            still_open.setdefault(None, []).append(attempt.id)
    return finals, still_open


def fetch(provider: TelephonyProvider, attempt: OpenAttempt, stop: threading.Event) -> Answer:
    """One poll (in a fetch thread): the call's state, or the error; None when the round
    was stopped (rate limited) before this call's turn."""
    if stop.is_set():
        return None
    try:
        return provider.fetch_call(attempt.call_id)
    except ProviderError as exc:
        if stops_polling(exc):
            stop.set()
        return exc
    except Exception as exc:  # a provider bug: keep tracking, do not guess
        log.exception("unexpected provider failure checking a call")
        return TransientProviderError(f"Unexpected error ({type(exc).__name__}).")


class Tracker:
    """Polls the open calls and records what the provider says about them."""

    def __init__(
        self,
        sessions: sessionmaker[Session],
        *,
        clock: Clock,
        config: EngineConfig,
        health: ProviderHealth,
        stop: threading.Event,
        callbacks: CallbackSource | None = None,
    ) -> None:
        self.sessions = sessions
        self.clock = clock
        self.config = config
        self.health = health
        self.callbacks = callbacks
        self._stop = stop
        self._pool: ThreadPoolExecutor | None = None
        #: Provider requests made for tracking (list pages count once per list call).
        self.requests_made = 0
        self._count_lock = threading.Lock()

    def close(self) -> None:
        """Never waits for a poll still in flight: stopping must stay quick."""
        if self._pool is not None:
            self._pool.shutdown(wait=False, cancel_futures=True)
            self._pool = None

    def start_polls(self, provider: TelephonyProvider, now: datetime) -> Polls | None:
        """Start polling the open calls that are due (bounded requests in flight: the
        fetch pool's threads); `finish_polls` waits for and records the answers."""
        if self.health.polls_paused(now):
            return None
        interval = self.config.poll_interval_seconds
        if self.callbacks is not None:  # the provider tells; polls only catch what is lost
            interval = max(interval, self.config.callback_poll_interval_seconds)
        cutoff = now - timedelta(seconds=interval)
        bulk = isinstance(provider, BulkCallTracking) and not provider.capabilities.simulated
        limit = self.config.bulk_tracking_max_calls if bulk else self.config.max_polls_per_tick
        # Calls placed evenly (the pacing spreads them) fall due a few at a time: a bulk
        # round answers for the calls half an interval from due as well, when enough.
        early = now - timedelta(seconds=interval / 2) if bulk else None
        due, soon = polling.due_polls(self.sessions, now, cutoff, limit, early=early)
        if not due:
            return None
        if bulk and len(due) < self.config.bulk_tracking_min_calls <= len(soon):
            due = soon
        if bulk and len(due) >= self.config.bulk_tracking_min_calls:
            polls = Polls(due, threading.Event())
            polls.bulk = self._executor().submit(
                self._track_in_bulk, provider, due, now, polls.stop
            )
            return polls
        due = due[: self.config.max_polls_per_tick]
        polls = Polls(due, threading.Event())
        workers = max(1, self.config.fetch_workers)
        if workers == 1 or len(due) == 1 or provider.capabilities.simulated:
            polls.answers = [self._fetch(provider, a, polls.stop) for a in due]
        else:
            pool = self._executor()
            polls.futures = [pool.submit(self._fetch, provider, a, polls.stop) for a in due]
        return polls

    def _executor(self) -> ThreadPoolExecutor:
        if self._pool is None:
            workers = max(2, self.config.fetch_workers)
            self._pool = ThreadPoolExecutor(workers, thread_name_prefix="engineFetch")
        return self._pool

    def _fetch(
        self, provider: TelephonyProvider, attempt: OpenAttempt, stop: threading.Event
    ) -> Answer:
        answer = fetch(provider, attempt, stop)
        if answer is not None:
            self._count(1)
        return answer

    def _count(self, requests: int) -> None:
        with self._count_lock:
            self.requests_made += requests

    def _track_in_bulk(
        self,
        provider: TelephonyProvider,
        due: Sequence[OpenAttempt],
        now: datetime,
        stop: threading.Event,
    ) -> list[Answer]:
        """One bulk round (in a fetch thread): list the calls started since the oldest
        recent open call, and the queued ones; ask about the others one by one."""
        assert isinstance(provider, BulkCallTracking)
        recent = now - timedelta(seconds=self.config.bulk_tracking_window_seconds)
        covered = [a for a in due if a.started >= recent]
        listed: dict[str, CallState] = {}
        if covered:
            offset = self.health.clock_offset or timedelta(0)
            since = min(a.started for a in covered) + offset - _BULK_MARGIN
            try:
                listed = {state.call_id: state for state in provider.calls_since(since)}
            except ProviderError as exc:
                self._count(1)
                if stops_polling(exc):
                    stop.set()
                return [exc for _ in due]
            except Exception as exc:  # a provider bug: keep tracking, do not guess
                log.exception("unexpected provider failure listing calls")
                error = TransientProviderError(f"Unexpected error ({type(exc).__name__}).")
                return [error for _ in due]
            self._count(2)
        rest = [a for a in due if a.call_id not in listed]
        if len(rest) > 1:
            pool = self._executor()
            futures = [pool.submit(self._fetch, provider, a, stop) for a in rest]
            asked = {a.id: future.result() for a, future in zip(rest, futures, strict=True)}
        else:
            asked = {a.id: self._fetch(provider, a, stop) for a in rest}
        return [listed[a.call_id] if a.call_id in listed else asked.get(a.id) for a in due]

    def finish_polls(
        self, polls: Polls, settings: AppSettings, now: datetime, report: TickReport
    ) -> None:
        """Record the answers: outcomes settled, open calls' poll time; a rate limit (or a
        provider that cannot be reached) stopped the round and backs polling off."""
        answers = polls.answers
        if polls.bulk is not None:
            answers = self._bulk_answers(polls)
        elif polls.futures:
            # A slow provider must not hold the tick: past the budget the polls not yet
            # started are skipped (asked again next tick); those in flight are awaited,
            # unless the engine is stopping (their answers are then simply not used).
            late = set(polls.futures)
            until = time.monotonic() + self.config.poll_budget_seconds
            while late and not self._stop.is_set():
                left = until - time.monotonic()
                if left <= 0:
                    break
                _, late = wait(late, timeout=min(left, 0.1))
            if late:
                polls.stop.set()
            if self._stop.is_set():
                answers = [f.result() if f.done() else None for f in polls.futures]
            else:
                answers = [future.result() for future in polls.futures]
        results = [(a, o) for a, o in zip(polls.attempts, answers, strict=True) if o is not None]
        if any(isinstance(outcome, CallState) for _, outcome in results):
            self.health.note_polls_answered(now)
        stopped = next(
            (o for _, o in results if not isinstance(o, CallState) and stops_polling(o)), None
        )
        if stopped is not None:
            self.health.note_polls_stopped(stopped, self.clock())
        finals, still_open = sort_answers(
            results,
            now,
            lambda attempt: attempt_deadline(attempt, settings, self.config),
            # A provider that cannot be asked at all gets this much longer past the deadline.
            timedelta(seconds=self.config.unreachable_grace_seconds),
        )
        if not finals and not still_open:
            return
        with write_transaction(self.sessions) as session:
            for attempt in attempts.settle_many(session, finals, now):
                report.settled += 1
                report.touch(attempt.batch_id)
            polling.record_polled(session, still_open, now)

    def _bulk_answers(self, polls: Polls) -> list[Answer]:
        """The bulk round's answers, waited for within the poll budget (none if late)."""
        assert polls.bulk is not None
        until = time.monotonic() + self.config.poll_budget_seconds
        while not polls.bulk.done() and not self._stop.is_set():
            left = until - time.monotonic()
            if left <= 0:
                break
            wait([polls.bulk], timeout=min(left, 0.1))
        if not polls.bulk.done():
            polls.stop.set()  # asked again next round
            return [None for _ in polls.attempts]
        return polls.bulk.result()

    def take_callbacks(self, now: datetime, report: TickReport) -> None:
        """Record what status callbacks reported: ended calls settled, others' status."""
        if self.callbacks is None:
            return
        states = self.callbacks.take()
        if not states:
            return
        with self.sessions() as session:
            rows = session.execute(
                select(
                    CallAttempt.id,
                    CallAttempt.recipient_id,
                    CallAttempt.batch_call_id,
                    CallAttempt.attempt_number,
                    CallAttempt.provider_call_id,
                    CallAttempt.requested_at,
                    CallAttempt.created_at,
                ).where(
                    CallAttempt.provider_call_id.in_(list(states)),
                    CallAttempt.outcome.is_(None),
                )
            ).all()
        finals: list[tuple[OpenAttempt, CallState | None, str | None]] = []
        still_open: dict[str | None, list[int]] = {}
        for row in rows:
            started = attempts.aware(row[5]) or attempts.aware(row[6]) or now
            attempt = OpenAttempt(row[0], row[1], row[2], row[3], row[4], started)
            state = states[attempt.call_id]
            if state.outcome is CallOutcome.IN_PROGRESS:
                still_open.setdefault(state.raw_status[:16], []).append(attempt.id)
            else:
                finals.append((attempt, state, None))
        if not finals and not still_open:
            return
        with write_transaction(self.sessions) as session:
            for attempt in attempts.settle_many(session, finals, now):
                report.settled += 1
                report.touch(attempt.batch_id)
            polling.record_polled(session, still_open, now)
