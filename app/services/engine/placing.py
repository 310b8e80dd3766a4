"""Placing calls: claim recipients, then send their create requests, several at once,
paced, within the tick's placing time budget, and never while holding a database lock.

The protocol (app.services.placements) is three short transactions per call:

1. claim (transaction A): QUEUED -> IN_PROGRESS and a call attempt without a call id,
   committed only while this engine's lease fence is current;
2. mark: just before the request, `requested_at` is set only while the batch call is
   RUNNING; the request is then sent within SEND_WINDOW_SECONDS of that commit, and only
   while the lease is still this engine's by its own clocks (`DialerLease.may_send`),
   or not at all;
3. store: the call id after the answer (exactly once: reconciliation settles an attempt
   whose answer was lost).

At high rates the transactions are shared: a tick claims about what its placing budget
was seen to send (claims not sent are given back), marks are made for several requests
at once, and the answers in are stored together, one transaction for many.

Claiming is in `claiming`; the requests are built and their answers recorded (step 3)
in `answers`.

So a Pause, Cancel or Delete never waits for the provider, and a holder frozen (SIGSTOP)
and then woken sends nothing: its marks are too old and its lease has run out.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from datetime import datetime

from sqlalchemy.orm import Session, sessionmaker

from app.models.policy import CallingSchedule
from app.models.status import RecipientStatus
from app.services.engine import attempts, claiming, store
from app.services.engine.answers import AnswerRecorder, Sent, request_for
from app.services.engine.attempts import Claim
from app.services.engine.config import Clock, EngineConfig
from app.services.engine.health import ProviderHealth
from app.services.engine.planning import CallPacer, RunningBatch
from app.services.engine.state import TickReport
from app.services.lease import DialerLease, write_transaction
from app.services.placements import SEND_WINDOW_SECONDS
from app.services.settings import AppSettings
from app.services.telephony import AgentSpec, PreparesThreads, TelephonyProvider

log = logging.getLogger(__name__)

RUNNING = store.RUNNING
QUEUED = RecipientStatus.QUEUED
PENDING = RecipientStatus.PENDING
#: Claims are marked for sending in groups: those the pacing sends within this long.
MARK_AHEAD_SECONDS = 0.1
#: On closing, the answers of the requests still in flight are waited for this long.
CLOSE_WAIT_SECONDS = 1.0


def _prepare_thread(provider: TelephonyProvider) -> None:
    """A sending thread's set-up, before its first request (see PreparesThreads)."""
    if isinstance(provider, PreparesThreads):
        try:
            provider.prepare_thread()
        except Exception:  # its first request sets it up instead (and reports any trouble)
            log.warning("a sending thread could not be set up in advance", exc_info=True)


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
        #: Create requests in flight at once at most (the placement_concurrency setting).
        self.concurrency = 1
        #: When (monotonic) the last claims were made: their placing budget counts from it.
        self._claimed_mono = time.monotonic()
        self._pool: ThreadPoolExecutor | None = None
        self._pool_size = 0
        self._pool_provider: TelephonyProvider | None = None
        #: Requests sent and not recorded yet (with a real clock, across ticks).
        self._in_flight: dict[Future[Sent], Claim] = {}
        #: While placing: why no further request is to be sent (a provider error that
        #: holds everything back), and the batch calls that failed meanwhile. Read by
        #: the sending threads just before each request.
        self._halted_all: str | None = None
        self._halted: set[int] = set()
        #: Step 3: records the answers (a fatal error adds its batch call to `_halted`).
        self._recorder = AnswerRecorder(
            sessions,
            clock=clock,
            pacer=pacer,
            health=health,
            halted=self._halted,
            on_fatal=on_fatal,
        )
        #: How many requests one tick's placing budget has been seen to send (None: no
        #: limit seen yet): claiming many more would only give them back unplaced.
        self._sendable: int | None = None

    def claim_limit(self, most: int) -> int:
        """How many calls to claim this tick, at most `most`: a fifth more than the
        placing budget was last seen to send, so the claims not sent are few."""
        return most if self._sendable is None else min(most, self._sendable)

    def close(self) -> None:
        """Records the answers of the requests in flight that come within
        CLOSE_WAIT_SECONDS; never waits longer (the others' attempts are reconciled)."""
        if self._in_flight:
            wait(list(self._in_flight), timeout=CLOSE_WAIT_SECONDS)
            try:
                self.collect(TickReport())
            except Exception:  # a closing engine must not raise: reconciled at the next start
                log.warning("the answers of the last calls placed could not be recorded")
        self._in_flight.clear()
        if self._pool is not None:
            self._pool.shutdown(wait=False, cancel_futures=True)
            self._pool = None

    # ------------------------------------------------------------------ claiming
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
        CallAttempt row without a call id, committed before the provider is asked, and
        only while this engine's lease fence is current."""
        per_batch: dict[int, list[Claim]] = {}
        claimed_at = self.clock()
        self._claimed_mono = time.monotonic()
        fence = self._fence()
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
            try:
                with write_transaction(self.sessions) as session:
                    claims = claiming.claim(
                        session,
                        batch,
                        count,
                        provider_name,
                        claimed_at,
                        now,
                        lambda row, b=batch, a=agent: request_for(b, a, settings, row),
                        settings.max_attempts_per_number_24h,
                        fence=fence,
                    )
            except claiming.LeaseLost as lost:
                assert self.lease is not None
                self.lease.forget()
                log.warning("claiming stopped: the dialer lease is held by %s", lost.holder)
                break
            if claims:
                per_batch[batch_id] = claims
                report.touch(batch_id)
        # Interleave the batch calls, so that each gets its turn (and a stop part-way
        # shares what was placed).
        ordered: list[Claim] = []
        queues = [deque(c) for c in per_batch.values()]
        while queues:
            for q in list(queues):
                ordered.append(q.popleft())
                if not q:
                    queues.remove(q)
        return ordered

    def _fence(self) -> claiming.Fence | None:
        lease = self.lease
        if lease is None:
            return None
        return claiming.Fence(lease.name, lease.holder, lease.fence)

    # ------------------------------------------------------------------ placing
    def place_all(
        self,
        provider: TelephonyProvider,
        claims: Sequence[Claim],
        windows: Mapping[int, CallingSchedule],
        report: TickReport,
    ) -> None:
        """Send the claimed calls' requests in order, up to `concurrency` at once. Before
        each: the engine is not stopping, still holds the lease, the pacing allows it, the
        tick's placing time budget is not used up, and the batch call's calling window is
        still open at that very moment. Claims left over go back to the queue.

        An engine that can wait in real time (given a `sleep`) hands each request to a
        sender at its evenly spread moment, and leaves the requests still in flight when
        its claims are all sent: their answers are recorded by the next tick (`collect`),
        so the next tick's requests start while they are answered. Without one (a fake
        clock), the tick waits for every answer."""
        pending = deque(claims)
        #: Marked claims waiting for their moment to be sent, with the mark's moment.
        ready: deque[tuple[Claim, float]] = deque()
        closed: set[int] = set()
        in_flight = self._in_flight
        carry = self._sleep is not None
        # Simulated calls are answered in this process at once: threads add nothing.
        inline = provider.capabilities.simulated or self.concurrency <= 1
        # The budget protects real responsiveness (the tick's other work), so it is real
        # time, whatever clock the engine is given: on QA's clock running 300 times
        # faster, one injected second would leave 3 ms to place in.
        deadline = self._claimed_mono + self.config.place_budget_seconds
        self._halted_all = None
        self._halted.clear()
        self._recorder.sent = 0
        stop = self.collect(report)
        try:
            while pending or ready or (in_flight and not carry):
                reason = self._record_done([f for f in in_flight if f.done()], report)
                if reason is not None and stop is None:
                    stop = self._halted_all = reason
                    log.info("placing stopped for this tick: %s", reason)
                if stop is None:
                    stop = self._why_stop(deadline, report)
                    if stop is not None and (pending or ready):
                        log.info("placing stopped for this tick: %s", stop)
                if stop is not None and carry:
                    break  # the requests in flight are recorded by the next tick
                if (
                    stop is None
                    and (pending or ready)
                    and (inline or len(in_flight) < self.concurrency)
                ):
                    now = self.clock()
                    # Inline, one at a time: each is marked just before its own request.
                    free = 1 if inline else self.concurrency - len(in_flight)
                    room = min(free, self.pacer.due(now))
                    if room > 0:
                        # A group is marked in one transaction: up to a pool of sending
                        # threads' worth (inline: just the next one).
                        group = 1 if inline else self.concurrency
                        if not ready and not self._mark_next(
                            pending, ready, windows, closed, group, report
                        ):
                            stop = "the calling windows closed"
                            continue
                        for _ in range(min(room, len(ready))):
                            claim, marked = ready.popleft()
                            slot = self.pacer.reserve(self.clock())
                            if inline:
                                sent = self._send(provider, claim, slot, marked, windows)
                                stop = stop or self._recorder.record(sent, report)
                                self._halted_all = stop
                                self._recorder.store(report, when_due=True)
                            else:
                                future = self._executor(provider).submit(
                                    self._send, provider, claim, slot, marked, windows
                                )
                                in_flight[future] = claim
                        continue
                    due = self.pacer.next_due(now)
                    if (due is not None and self._sleep is not None) or not in_flight:
                        # Wait for the next start's moment (answers meanwhile are
                        # recorded after it: the pacing, not a sender, is what waits).
                        self._recorder.store(report)  # before waiting for the pacing
                        if not self._wait_for_pacing(now, due):
                            stop = "waiting for the pacing"
                        continue
                if not in_flight:
                    break
                wait(list(in_flight), timeout=0.05, return_when=FIRST_COMPLETED)
                self._recorder.store(report, when_due=True)
        finally:
            if not carry:
                # Requests already sent are waited for (each bounded by the provider's own
                # timeout): their call ids must be stored.
                self._record_done(list(in_flight), report)
            try:
                self._recorder.store(report)
            except Exception:  # their attempts stay without call ids: reconciled later
                log.exception("the call ids of answered requests could not be stored")
            # Claims never sent are given back.
            left = list(pending) + [claim for claim, _ in ready]
            if left:
                claiming.void_claims(self.sessions, left, report)
            self._learn_sendable(len(claims), len(left), report)

    def collect(self, report: TickReport) -> str | None:
        """Record the answers that came since the last tick. Returns why placing must
        stop for this tick (a transient provider error), else None."""
        done = [future for future in self._in_flight if future.done()]
        stop = self._record_done(done, report)
        self._recorder.store(report)  # their call ids, in one transaction
        return stop

    def _record_done(self, done: Iterable[Future[Sent]], report: TickReport) -> str | None:
        """Record these requests' answers (waiting for any not answered yet)."""
        stop: str | None = None
        for future in done:
            self._in_flight.pop(future, None)
            try:
                reason = self._recorder.record(future.result(), report)
            except Exception:  # the pool was shut down under it: reconciled later
                log.exception("a call's answer could not be recorded")
                continue
            stop = stop or reason
        return stop

    def _mark_next(
        self,
        pending: deque[Claim],
        ready: deque[tuple[Claim, float]],
        windows: Mapping[int, CallingSchedule],
        closed: set[int],
        most: int,
        report: TickReport,
    ) -> bool:
        """Mark the next claims for sending: as many as the pacing sends within
        MARK_AHEAD_SECONDS, at most `most` (one transaction for them; each is still sent within
        SEND_WINDOW_SECONDS of it). False when every calling window left has closed."""
        while not ready and pending:
            count = min(most, max(1, math.ceil(self.pacer.rate * MARK_AHEAD_SECONDS)))
            batch = self._next_open(pending, windows, closed, count)
            if not batch:
                return False
            ready.extend(self._mark(batch, report))
        return True

    def _why_stop(self, deadline: float, report: TickReport) -> str | None:
        if self._stop.is_set():
            return "the engine is stopping"
        if self.lease is not None and not self.lease.hold(self.clock()).held:
            return "the dialer lease was lost"
        if time.monotonic() >= deadline:
            report.budget_used = True
            return "the tick's time for placing calls is used up"
        return None

    def _next_open(
        self,
        pending: deque[Claim],
        windows: Mapping[int, CallingSchedule],
        closed: set[int],
        count: int,
    ) -> list[Claim]:
        """Up to `count` next claims whose calling window is open at this very moment
        (placing can outlast the instant the tick started at); the others stay."""
        now = self.clock()
        taken: list[Claim] = []
        skipped: list[Claim] = []
        while pending and len(taken) < count:
            claim = pending.popleft()
            if claim.batch_id in closed or not windows[claim.batch_id].is_open(now):
                closed.add(claim.batch_id)
                skipped.append(claim)
            else:
                taken.append(claim)
        pending.extendleft(reversed(skipped))
        return taken

    def _executor(self, provider: TelephonyProvider) -> ThreadPoolExecutor:
        if (
            self._pool is None
            or self._pool_size != self.concurrency
            or self._pool_provider is not provider  # its threads set up for another
        ):
            if self._pool is not None:
                self._pool.shutdown(wait=False)
            self._pool = ThreadPoolExecutor(
                self.concurrency,
                thread_name_prefix="engineSend",
                initializer=_prepare_thread,
                initargs=(provider,),
            )
            self._pool_size = self.concurrency
            self._pool_provider = provider
        return self._pool

    def _mark(self, claims: Sequence[Claim], report: TickReport) -> list[tuple[Claim, float]]:
        """Step 2: mark the claims for sending, only those whose batch call is RUNNING;
        the others are given back (PENDING: their batch call was stopped). Returns the
        marked claims with the monotonic moment of the mark."""
        with write_transaction(self.sessions) as session:
            claims = claiming.stop_do_not_call(session, claims, self.clock, report)
            marked = attempts.mark_sending(session, [c.attempt_id for c in claims], self.clock())
            for claim in claims:
                if claim.attempt_id in marked:
                    continue
                status = store.batch_status_shared(session, claim.batch_id)
                if status is not None and attempts.void(
                    session, claim, QUEUED if status == RUNNING else PENDING
                ):
                    report.touch(claim.batch_id)
                    log.info("batch call %s is %s: call not placed", claim.batch_id, status)
        moment = time.monotonic()
        return [(claim, moment) for claim in claims if claim.attempt_id in marked]

    def _send(
        self,
        provider: TelephonyProvider,
        claim: Claim,
        slot: int,
        marked: float,
        windows: Mapping[int, CallingSchedule],
    ) -> Sent:
        """Send one request (in a sending thread, or inline), or say why not: the last
        checks happen here, just before the request, with no database lock held."""
        if not windows[claim.batch_id].is_open(self.clock()):
            return Sent(claim, slot, not_sent="its calling window closed", others_go_on=True)
        if claim.batch_id in self._halted:
            return Sent(claim, slot, not_sent="its batch call failed", others_go_on=True)
        if self._halted_all is not None:
            return Sent(claim, slot, not_sent=self._halted_all)
        if self._stop.is_set():
            return Sent(claim, slot, not_sent="the engine is stopping")
        if time.monotonic() - marked > SEND_WINDOW_SECONDS:  # this process stalled
            return Sent(claim, slot, not_sent="its mark is too old", others_go_on=True)
        if self.lease is not None and not self.lease.may_send(self.clock()):
            return Sent(claim, slot, not_sent="the dialer lease ran out")
        sent_at = self.clock()
        self.pacer.start(slot, sent_at)  # it counts for the pacing from now
        try:
            state = provider.place_call(claim.request)
        except Exception as exc:  # recorded by the tick's thread
            return Sent(claim, slot, error=exc, sent_at=sent_at, answered_at=self.clock())
        return Sent(claim, slot, state=state, sent_at=sent_at, answered_at=self.clock())

    def _wait_for_pacing(self, now: datetime, due: datetime | None) -> bool:
        """True when a call may start now, after waiting for the pacing if the engine
        can wait (never past `pace_ahead_seconds` and a little slack)."""
        if self.pacer.due(now) > 0:
            return True
        if self._sleep is None or due is None:
            return False
        wait_for = (due - now).total_seconds()
        if wait_for > self.config.pace_ahead_seconds + 0.1:
            return False
        self._sleep(max(0.0, wait_for))
        return not self._stop.is_set() and self.pacer.due(self.clock()) > 0

    # ------------------------------------------------------------------ answers
    def _learn_sendable(self, claimed: int, left: int, report: TickReport) -> None:
        """After placing: when the time budget ran out with claims left, claim about what
        was sent next time; when every claim of a limited round was sent, claim more,
        and soon (there is more to place)."""
        sent = self._recorder.sent
        if left and report.budget_used and sent:
            self._sendable = max(self.concurrency, sent + sent // 5)
        elif not left and self._sendable is not None and claimed >= self._sendable:
            grown = self._sendable + max(self.concurrency, self._sendable // 2)
            self._sendable = None if grown >= self.config.max_placements_per_tick else grown
            report.next_tick_in = self.config.lock_gap_seconds
