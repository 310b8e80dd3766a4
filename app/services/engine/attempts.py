"""The storage of call attempts: claims, call ids and outcomes (polls are in `polling`,
the attempts to reconcile in `unresolved`, the retry policy in `retries`). Each function
runs inside the caller's transaction unless it takes `sessions` (then it opens its own).

A call attempt is committed before its request is sent (a CallAttempt row without a
call id) and its call id after the answer; an attempt whose call id is still unknown
later is reconciled with what the provider reports.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, cast

from sqlalchemy import (
    String,
    Table,
    bindparam,
    delete,
    exists,
    func,
    select,
    update,
)
from sqlalchemy.orm import Session

from app.models.recipients import move_recipients
from app.models.schema import BatchCall, CallAttempt, Recipient, UTCDateTime
from app.models.status import BatchStatus, RecipientStatus
from app.services.engine.retries import RETRIED, RETRY_AT, retry_kind, retry_policies
from app.services.telephony import CallOutcome, CallRequest, CallState, status_message

log = logging.getLogger(__name__)

IN_PROGRESS = RecipientStatus.IN_PROGRESS

_B = cast(Table, BatchCall.__table__)
_R = cast(Table, Recipient.__table__)
_A = cast(Table, CallAttempt.__table__)


def _when(name: str) -> Any:
    return bindparam(name, type_=UTCDateTime())


NO_FINAL_STATUS = "No final status from the provider: the call was not reported as ended in time."


@dataclass(frozen=True)
class Claim:
    """A recipient claimed for a call: its attempt is committed, its request not sent."""

    attempt_id: int
    recipient_id: int
    batch_id: int
    attempt_number: int
    request: CallRequest
    #: When transaction A claimed it (its attempt's created_at): its request is sent
    #: within `place_budget_seconds` of this or not at all.
    claimed_at: datetime


@dataclass(frozen=True)
class OpenAttempt:
    """A call attempt without an outcome yet."""

    id: int
    recipient_id: int
    batch_id: int
    attempt_number: int
    call_id: str
    started: datetime

    @classmethod
    def of(cls, claim: Claim, call_id: str, started: datetime) -> OpenAttempt:
        return cls(
            claim.attempt_id,
            claim.recipient_id,
            claim.batch_id,
            claim.attempt_number,
            call_id,
            started,
        )


def aware(value: datetime | None) -> datetime | None:
    """Raw SQL results (coalesce) may come back naive or as text on SQLite."""
    if value is None:
        return None
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    if value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    return value


#: provider_status of an attempt whose create was answered with a server error (5xx):
#: the provider processed it, so a call it made shows in its Calls list within moments
#: (not a request that may still be in flight): it is looked up soon.
SERVER_ERROR = "server error"
OPEN_ATTEMPT_LOCKED = (
    select(_A.c.id)
    .where(
        _A.c.id == bindparam("p_attempt"),
        _A.c.provider_call_id.is_(None),
        _A.c.outcome.is_(None),
    )
    .with_for_update()
)
#: Step 2 of placing: only attempts still unresolved and unsent, of a RUNNING batch call.
MARK_SENDING = (
    update(_A)
    .where(
        _A.c.id.in_(bindparam("p_ids", expanding=True)),
        _A.c.provider_call_id.is_(None),
        _A.c.outcome.is_(None),
        _A.c.requested_at.is_(None),
        exists().where(_B.c.id == _A.c.batch_call_id, _B.c.status == BatchStatus.RUNNING.value),
    )
    .values(requested_at=_when("p_now"))
    .returning(_A.c.id)
)
STORE_CALL_ID = (
    update(_A)
    .where(_A.c.id == bindparam("p_attempt"))
    .values(
        provider_call_id=bindparam("p_call_id"),
        provider_status=bindparam("p_raw_status"),
        requested_at=_when("p_moment"),
        last_polled_at=_when("p_moment"),
    )
)
STORE_RECIPIENT_CALL_ID = (
    update(_R)
    .where(_R.c.id == bindparam("p_recipient"))
    .values(provider_call_id=bindparam("p_call_id"), requested_at=_when("p_moment"))
)
#: The attempts among `p_ids` still there (not deleted with their batch call), locked.
ATTEMPTS_PRESENT = (
    select(_A.c.id).where(_A.c.id.in_(bindparam("p_ids", expanding=True))).with_for_update()
)
#: Voiding claims: their attempts go, only while they have neither call id nor outcome.
VOID_ATTEMPTS = (
    delete(_A)
    .where(
        _A.c.id.in_(bindparam("p_ids", expanding=True)),
        _A.c.provider_call_id.is_(None),
        _A.c.outcome.is_(None),
    )
    .returning(_A.c.id)
)
SETTLE_ATTEMPT = (
    update(_A)
    .where(_A.c.id == bindparam("p_attempt"), _A.c.outcome.is_(None))
    .values(
        outcome=bindparam("p_outcome"),
        error=bindparam("p_error"),
        last_polled_at=_when("p_now"),
        provider_status=func.coalesce(
            bindparam("p_raw_status", type_=String()), _A.c.provider_status
        ),
        answered_at=_when("p_answered_at"),
        ended_at=_when("p_ended_at"),
        duration_seconds=bindparam("p_duration"),
        answered_by=bindparam("p_answered_by"),
    )
)
STILL_OPEN = select(_A.c.id).where(
    _A.c.id.in_(bindparam("p_ids", expanding=True)), _A.c.outcome.is_(None)
)
RECIPIENT_DETAILS = (
    update(_R)
    .where(
        _R.c.id == bindparam("p_recipient"),
        _R.c.status == bindparam("p_status"),
        _R.c.attempts == bindparam("p_attempt_number"),
    )
    .values(
        answered_at=_when("p_answered_at"),
        ended_at=_when("p_ended_at"),
        duration_seconds=bindparam("p_duration"),
        answered_by=bindparam("p_answered_by"),
        last_error=bindparam("p_error"),
        provider_call_id=bindparam("p_call_id"),
        requested_at=_when("p_requested_at"),
    )
)


def attempt_still_open(session: Session, attempt_id: int) -> bool:
    """The attempt has neither call id nor outcome (row locked FOR UPDATE)."""
    found = session.connection().execute(OPEN_ATTEMPT_LOCKED, {"p_attempt": attempt_id}).scalar()
    return found is not None


def mark_sending(session: Session, attempt_ids: Sequence[int], now: datetime) -> set[int]:
    """Step 2 of placing (app.services.placements): the attempts whose batch call is still
    RUNNING get their `requested_at`; returns their ids. The others are not to be sent."""
    if not attempt_ids:
        return set()
    rows = session.connection().execute(MARK_SENDING, {"p_ids": list(attempt_ids), "p_now": now})
    return {row[0] for row in rows}


def store_call_id(session: Session, claim_: Claim, state: CallState, moment: datetime) -> bool:
    """The provider's call id on the attempt and its recipient (after the request);
    False if the attempt is gone (deleted with its batch call)."""
    return store_call_ids(session, [(claim_, state, moment)])[0]


def store_call_ids(
    session: Session, answers: Sequence[tuple[Claim, CallState, datetime]]
) -> list[bool]:
    """`store_call_id` for many answers in one go: the attempts still there are locked,
    then each statement runs once as an executemany. Returns, for each answer, False if
    its attempt is gone (deleted with its batch call)."""
    if not answers:
        return []
    connection = session.connection()
    present = set(
        connection.execute(
            ATTEMPTS_PRESENT, {"p_ids": [claim_.attempt_id for claim_, _, _ in answers]}
        ).scalars()
    )
    stored = [(c, state, moment) for c, state, moment in answers if c.attempt_id in present]
    if stored:
        connection.execute(
            STORE_CALL_ID,
            [
                {
                    "p_attempt": claim_.attempt_id,
                    "p_call_id": state.call_id,
                    "p_raw_status": state.raw_status[:16],
                    "p_moment": moment,
                }
                for claim_, state, moment in stored
            ],
        )
        connection.execute(
            STORE_RECIPIENT_CALL_ID,
            [
                {"p_recipient": c.recipient_id, "p_call_id": state.call_id, "p_moment": moment}
                for c, state, moment in stored
            ],
        )
    for claim_, state, moment in stored:  # already over when it was answered (rare)
        if state.outcome is not CallOutcome.IN_PROGRESS:
            settle(session, OpenAttempt.of(claim_, state.call_id, moment), state, moment)
    return [claim_.attempt_id in present for claim_, _, _ in answers]


def record_refused(session: Session, claim_: Claim, message: str, moment: datetime) -> None:
    """The provider refused the call for this recipient: attempt and recipient FAILED."""
    session.execute(
        update(CallAttempt)
        .where(CallAttempt.id == claim_.attempt_id)
        .values(outcome=RecipientStatus.FAILED.value, error=message, ended_at=moment)
    )
    finish_recipient(
        session,
        claim_.batch_id,
        claim_.recipient_id,
        claim_.attempt_number,
        RecipientStatus.FAILED,
        {"last_error": message, "ended_at": moment},
    )


def mark_outcome_unknown(
    session: Session, attempt_id: int, error: str, moment: datetime, *, answered: bool = False
) -> None:
    """The request may have created a call: reconciliation settles it, its settle time
    counting from `moment`. `answered`: the provider answered it with a server error
    (SERVER_ERROR: looked up sooner than a request whose answer never came)."""
    session.execute(
        update(CallAttempt)
        .where(CallAttempt.id == attempt_id)
        .values(
            provider_status=SERVER_ERROR if answered else "unknown",
            error=error,
            requested_at=moment,
        )
    )


def void(
    session: Session,
    attempt: Claim | OpenAttempt,
    back_to: RecipientStatus,
    next_try_at: datetime | None = None,
) -> bool:
    """Undo an attempt that placed no call: the recipient is not counted as called."""
    attempt_id = attempt.attempt_id if isinstance(attempt, Claim) else attempt.id
    removed = session.execute(
        delete(CallAttempt).where(
            CallAttempt.id == attempt_id,
            CallAttempt.provider_call_id.is_(None),
            CallAttempt.outcome.is_(None),
        )
    )
    if removed.rowcount != 1:  # type: ignore[attr-defined]
        return False
    move_recipients(
        session,
        attempt.batch_id,
        [IN_PROGRESS],
        back_to,
        where=[Recipient.id == attempt.recipient_id, Recipient.attempts == attempt.attempt_number],
        values={"attempts": Recipient.attempts - 1, "next_try_at": next_try_at},
    )
    return True


def void_many(session: Session, claims: Sequence[Claim], back_to: RecipientStatus) -> list[Claim]:
    """`void` for many claims at once, all going `back_to` (one DELETE, then one move of
    the recipients per batch call and attempt number); returns the claims voided."""
    if not claims:
        return []
    removed = set(
        session.connection()
        .execute(VOID_ATTEMPTS, {"p_ids": [claim_.attempt_id for claim_ in claims]})
        .scalars()
    )
    voided = [claim_ for claim_ in claims if claim_.attempt_id in removed]
    groups: dict[tuple[int, int], list[int]] = {}
    for claim_ in voided:
        groups.setdefault((claim_.batch_id, claim_.attempt_number), []).append(claim_.recipient_id)
    for (batch_id, number), recipient_ids in groups.items():
        move_recipients(
            session,
            batch_id,
            [IN_PROGRESS],
            back_to,
            where=[Recipient.id.in_(recipient_ids), Recipient.attempts == number],
            values={"attempts": Recipient.attempts - 1, "next_try_at": None},
        )
    return voided


def finish_recipient(
    session: Session,
    batch_id: int,
    recipient_id: int,
    attempt_number: int,
    outcome: RecipientStatus,
    values: dict[str, Any],
) -> bool:
    """IN_PROGRESS -> a terminal status, only for this attempt (never overwrites)."""
    return (
        move_recipients(
            session,
            batch_id,
            [IN_PROGRESS],
            outcome,
            where=[Recipient.id == recipient_id, Recipient.attempts == attempt_number],
            values=values,
        )
        == 1
    )


def settle(
    session: Session,
    attempt: OpenAttempt,
    state: CallState | None,
    now: datetime,
    *,
    error: str | None = None,
) -> bool:
    """Record a final outcome on the attempt and its recipient; False if the attempt
    already had one (a late or duplicated update never overwrites)."""
    return bool(settle_many(session, [(attempt, state, error)], now))


def settle_many(
    session: Session,
    items: Sequence[tuple[OpenAttempt, CallState | None, str | None]],
    now: datetime,
) -> list[OpenAttempt]:
    """Final outcomes for many attempts in one go: the attempts still open get theirs
    (an UPDATE ... WHERE outcome IS NULL each, as one executemany), their recipients
    move IN_PROGRESS -> the outcome through move_recipients (grouped), then get the
    call's details. Returns the attempts settled now."""
    if not items:
        return []
    connection = session.connection()
    still_open = set(
        connection.execute(STILL_OPEN, {"p_ids": [attempt.id for attempt, _, _ in items]}).scalars()
    )
    attempt_rows: list[dict[str, Any]] = []
    recipient_rows: list[dict[str, Any]] = []
    retry_rows: list[dict[str, Any]] = []
    groups: dict[tuple[int, RecipientStatus, int], list[int]] = {}
    settled: list[OpenAttempt] = []
    policies = retry_policies(session, {attempt.batch_id for attempt, _, _ in items})
    for attempt, state, error in items:
        if attempt.id not in still_open:
            continue
        still_open.discard(attempt.id)
        if state is not None and state.outcome is not CallOutcome.IN_PROGRESS:
            outcome = RecipientStatus(state.outcome.value)
            message = state.error_message or status_message(state.raw_status)
            if outcome is RecipientStatus.COMPLETED:
                message = None
            details = {
                "p_answered_at": state.answered_at,
                "p_ended_at": state.ended_at or now,
                "p_duration": state.duration_seconds,
                "p_answered_by": state.answered_by[:32] if state.answered_by else None,
            }
        else:
            outcome = RecipientStatus.FAILED
            message = error or NO_FINAL_STATUS
            details = {
                "p_answered_at": None,
                "p_ended_at": now,
                "p_duration": None,
                "p_answered_by": None,
            }
        attempt_rows.append(
            {
                "p_attempt": attempt.id,
                "p_outcome": outcome.value,
                "p_error": message,
                "p_now": now,
                "p_raw_status": state.raw_status[:16] if state is not None else None,
                **details,
            }
        )
        target = outcome
        policy = policies.get(attempt.batch_id)
        if policy is not None and outcome in RETRIED:
            kind = retry_kind(outcome, state.raw_status if state is not None else "")
            ended = details["p_ended_at"]
            assert isinstance(ended, datetime)
            again = policy.next_attempt_at(attempt.attempt_number, kind, ended)
            if again is not None:
                # SPEC 10: not terminal; called again once the delay is over.
                target = RecipientStatus.WAITING_RETRY
                retry_rows.append({"p_recipient": attempt.recipient_id, "p_next": again})
        recipient_rows.append(
            {
                "p_recipient": attempt.recipient_id,
                "p_status": target.value,
                "p_attempt_number": attempt.attempt_number,
                "p_error": message,
                "p_call_id": attempt.call_id or None,
                "p_requested_at": attempt.started if attempt.call_id else None,
                **details,
            }
        )
        key = (attempt.batch_id, target, attempt.attempt_number)
        groups.setdefault(key, []).append(attempt.recipient_id)
        settled.append(attempt)
    if not settled:
        return []
    connection.execute(SETTLE_ATTEMPT, attempt_rows)
    for (batch_id, outcome, number), recipient_ids in groups.items():
        move_recipients(
            session,
            batch_id,
            [IN_PROGRESS],
            outcome,
            where=[Recipient.id.in_(recipient_ids), Recipient.attempts == number],
        )
    connection.execute(RECIPIENT_DETAILS, recipient_rows)
    if retry_rows:
        connection.execute(RETRY_AT, retry_rows)
    for attempt, row in zip(settled, attempt_rows, strict=True):
        log.info(
            "call %s for batch call %s ended: %s",
            attempt.call_id or f"attempt {attempt.id}",
            attempt.batch_id,
            row["p_outcome"],
        )
    return settled
