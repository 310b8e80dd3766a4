"""Step 3 of placing: the requests built, and what the provider answered recorded.

`request_for` builds a recipient's create request; `Sent` is what became of one marked
request; `AnswerRecorder` records the answers (the call ids stored together, in one
transaction for many) and the errors (a refusal, a fatal error failing the batch call,
a transient one voided or left to reconciliation).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy.orm import Session, sessionmaker

from app.models.status import RecipientStatus
from app.services.engine import attempts, claiming, store
from app.services.engine.attempts import Claim
from app.services.engine.config import Clock
from app.services.engine.health import ProviderHealth, maybe_placed, rate_limited
from app.services.engine.planning import CallPacer, RunningBatch, mask_number
from app.services.engine.state import TickReport
from app.services.lease import write_transaction
from app.services.settings import AppSettings
from app.services.telephony import (
    AgentSpec,
    CallRequest,
    CallState,
    FatalProviderError,
    RecipientProviderError,
    TransientProviderError,
)

log = logging.getLogger(__name__)

PENDING = RecipientStatus.PENDING
#: The call ids of answered requests are stored together, in one transaction, once this
#: many are in or the oldest has waited this long (and always before placing ends): a
#: crash meanwhile leaves attempts without call ids, which reconciliation settles.
STORE_EVERY_ANSWERS = 50
STORE_EVERY_SECONDS = 0.05


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


@dataclass
class Sent:
    """What became of one marked request (from a sending thread, or inline)."""

    claim: Claim
    #: The pacer's reservation for it.
    slot: int
    state: CallState | None = None
    error: BaseException | None = None
    #: Why it was not sent at all (the attempt is then voided).
    not_sent: str | None = None
    #: Not sent for a reason of its own (its window closed, its batch call failed, its
    #: mark is too old): the others go on.
    others_go_on: bool = False
    sent_at: datetime | None = None
    #: When its answer (or error) came: the moment it is recorded at, however much later
    #: the tick gets to it.
    answered_at: datetime | None = None


class AnswerRecorder:
    """Records what the provider answered the Placer's requests (step 3)."""

    def __init__(
        self,
        sessions: sessionmaker[Session],
        *,
        clock: Clock,
        pacer: CallPacer,
        health: ProviderHealth,
        halted: set[int],
        on_fatal: Callable[[], None],
    ) -> None:
        self.sessions = sessions
        self.clock = clock
        self.pacer = pacer
        self.health = health
        #: The batch calls that failed while placing (shared with the Placer, whose
        #: sending threads read it just before each request).
        self._halted = halted
        #: Called after a fatal provider error (credentials fixed later are picked up).
        self._on_fatal = on_fatal
        #: Answers whose call ids are not stored yet, and when (monotonic) the first came.
        self._answers: list[tuple[Claim, CallState, datetime]] = []
        self._answers_since = 0.0
        #: Requests sent (answered or failed) in this round of placing.
        self.sent = 0

    def record(self, sent: Sent, report: TickReport) -> str | None:
        """Step 3: store what the provider answered. Returns why placing must stop for
        this tick (a transient provider error), else None."""
        claim = sent.claim
        moment = sent.answered_at or self.clock()
        to = mask_number(claim.request.to)
        if sent.not_sent is None:
            self.sent += 1
        else:
            self.pacer.cancel(sent.slot)
            claiming.void_claims(self.sessions, [claim], report)
            log.info("call to %s not placed: %s", to, sent.not_sent)
            return None if sent.others_go_on else sent.not_sent
        if sent.state is not None:
            state = sent.state
            self.health.note_placed(moment, state.queue_seconds)
            if state.created_at is not None and sent.sent_at is not None:
                self.health.note_clock_offset(state.created_at - sent.sent_at)
            if not self._answers:
                self._answers_since = time.monotonic()
            self._answers.append((claim, state, moment))  # stored by `store`
            report.placed += 1
            report.touch(claim.batch_id)
            log.info("call placed to %s for batch call %s (%s)", to, claim.batch_id, state.call_id)
            return None
        error = sent.error
        if isinstance(error, TransientProviderError) and rate_limited(error) and sent.sent_at:
            self.pacer.release(sent.sent_at)  # never processed: no call counts for it
        return self._record_error(claim, sent.error, moment, report)

    def store(self, report: TickReport, *, when_due: bool = False) -> None:
        """Step 3 for the answers in: their call ids, all in one write transaction. With
        `when_due`, only once enough are in or the oldest has waited long enough."""
        answers = self._answers
        if not answers or (
            when_due
            and len(answers) < STORE_EVERY_ANSWERS
            and time.monotonic() - self._answers_since < STORE_EVERY_SECONDS
        ):
            return
        self._answers = []
        with write_transaction(self.sessions) as session:
            stored = attempts.store_call_ids(session, answers)
        for (_, state, _), ok in zip(answers, stored, strict=True):
            if not ok:  # deleted with its batch call meanwhile
                log.warning("call %s placed for a batch call deleted meanwhile", state.call_id)

    def _record_error(
        self, claim: Claim, exc: BaseException | None, moment: datetime, report: TickReport
    ) -> str | None:
        to = mask_number(claim.request.to)
        report.touch(claim.batch_id)
        if isinstance(exc, RecipientProviderError):
            self.health.note_ok()
            with write_transaction(self.sessions) as session:
                attempts.record_refused(session, claim, exc.message, moment)
            log.info("call to %s refused for this recipient: %s", to, exc.message)
            return None
        if isinstance(exc, FatalProviderError):
            with write_transaction(self.sessions) as session:
                attempts.void(session, claim, PENDING)
                store.fail_batch_in(session, claim.batch_id, exc.message, moment)
            self._halted.add(claim.batch_id)
            self._on_fatal()  # fixed credentials are picked up by a Retry
            log.error("batch call %s failed: %s", claim.batch_id, exc.message)
            return None
        if isinstance(exc, TransientProviderError):
            trouble = self.health.note_create_failed(exc, moment)
            with write_transaction(self.sessions) as session:
                if maybe_placed(exc):
                    # The provider may still create the call a while after the request
                    # failed: the reconciliation's settle time counts from now.
                    answered = exc.http_status is not None  # a 5xx: looked up soon
                    attempts.mark_outcome_unknown(
                        session, claim.attempt_id, exc.message, moment, answered=answered
                    )
                    log.warning(
                        "call to %s: no answer from the provider (%s); it will be reconciled",
                        to,
                        exc.message,
                    )
                else:
                    attempts.void(session, claim, PENDING, next_try_at=trouble.next_try_at)
                    log.info("call to %s not placed (%s); retrying later", to, exc.message)
            # A 429 slows placing, a 500 is reconciled: the others go on being placed.
            return exc.message if trouble.stop_placing else None
        # A provider bug: the call may or may not exist.
        name = type(exc).__name__
        log.error("unexpected provider failure placing a call to %s", to, exc_info=exc)
        with write_transaction(self.sessions) as session:
            attempts.mark_outcome_unknown(
                session, claim.attempt_id, f"Unexpected error: {name}", moment
            )
        self.health.note_trouble(TransientProviderError(f"Unexpected error ({name})."), moment)
        return f"unexpected provider failure ({name})"
