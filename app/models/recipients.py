"""Moving recipients between statuses while keeping the batch call's counters exact.

Every change of a recipient's status goes through `move_recipients` (or `set_outcome`), in
the caller's transaction: one conditional UPDATE per source status, whose row count is what
the counters move by. Two workers racing on one row cannot both count it.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from sqlalchemy import ColumnElement, Connection, func, select, update
from sqlalchemy.orm import InstrumentedAttribute, Session

from app.models.schema import BatchCall, Recipient
from app.models.status import RecipientStatus

COUNT_COLUMNS: dict[RecipientStatus, InstrumentedAttribute[int]] = {
    RecipientStatus.PENDING: BatchCall.pending_count,
    RecipientStatus.QUEUED: BatchCall.queued_count,
    RecipientStatus.IN_PROGRESS: BatchCall.in_progress_count,
    RecipientStatus.COMPLETED: BatchCall.completed_count,
    RecipientStatus.FAILED: BatchCall.failed_count,
    RecipientStatus.NO_ANSWER: BatchCall.no_answer_count,
    RecipientStatus.WAITING_RETRY: BatchCall.waiting_retry_count,
    RecipientStatus.DO_NOT_CALL: BatchCall.do_not_call_count,
    RecipientStatus.EXPIRED: BatchCall.expired_count,
}


def count_column(status: RecipientStatus) -> InstrumentedAttribute[int]:
    return COUNT_COLUMNS[status]


def counts_of(batch: BatchCall) -> dict[RecipientStatus, int]:
    return {status: getattr(batch, column.key) for status, column in COUNT_COLUMNS.items()}


def adjust_counts(
    session: Session | Connection, batch_call_id: int, deltas: dict[RecipientStatus, int]
) -> None:
    values: dict[Any, Any] = {
        COUNT_COLUMNS[status]: COUNT_COLUMNS[status] + delta
        for status, delta in deltas.items()
        if delta
    }
    if values:
        session.execute(update(BatchCall).where(BatchCall.id == batch_call_id).values(values))


def move_recipients(
    session: Session,
    batch_call_id: int,
    from_statuses: Iterable[RecipientStatus],
    to_status: RecipientStatus,
    *,
    where: Iterable[ColumnElement[bool]] = (),
    values: dict[str, Any] | None = None,
) -> int:
    """Move this batch call's recipients in `from_statuses` (and matching `where`) to
    `to_status`, setting `values` too; return how many moved."""
    extra = list(where)
    moved_total = 0
    deltas: dict[RecipientStatus, int] = {}
    for source in from_statuses:
        if source is to_status:
            continue
        result = session.execute(
            update(Recipient)
            .where(
                Recipient.batch_call_id == batch_call_id,
                Recipient.status == source.value,
                *extra,
            )
            .values(status=to_status.value, **(values or {}))
            .execution_options(synchronize_session=False)
        )
        moved = int(result.rowcount or 0)  # type: ignore[attr-defined]
        if moved:
            deltas[source] = deltas.get(source, 0) - moved
            deltas[to_status] = deltas.get(to_status, 0) + moved
            moved_total += moved
    adjust_counts(session, batch_call_id, deltas)
    return moved_total


def move_recipient(
    session: Session,
    recipient_id: int,
    batch_call_id: int,
    from_statuses: Iterable[RecipientStatus],
    to_status: RecipientStatus,
    **values: Any,
) -> bool:
    """Move one recipient if it is still in one of `from_statuses`; True when it moved."""
    return (
        move_recipients(
            session,
            batch_call_id,
            from_statuses,
            to_status,
            where=[Recipient.id == recipient_id],
            values=values,
        )
        == 1
    )


def recount(session: Session, batch_call_id: int) -> dict[RecipientStatus, int]:
    """Counts straight from the recipients table (for checks and repairs)."""
    rows = session.execute(
        select(Recipient.status, func.count())
        .where(Recipient.batch_call_id == batch_call_id)
        .group_by(Recipient.status)
    ).all()
    counts = dict.fromkeys(RecipientStatus, 0)
    for status, n in rows:
        counts[RecipientStatus(status)] = int(n)
    return counts
