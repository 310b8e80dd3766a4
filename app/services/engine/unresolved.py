"""The lookups of reconciliation: the attempts whose call id is still unknown, and
adopting the call the provider reports for one. Each function runs inside the caller's
transaction unless it takes `sessions` (then it opens its own).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any, cast

from sqlalchemy import Table, and_, bindparam, or_, select, update
from sqlalchemy.orm import Session, sessionmaker

from app.models.schema import BatchCall, CallAttempt, Recipient
from app.services.engine.attempts import SERVER_ERROR, _when, aware
from app.services.telephony import CallState

_A = cast(Table, CallAttempt.__table__)

#: Attempts whose call id is unknown, old enough to reconcile: sent (requested_at, set
#: when the answer was lost) before `p_sent_cutoff`, or, never recorded as sent (a
#: crash), claimed before `p_claim_cutoff`. The index ix_call_attempts_unresolved
#: (outcome, provider_call_id, id) reaches them directly, in id order, so the query does
#: not slow down as refused attempts (no call id, FAILED) pile up.
UNRESOLVED_ATTEMPTS = (
    select(
        _A.c.id,
        _A.c.recipient_id,
        _A.c.batch_call_id,
        _A.c.attempt_number,
        _A.c.created_at,
        _A.c.requested_at,
        _A.c.provider_status,
    )
    .where(
        _A.c.provider_call_id.is_(None),
        _A.c.outcome.is_(None),
        or_(
            and_(_A.c.requested_at.is_not(None), _A.c.requested_at <= _when("p_sent_cutoff")),
            and_(_A.c.requested_at.is_(None), _A.c.created_at <= _when("p_claim_cutoff")),
            and_(
                _A.c.provider_status == SERVER_ERROR,
                _A.c.requested_at <= _when("p_answered_cutoff"),
            ),
        ),
    )
    .order_by(_A.c.id)
    .limit(bindparam("p_limit"))
)


def unresolved_attempts(
    sessions: sessionmaker[Session],
    sent_cutoff: datetime,
    claim_cutoff: datetime,
    limit: int,
    answered_cutoff: datetime | None = None,
) -> list[Any]:
    """Attempts without a call id sent before `sent_cutoff`, claimed (not sent) before
    `claim_cutoff`, or answered with a server error before `answered_cutoff`."""
    values = {
        "p_sent_cutoff": sent_cutoff,
        "p_claim_cutoff": claim_cutoff,
        "p_answered_cutoff": answered_cutoff or sent_cutoff,
        "p_limit": limit,
    }
    with sessions() as session:
        return list(session.connection().execute(UNRESOLVED_ATTEMPTS, values).all())


def lock_unresolved(session: Session, attempt_id: int, *, lock: bool = True) -> CallAttempt | None:
    """The attempt (locked, unless `lock` is False) if its call id and outcome are still
    unknown."""
    query = select(CallAttempt).where(
        CallAttempt.id == attempt_id,
        CallAttempt.provider_call_id.is_(None),
        CallAttempt.outcome.is_(None),
    )
    return session.scalars(query.with_for_update() if lock else query).first()


def batch_started_at(session: Session, batch_id: int) -> datetime | None:
    return aware(session.scalar(select(BatchCall.started_at).where(BatchCall.id == batch_id)))


def known_call_ids(session: Session, call_ids: Sequence[str]) -> set[str]:
    """Of these provider call ids, those another attempt already holds."""
    if not call_ids:
        return set()
    return {
        call_id
        for call_id in session.scalars(
            select(CallAttempt.provider_call_id).where(
                CallAttempt.provider_call_id.in_(list(call_ids))
            )
        ).all()
        if call_id is not None
    }


def adopt_call(session: Session, attempt: CallAttempt, state: CallState, now: datetime) -> datetime:
    """The provider has the call of this attempt: store its id. Returns when it started."""
    started = state.created_at or aware(attempt.created_at) or now
    attempt.provider_call_id = state.call_id
    attempt.provider_status = state.raw_status[:16]
    attempt.requested_at = started
    attempt.last_polled_at = now
    attempt.error = None
    session.execute(
        update(Recipient)
        .where(Recipient.id == attempt.recipient_id)
        .values(provider_call_id=state.call_id, requested_at=started)
        .execution_options(synchronize_session=False)
    )
    session.flush()
    return started
