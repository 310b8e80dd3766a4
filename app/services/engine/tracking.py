"""Tracking calls in progress: poll the provider for each open call (a bounded pool,
a time budget, backoff on rate limits) and record the outcomes; a call unresolved long
past its limits is settled FAILED."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sqlalchemy.orm import Session, sessionmaker

from app.services.engine import attempts
from app.services.engine.attempts import NO_FINAL_STATUS, OpenAttempt
from app.services.engine.config import Clock, EngineConfig
from app.services.engine.health import ProviderHealth, stops_polling
from app.services.engine.planning import call_deadline
from app.services.engine.state import TickReport
from app.services.lease import write_transaction
from app.services.settings import AppSettings
from app.services.telephony import (
    CallOutcome,
    CallState,
    ProviderError,
    RecipientProviderError,
    TelephonyProvider,
    TransientProviderError,
)

log = logging.getLogger(__name__)

Answer = CallState | ProviderError | None


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
    ) -> None:
        self.sessions = sessions
        self.clock = clock
        self.config = config
        self.health = health
        self._stop = stop
        self._pool: ThreadPoolExecutor | None = None

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
        cutoff = now - timedelta(seconds=self.config.poll_interval_seconds)
        due = attempts.due_polls(self.sessions, now, cutoff, self.config.max_polls_per_tick)
        if not due:
            return None
        polls = Polls(due, threading.Event())
        workers = max(1, self.config.fetch_workers)
        if workers == 1 or len(due) == 1 or provider.capabilities.simulated:
            polls.answers = [fetch(provider, a, polls.stop) for a in due]
        else:
            if self._pool is None:
                self._pool = ThreadPoolExecutor(workers, thread_name_prefix="engineFetch")
            polls.futures = [self._pool.submit(fetch, provider, a, polls.stop) for a in due]
        return polls

    def finish_polls(
        self, polls: Polls, settings: AppSettings, now: datetime, report: TickReport
    ) -> None:
        """Record the answers: outcomes settled, open calls' poll time; a rate limit (or a
        provider that cannot be reached) stopped the round and backs polling off."""
        answers = polls.answers
        if polls.futures:
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
            attempts.record_polled(session, still_open, now)
