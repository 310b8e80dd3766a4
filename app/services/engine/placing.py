"""Placing calls: claim recipients (transaction A), then ask the provider for each call
(transaction B), paced, within the tick's placing time budget.

No call is placed after a Pause, Cancel or Delete has committed: a call is first claimed
(transaction A: recipient QUEUED -> IN_PROGRESS and a CallAttempt row without a call id),
then placed inside transaction B, which locks the batch call row (FOR SHARE on
PostgreSQL; BEGIN IMMEDIATE on SQLite, so the supervisor's UPDATE waits), checks it is
still RUNNING, asks the provider and stores the call id before committing.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy.orm import Session, sessionmaker

from app.models.status import RecipientStatus
from app.models.window import CallingWindow
from app.services.engine import attempts, store
from app.services.engine.attempts import Claim
from app.services.engine.config import Clock, EngineConfig
from app.services.engine.health import ProviderHealth, maybe_placed
from app.services.engine.planning import CallPacer, RunningBatch, mask_number
from app.services.engine.state import TickReport
from app.services.lease import DialerLease, write_transaction
from app.services.settings import AppSettings
from app.services.telephony import (
    AgentSpec,
    CallRequest,
    FatalProviderError,
    RecipientProviderError,
    TelephonyProvider,
    TransientProviderError,
)

log = logging.getLogger(__name__)

RUNNING = store.RUNNING
QUEUED = RecipientStatus.QUEUED
PENDING = RecipientStatus.PENDING


def request_for(
    batch: RunningBatch, agent: AgentSpec, settings: AppSettings, row: Any
) -> CallRequest:
    """The provider request for one recipient row (None: a template, to check the
    settings). The recipient's name and number are variables too, unless a CSV column
    of that name says otherwise."""
    if row is None:
        variables: dict[str, str] = {}
        to = batch.from_number
    else:
        variables = {str(k): "" if v is None else str(v) for k, v in (row.variables or {}).items()}
        variables.setdefault("name", row.name or "")
        variables.setdefault("phone_number", row.phone_number)
        to = row.phone_number
    return CallRequest(
        to=to,
        from_=batch.from_number,
        agent=agent,
        variables=variables,
        ring_timeout=settings.ring_timeout_seconds,
        machine_detection=settings.answering_machine_detection,
        time_limit=settings.max_call_duration_seconds,
    )


class Placer:
    """Claims and places the calls the tick's plan shares out (see the module docstring)."""

    def __init__(
        self,
        sessions: sessionmaker[Session],
        *,
        clock: Clock,
        config: EngineConfig,
        pacer: CallPacer,
        health: ProviderHealth,
        lease: DialerLease | None,
        stop: threading.Event,
        sleep: Callable[[float], object] | None,
        on_fatal: Callable[[], None],
    ) -> None:
        self.sessions = sessions
        self.clock = clock
        self.config = config
        self.pacer = pacer
        self.health = health
        self.lease = lease
        self._stop = stop
        self._sleep = sleep
        #: Called after a fatal provider error (credentials fixed later are picked up).
        self._on_fatal = on_fatal
        #: When (monotonic) the last burst of placing that used up its time budget ended.
        self._burst_ended_at: float | None = None
        #: When (monotonic) the last claims were made: their placing budget counts from it.
        self._claimed_mono = time.monotonic()

    def claim_all(
        self,
        shares: Mapping[int, int],
        batches: Mapping[int, RunningBatch],
        provider_name: str,
        settings: AppSettings,
        now: datetime,
        report: TickReport,
    ) -> list[Claim]:
        """Transaction A for each batch call: QUEUED -> IN_PROGRESS (attempts + 1) and a
        CallAttempt row without a call id, committed before the provider is asked."""
        per_batch: dict[int, list[Claim]] = {}
        claimed_at = self.clock()
        self._claimed_mono = time.monotonic()
        for batch_id, count in shares.items():
            batch = batches[batch_id]
            try:
                agent = AgentSpec(batch.agent_kind, batch.agent_value)  # type: ignore[arg-type]
            except ValueError as exc:
                store.fail_batch(
                    self.sessions, batch_id, f"The agent cannot be used: {exc}", now, report
                )
                continue
            try:  # the call settings, once, before any recipient is claimed
                request_for(batch, agent, settings, None)
            except ValueError as exc:
                reason = f"The call settings cannot be used: {exc} Fix them in Settings."
                store.fail_batch(self.sessions, batch_id, reason, now, report)
                continue
            with write_transaction(self.sessions) as session:
                claims = store.claim(
                    session,
                    batch,
                    count,
                    provider_name,
                    claimed_at,
                    now,
                    lambda row, b=batch, a=agent: request_for(b, a, settings, row),
                )
            if claims:
                per_batch[batch_id] = claims
                report.touch(batch_id)
        # Interleave the batch calls, so a stop part-way shares what was placed.
        ordered: list[Claim] = []
        queues = [deque(c) for c in per_batch.values()]
        while queues:
            for q in list(queues):
                ordered.append(q.popleft())
                if not q:
                    queues.remove(q)
        return ordered

    def place_all(
        self,
        provider: TelephonyProvider,
        claims: Sequence[Claim],
        windows: Mapping[int, CallingWindow],
        report: TickReport,
    ) -> None:
        """Place the claimed calls in order. Before each: the engine is not stopping, still
        holds the lease, the pacing allows it, the tick's placing time budget is not used
        up, and the batch call's calling window is still open at that very moment
        (placing can outlast the instant the tick started at). Claims left over go back
        to the queue."""
        remaining = deque(claims)
        closed: set[int] = set()
        # The budget protects real responsiveness (the tick's other work, a waiting
        # Pause), so it is real time, whatever clock the engine is given: on QA's clock
        # running 300 times faster, one injected second would leave 3 ms to place in.
        deadline = self._claimed_mono + self.config.place_budget_seconds
        try:
            while remaining:
                if self._stop.is_set():
                    log.info("placing stopped: the engine is stopping")
                    break
                if self.lease is not None and not self.lease.hold(self.clock()).held:
                    log.warning("placing stopped: the dialer lease was lost")
                    break
                if not self._wait_for_pacing():
                    break
                if self._stop.is_set():
                    break
                if time.monotonic() >= deadline:
                    report.budget_used = True
                    break
                claim = remaining[0]
                if claim.batch_id in closed or not windows[claim.batch_id].is_open(self.clock()):
                    closed.add(claim.batch_id)
                    if all(c.batch_id in closed for c in remaining):
                        break
                    remaining.rotate(-1)  # the others may still be dialed
                    continue
                # Popped before it is placed: if placing it fails half-way, it is not
                # voided here but reconciled (its call may exist).
                remaining.popleft()
                stop = self._place_one(provider, claim, report, deadline)
                if stop:
                    log.info("placing stopped for this tick: %s", stop)
                    break
        finally:
            if remaining:
                store.void_claims(self.sessions, remaining, report)
            if report.budget_used:
                self._burst_ended_at = time.monotonic()

    def lock_gap(self) -> None:
        """After a burst of placing that used its whole budget, the write lock stays free
        for `lock_gap_seconds` before the next burst, even if ticks follow each other at
        once: a writer waiting for SQLite's lock (a Pause) retries within that time."""
        ended, self._burst_ended_at = self._burst_ended_at, None
        if ended is None or self._sleep is None:
            return
        rest = self.config.lock_gap_seconds - (time.monotonic() - ended)
        if rest > 0:
            self._sleep(rest)

    def _wait_for_pacing(self) -> bool:
        """True when a call may start now, after waiting for the pacing if the engine
        can wait (never past `pace_ahead_seconds` and a little slack)."""
        if self.pacer.available(self.clock()) > 0:
            return True
        frees = self.pacer.frees_at()
        if self._sleep is None or frees is None:
            return False
        wait = (frees - self.clock()).total_seconds()
        if wait > self.config.pace_ahead_seconds + 0.1:
            return False
        self._sleep(max(0.0, wait))
        return not self._stop.is_set() and self.pacer.available(self.clock()) > 0

    def _place_one(
        self,
        provider: TelephonyProvider,
        claim: Claim,
        report: TickReport,
        deadline: float | None = None,
    ) -> str | None:
        """Transaction B: lock the batch call, re-check, ask the provider, store the id.

        Returns why placing must stop for this tick (a transient provider error, the
        lease or the time budget lost while waiting for the lock), else None. Never
        raises out of the transaction for a provider error: what it records (a voided
        attempt, an attempt to reconcile) must be committed."""
        with write_transaction(self.sessions) as session:
            status = store.batch_status_shared(session, claim.batch_id)
            if not attempts.attempt_still_open(session, claim.attempt_id):
                return None  # deleted with its batch call, or reconciled by someone else
            if status != RUNNING:
                attempts.void(session, claim, PENDING)
                report.touch(claim.batch_id)
                log.info("batch call %s is %s: call not placed", claim.batch_id, status)
                return None
            if self.lease is not None:
                # The lease is renewed only every few seconds: another engine may have
                # taken it over meanwhile (this computer stalled, or its clock jumped).
                holder = store.lease_holder_shared(session, self.lease.name)
                if holder != self.lease.holder:
                    attempts.void(session, claim, QUEUED)
                    report.touch(claim.batch_id)
                    self.lease.forget()
                    log.warning("placing stopped: the dialer lease is held by %s", holder)
                    return "the dialer lease was taken over"
            if deadline is not None and time.monotonic() > deadline:
                # The lock took long to get: the request would be sent later than the
                # reconciliation of a crash allows for (see _reconcile_unknown).
                attempts.void(session, claim, QUEUED)
                report.touch(claim.batch_id)
                report.budget_used = True
                return "the tick's time for placing calls is used up"
            to = mask_number(claim.request.to)
            sent_at = self.clock()
            try:
                state = provider.place_call(claim.request)
            except RecipientProviderError as exc:
                self.pacer.record(self.clock())
                self.health.note_ok()
                attempts.record_refused(session, claim, exc.message, self.clock())
                report.touch(claim.batch_id)
                log.info("call to %s refused for this recipient: %s", to, exc.message)
                return None
            except FatalProviderError as exc:
                self.pacer.record(self.clock())
                attempts.void(session, claim, PENDING)
                store.fail_batch_in(session, claim.batch_id, exc.message, self.clock())
                self._on_fatal()  # fixed credentials are picked up by a Retry
                report.touch(claim.batch_id)
                log.error("batch call %s failed: %s", claim.batch_id, exc.message)
                return None
            except TransientProviderError as exc:
                self.pacer.record(self.clock())
                trouble = self.health.note_create_failed(exc, self.clock())
                if maybe_placed(exc):
                    # The provider may still create the call a while after the request
                    # failed: the reconciliation's settle time counts from now.
                    attempts.mark_outcome_unknown(
                        session, claim.attempt_id, exc.message, self.clock()
                    )
                    log.warning(
                        "call to %s: no answer from the provider (%s); it will be reconciled",
                        to,
                        exc.message,
                    )
                else:
                    attempts.void(session, claim, PENDING, next_try_at=trouble.next_try_at)
                    log.info("call to %s not placed (%s); retrying later", to, exc.message)
                report.touch(claim.batch_id)
                # A 429 slows placing, a 500 is reconciled: the others go on being placed.
                return exc.message if trouble.stop_placing else None
            except Exception as exc:  # a provider bug: the call may or may not exist
                self.pacer.record(self.clock())
                log.exception("unexpected provider failure placing a call to %s", to)
                attempts.mark_outcome_unknown(
                    session,
                    claim.attempt_id,
                    f"Unexpected error: {type(exc).__name__}",
                    self.clock(),
                )
                self.health.note_trouble(
                    TransientProviderError(f"Unexpected error ({type(exc).__name__})."),
                    self.clock(),
                )
                report.touch(claim.batch_id)
                return f"unexpected provider failure ({type(exc).__name__})"
            moment = self.clock()
            self.pacer.record(moment)
            self.health.note_placed(moment, state.queue_seconds)
            if state.created_at is not None:
                self.health.note_clock_offset(state.created_at - sent_at)
            attempts.store_call_id(session, claim, state, moment)
        report.placed += 1
        report.touch(claim.batch_id)
        log.info("call placed to %s for batch call %s (%s)", to, claim.batch_id, state.call_id)
        return None
