"""Batch call and recipient statuses, and the one table of which action each status allows.

Everything that offers or performs an action (services, command line, context menus) asks
this module, so the rules of SPEC section 3 live in exactly one place.
"""

from __future__ import annotations

from enum import StrEnum


class BatchStatus(StrEnum):
    SCHEDULED = "SCHEDULED"
    PENDING = "PENDING"
    RUNNING = "RUNNING"
    PAUSED = "PAUSED"
    COMPLETED = "COMPLETED"
    CANCELLED = "CANCELLED"
    FAILED = "FAILED"

    @property
    def display_name(self) -> str:
        """What the supervisor sees: RUNNING is "In Progress", the rest title case."""
        if self is BatchStatus.RUNNING:
            return "In Progress"
        return self.value.title()


class RecipientStatus(StrEnum):
    PENDING = "PENDING"
    QUEUED = "QUEUED"
    IN_PROGRESS = "IN_PROGRESS"
    COMPLETED = "COMPLETED"
    FAILED = "FAILED"
    NO_ANSWER = "NO_ANSWER"
    #: Called, not reached, and due for another automatic attempt later (SPEC 10).
    WAITING_RETRY = "WAITING_RETRY"
    #: Stopped by the do-not-call list when its call was about to be placed.
    DO_NOT_CALL = "DO_NOT_CALL"
    #: Not reached before the batch call's end date.
    EXPIRED = "EXPIRED"

    @property
    def display_name(self) -> str:
        return {
            "IN_PROGRESS": "In Progress",
            "NO_ANSWER": "No Answer",
            "WAITING_RETRY": "Waiting for retry",
            "DO_NOT_CALL": "Skipped: do not call",
        }.get(self.value, self.value.title())

    @property
    def is_terminal(self) -> bool:
        return self in TERMINAL_RECIPIENT_STATUSES


TERMINAL_RECIPIENT_STATUSES = frozenset(
    {
        RecipientStatus.COMPLETED,
        RecipientStatus.FAILED,
        RecipientStatus.NO_ANSWER,
        RecipientStatus.DO_NOT_CALL,
        RecipientStatus.EXPIRED,
    }
)
#: Recipients a batch Retry sends back to PENDING.
RETRYABLE_RECIPIENT_STATUSES = frozenset({RecipientStatus.FAILED, RecipientStatus.NO_ANSWER})
#: Recipients that keep a batch call from being complete.
OPEN_RECIPIENT_STATUSES = frozenset(
    {
        RecipientStatus.PENDING,
        RecipientStatus.QUEUED,
        RecipientStatus.IN_PROGRESS,
        RecipientStatus.WAITING_RETRY,
    }
)


class Action(StrEnum):
    PAUSE = "PAUSE"
    RESUME = "RESUME"
    CANCEL = "CANCEL"
    RETRY = "RETRY"
    DELETE = "DELETE"
    RENAME = "RENAME"
    RELOAD = "RELOAD"

    @property
    def label(self) -> str:
        return self.value.title()


#: SPEC section 3: the actions each status offers, in menu order. Retry on COMPLETED is
#: further limited to batch calls with a FAILED or NO_ANSWER recipient (see actions_for).
ACTIONS: dict[BatchStatus, tuple[Action, ...]] = {
    BatchStatus.SCHEDULED: (Action.CANCEL, Action.DELETE, Action.RENAME, Action.RELOAD),
    BatchStatus.PENDING: (Action.CANCEL, Action.DELETE, Action.RENAME, Action.RELOAD),
    BatchStatus.RUNNING: (
        Action.PAUSE,
        Action.CANCEL,
        Action.DELETE,
        Action.RENAME,
        Action.RELOAD,
    ),
    BatchStatus.PAUSED: (
        Action.RESUME,
        Action.CANCEL,
        Action.DELETE,
        Action.RENAME,
        Action.RELOAD,
    ),
    BatchStatus.COMPLETED: (Action.RETRY, Action.DELETE, Action.RENAME, Action.RELOAD),
    BatchStatus.CANCELLED: (Action.RETRY, Action.DELETE, Action.RENAME, Action.RELOAD),
    BatchStatus.FAILED: (Action.RETRY, Action.DELETE, Action.RENAME, Action.RELOAD),
}

#: Where a status-changing action leads. Rename, Reload and Delete keep (or remove) the row.
TARGET_STATUS: dict[Action, BatchStatus] = {
    Action.PAUSE: BatchStatus.PAUSED,
    Action.RESUME: BatchStatus.RUNNING,
    Action.CANCEL: BatchStatus.CANCELLED,
    Action.RETRY: BatchStatus.SCHEDULED,
}

#: Actions that ask the supervisor to confirm first (SPEC section 7).
CONFIRMED_ACTIONS = frozenset(
    {Action.PAUSE, Action.RESUME, Action.CANCEL, Action.RETRY, Action.DELETE}
)


class ActionNotAllowed(Exception):
    """An action was requested that the batch call's current status does not offer."""

    def __init__(self, action: Action, status: BatchStatus | None, name: str | None = None):
        self.action = action
        self.status = status
        what = f'"{name}"' if name else "this batch call"
        if status is None:
            message = f"Cannot {action.label.lower()} {what}: it no longer exists."
        elif action is Action.RETRY and status is BatchStatus.COMPLETED:
            message = (
                f"Cannot retry {what}: every recipient completed, so there is nothing to retry."
            )
        else:
            allowed = ", ".join(a.label for a in ACTIONS[status])
            message = (
                f"Cannot {action.label.lower()} {what} while it is {status.display_name}. "
                f"Available now: {allowed}."
            )
        super().__init__(message)


def actions_for(status: BatchStatus, has_retryable_recipients: bool = True) -> list[Action]:
    """The actions to offer for a batch call in this status, in menu order.

    For COMPLETED, Retry is offered only when some recipient FAILED or had NO_ANSWER.
    """
    actions = list(ACTIONS[status])
    if status is BatchStatus.COMPLETED and not has_retryable_recipients:
        actions.remove(Action.RETRY)
    return actions


def statuses_allowing(action: Action) -> frozenset[BatchStatus]:
    """Every status from which the action may be taken (before the COMPLETED retry rule)."""
    return frozenset(s for s, acts in ACTIONS.items() if action in acts)


def transition(
    status: BatchStatus,
    action: Action,
    has_retryable_recipients: bool = True,
    name: str | None = None,
) -> BatchStatus:
    """The status after the action, or ActionNotAllowed. Delete returns the status unchanged."""
    if action not in actions_for(status, has_retryable_recipients):
        raise ActionNotAllowed(action, status, name)
    return TARGET_STATUS.get(action, status)
