"""The status actions on a batch call: rename, pause, resume, cancel, retry and delete
(`perform` runs one by its enum for the menus and the command line).

Each status change is one conditional UPDATE ("... WHERE status IN (allowed)") inside the
transaction that also moves the recipients and writes the audit event, so of two desktops
racing on one batch call exactly one succeeds and the other gets ActionNotAllowed.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from typing import Any

from sqlalchemy import ColumnElement, delete, or_, update
from sqlalchemy.orm import Session

from app.models.creation import name_problem
from app.models.imports import dialable
from app.models.recipients import move_recipients
from app.models.schema import BatchCall, CallAttempt, Recipient
from app.models.snapshots import BatchCallSnapshot
from app.models.status import (
    DIALING_ACTIONS,
    RETRYABLE_RECIPIENT_STATUSES,
    Action,
    ActionNotAllowed,
    BatchStatus,
    RecipientStatus,
    statuses_allowing,
)
from app.services.batch_common import BatchCallContext, ValidationError
from app.services.batch_queries import BatchCallQueries, batch_snapshot
from app.services.placements import calls_being_placed, wait_for_calls_being_placed

log = logging.getLogger("app.services.batch_calls")  # one logger for the batch call service


def validate_name(name: str) -> str:
    """The trimmed name, or ValidationError: 1 to 100 characters after trimming."""
    problem = name_problem(name)
    if problem:
        raise ValidationError({"name": problem})
    return name.strip()


class BatchCallActions:
    """The status actions. Thread-safe: every call opens its own short session."""

    def __init__(self, context: BatchCallContext, queries: BatchCallQueries) -> None:
        self.context = context
        self.queries = queries
        #: How many calls the dialer was already placing when the last Pause, Cancel or
        #: Delete committed (it waited for them: none starts after it answered).
        self.calls_waited_for = 0

    def _transition(
        self,
        session: Session,
        batch_id: int,
        action: Action,
        values: dict[str, Any],
        extra: Sequence[ColumnElement[bool]] = (),
    ) -> BatchCall:
        """The conditional status change; ActionNotAllowed names the status found instead."""
        allowed = [s.value for s in statuses_allowing(action)]
        if action in DIALING_ACTIONS:  # never dial a batch call missing recipients
            extra = [*extra, dialable()]
        result = session.execute(
            update(BatchCall)
            .where(BatchCall.id == batch_id, BatchCall.status.in_(allowed), *extra)
            .values(updated_at=self.context.clock(), **values)
            .execution_options(synchronize_session=False)
        )
        batch = session.get(BatchCall, batch_id, populate_existing=True)
        if result.rowcount != 1:  # type: ignore[attr-defined]
            if batch is None:
                raise ActionNotAllowed(action, None)
            raise ActionNotAllowed(
                action,
                BatchStatus(batch.status),
                batch.name,
                incomplete_import=action in DIALING_ACTIONS and not batch.import_complete,
            )
        assert batch is not None
        return batch

    def _act(
        self,
        batch_id: int,
        action: Action,
        values: dict[str, Any],
        *,
        detail: str = "",
        extra: Sequence[ColumnElement[bool]] = (),
        after: Callable[[Session], None] | None = None,
    ) -> BatchCallSnapshot:
        with self.context.sessions.begin() as session:
            batch = self._transition(session, batch_id, action, values, extra)
            if after:
                after(session)
            session.refresh(batch)
            self.context.audit(session, batch, action.value, detail)
            snapshot = batch_snapshot(batch, now=self.context.clock())
        self.context.changed(batch_id)
        return snapshot

    def _requeue(self, batch_id: int) -> Callable[[Session], None]:
        """QUEUED recipients go back to PENDING: they were due, not called."""

        def move(session: Session) -> None:
            move_recipients(session, batch_id, [RecipientStatus.QUEUED], RecipientStatus.PENDING)

        return move

    def rename(self, batch_id: int, name: str) -> BatchCallSnapshot:
        new_name = validate_name(name)
        with self.context.sessions.begin() as session:
            batch = session.get(BatchCall, batch_id, with_for_update=True)
            if batch is None:
                raise ActionNotAllowed(Action.RENAME, None)
            old = batch.name
            batch.name = new_name
            batch.updated_at = self.context.clock()
            self.context.audit(session, batch, Action.RENAME.value, f'from "{old}"')
            session.flush()
            snapshot = batch_snapshot(batch, now=self.context.clock())
        self.context.changed(batch_id)
        return snapshot

    def pause(self, batch_id: int) -> BatchCallSnapshot:
        snapshot = self._act(
            batch_id,
            Action.PAUSE,
            {
                "status": BatchStatus.PAUSED.value,
                "waiting_reason": f"Paused by {self.context.actor.user}.",
            },
            after=self._requeue(batch_id),
        )
        self._await_calls_being_placed(batch_id, Action.PAUSE)
        return snapshot

    def resume(self, batch_id: int) -> BatchCallSnapshot:
        return self._act(
            batch_id,
            Action.RESUME,
            {"status": BatchStatus.RUNNING.value, "waiting_reason": None},
        )

    def cancel(self, batch_id: int) -> BatchCallSnapshot:
        snapshot = self._act(
            batch_id,
            Action.CANCEL,
            {
                "status": BatchStatus.CANCELLED.value,
                "waiting_reason": None,
                "finished_at": self.context.clock(),
            },
            after=self._requeue(batch_id),
        )
        self._await_calls_being_placed(batch_id, Action.CANCEL)
        return snapshot

    def _await_calls_being_placed(
        self, batch_id: int, action: Action, seen: int | None = None
    ) -> None:
        """The dialer places calls outside any lock (app.services.placements): once this
        returns (a second at most), no call of the batch call starts any more."""
        waited = wait_for_calls_being_placed(self.context.sessions, batch_id, seen=seen)
        self.calls_waited_for = waited
        if waited:
            log.info(
                "%s of batch call %s waited for %d call(s) the dialer was already placing",
                action.label,
                batch_id,
                waited,
            )

    def retry(self, batch_id: int) -> BatchCallSnapshot:
        """Same batch call back to SCHEDULED; FAILED and NO_ANSWER recipients to PENDING."""
        retryable = BatchCall.failed_count + BatchCall.no_answer_count > 0
        moved: list[int] = []

        def reset(session: Session) -> None:
            moved.append(
                move_recipients(
                    session,
                    batch_id,
                    [
                        *sorted(RETRYABLE_RECIPIENT_STATUSES),
                        RecipientStatus.QUEUED,
                        RecipientStatus.WAITING_RETRY,
                    ],
                    RecipientStatus.PENDING,
                    values={"next_try_at": None},
                )
            )

        return self._act(
            batch_id,
            Action.RETRY,
            {
                "status": BatchStatus.SCHEDULED.value,
                "retry_count": BatchCall.retry_count + 1,
                "failure_reason": None,
                "waiting_reason": None,
                "finished_at": None,
            },
            extra=[or_(BatchCall.status != BatchStatus.COMPLETED.value, retryable)],
            after=reset,
        )

    def delete(self, batch_id: int) -> None:
        """Remove the batch call, its recipients and call attempts (the audit trail stays)."""
        with self.context.sessions.begin() as session:
            batch = session.get(BatchCall, batch_id, with_for_update=True)
            if batch is None:
                raise ActionNotAllowed(Action.DELETE, None)
            self.context.audit(
                session, batch, Action.DELETE.value, f"{batch.total_recipients} recipients"
            )
            being_placed = calls_being_placed(session, batch_id)
            session.execute(delete(CallAttempt).where(CallAttempt.batch_call_id == batch_id))
            session.execute(delete(Recipient).where(Recipient.batch_call_id == batch_id))
            session.execute(delete(BatchCall).where(BatchCall.id == batch_id))
        self._await_calls_being_placed(batch_id, Action.DELETE, seen=being_placed)
        self.context.changed(batch_id)

    def perform(self, batch_id: int, action: Action) -> BatchCallSnapshot | None:
        """Run a status action by its enum (menus and the command line use this)."""
        if action is Action.RELOAD:
            return self.queries.get(batch_id)
        handlers: dict[Action, Callable[[int], BatchCallSnapshot | None]] = {
            Action.PAUSE: self.pause,
            Action.RESUME: self.resume,
            Action.CANCEL: self.cancel,
            Action.RETRY: self.retry,
            Action.DELETE: self.delete,
        }
        if action not in handlers:
            raise ValueError(f"{action.label} needs more than an id")
        return handlers[action](batch_id)
