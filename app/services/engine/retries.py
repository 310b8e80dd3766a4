"""The automatic retry policy (SPEC 10) as the engine applies it when an attempt ends:
which batch calls retry, the kind of an outcome, and the recipient's next try time.
"""

from __future__ import annotations

import logging
from datetime import timedelta
from typing import cast

from sqlalchemy import Table, bindparam, select, update
from sqlalchemy.orm import Session

from app.models.policy import RetryOutcome, RetryPolicy, parse_retry_outcomes
from app.models.schema import BatchCall, Recipient, UTCDateTime
from app.models.status import RecipientStatus
from app.models.window import WindowError

log = logging.getLogger(__name__)

_R = cast(Table, Recipient.__table__)


RETRY_AT = (
    update(_R)
    .where(
        _R.c.id == bindparam("p_recipient"),
        _R.c.status == RecipientStatus.WAITING_RETRY.value,
    )
    .values(next_try_at=bindparam("p_next", type_=UTCDateTime()))
)
#: Recipient outcomes an automatic retry may follow (busy is a NO_ANSWER outcome).
RETRIED = frozenset({RecipientStatus.NO_ANSWER, RecipientStatus.FAILED})


def retry_kind(outcome: RecipientStatus, raw_status: str) -> RetryOutcome:
    if outcome is RecipientStatus.FAILED:
        return RetryOutcome.FAILED
    return RetryOutcome.BUSY if raw_status == "busy" else RetryOutcome.NO_ANSWER


def retry_policies(session: Session, batch_ids: set[int]) -> dict[int, RetryPolicy]:
    """The automatic retry policy of these batch calls, for those that retry at all."""
    if not batch_ids:
        return {}
    rows = session.execute(
        select(
            BatchCall.id,
            BatchCall.max_attempts,
            BatchCall.retry_delay_minutes,
            BatchCall.retry_outcomes,
        ).where(BatchCall.id.in_(batch_ids), BatchCall.max_attempts > 1)
    ).all()
    policies = {}
    for batch_id, max_attempts, delay, outcomes in rows:
        try:
            policies[batch_id] = RetryPolicy(
                max_attempts, timedelta(minutes=delay), parse_retry_outcomes(outcomes)
            )
        except WindowError:  # checked at creation; a damaged row just does not retry
            log.warning("batch call %s: its retry policy cannot be used", batch_id)
    return policies
