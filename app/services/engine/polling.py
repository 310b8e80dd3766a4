"""The polling of the calls in progress: which open calls are due for a poll, and the
poll time (and status) of those still open. `due_polls` opens its own session;
`record_polled` runs inside the caller's transaction.
"""

from __future__ import annotations

from datetime import datetime
from typing import cast

from sqlalchemy import String, Table, bindparam, func, nulls_first, or_, select, update
from sqlalchemy.orm import Session, sessionmaker

from app.models.schema import BatchCall, CallAttempt
from app.services.engine.attempts import OpenAttempt, _when, aware

_A = cast(Table, CallAttempt.__table__)

POLLED = (
    update(_A)
    .where(_A.c.id.in_(bindparam("p_ids", expanding=True)), _A.c.outcome.is_(None))
    .values(
        last_polled_at=_when("p_now"),
        provider_status=func.coalesce(
            bindparam("p_raw_status", type_=String()), _A.c.provider_status
        ),
    )
)


def due_polls(
    sessions: sessionmaker[Session],
    now: datetime,
    cutoff: datetime,
    limit: int,
    *,
    early: datetime | None = None,
) -> tuple[list[OpenAttempt], list[OpenAttempt]]:
    """Open calls not polled since `cutoff`, least recently polled first; and, in the
    same query, those not polled since `early` (a later moment) as well: the calls due
    soon, which a bulk round can answer for together (the first list is a prefix of it)."""
    with sessions() as session:
        batch_ids = session.scalars(
            select(BatchCall.id).where(BatchCall.in_progress_count > 0)
        ).all()
        if not batch_ids:
            return [], []
        due_now = or_(CallAttempt.last_polled_at.is_(None), CallAttempt.last_polled_at <= cutoff)
        rows = session.execute(
            select(
                CallAttempt.id,
                CallAttempt.recipient_id,
                CallAttempt.batch_call_id,
                CallAttempt.attempt_number,
                CallAttempt.provider_call_id,
                func.coalesce(CallAttempt.requested_at, CallAttempt.created_at),
                due_now,
            )
            .where(
                CallAttempt.batch_call_id.in_(batch_ids),
                CallAttempt.outcome.is_(None),
                CallAttempt.provider_call_id.is_not(None),
                or_(
                    CallAttempt.last_polled_at.is_(None),
                    CallAttempt.last_polled_at <= (early or cutoff),
                ),
            )
            .order_by(nulls_first(CallAttempt.last_polled_at.asc()), CallAttempt.id)
            .limit(limit)
        ).all()
    every = [OpenAttempt(r[0], r[1], r[2], r[3], r[4], aware(r[5]) or now) for r in rows]
    return [a for a, r in zip(every, rows, strict=True) if r[6]], every


def record_polled(session: Session, still_open: dict[str | None, list[int]], now: datetime) -> None:
    """Calls still open get their poll time (and status): one UPDATE per distinct status."""
    connection = session.connection()
    for raw_status, ids in still_open.items():
        connection.execute(POLLED, {"p_ids": ids, "p_now": now, "p_raw_status": raw_status})
