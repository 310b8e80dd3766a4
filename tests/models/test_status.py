"""SPEC section 3, written out again independently of app.models.status, pair by pair."""

from __future__ import annotations

import pytest

from app.models.status import (
    Action,
    ActionNotAllowed,
    BatchStatus,
    RecipientStatus,
    actions_for,
    transition,
)

S, A = BatchStatus, Action

# (status, action) -> resulting status, or None when the action must be refused.
# COMPLETED's Retry is listed for a batch call with failures; see the separate test below.
SPEC_TABLE: dict[tuple[BatchStatus, Action], BatchStatus | None] = {}
_ALLOWED = {
    S.SCHEDULED: {A.CANCEL: S.CANCELLED, A.DELETE: S.SCHEDULED, A.RENAME: S.SCHEDULED,
                  A.RELOAD: S.SCHEDULED},
    S.PENDING: {A.CANCEL: S.CANCELLED, A.DELETE: S.PENDING, A.RENAME: S.PENDING,
                A.RELOAD: S.PENDING},
    S.RUNNING: {A.PAUSE: S.PAUSED, A.CANCEL: S.CANCELLED, A.DELETE: S.RUNNING,
                A.RENAME: S.RUNNING, A.RELOAD: S.RUNNING},
    S.PAUSED: {A.RESUME: S.RUNNING, A.CANCEL: S.CANCELLED, A.DELETE: S.PAUSED,
               A.RENAME: S.PAUSED, A.RELOAD: S.PAUSED},
    S.COMPLETED: {A.RETRY: S.SCHEDULED, A.DELETE: S.COMPLETED, A.RENAME: S.COMPLETED,
                  A.RELOAD: S.COMPLETED},
    S.CANCELLED: {A.RETRY: S.SCHEDULED, A.DELETE: S.CANCELLED, A.RENAME: S.CANCELLED,
                  A.RELOAD: S.CANCELLED},
    S.FAILED: {A.RETRY: S.SCHEDULED, A.DELETE: S.FAILED, A.RENAME: S.FAILED,
               A.RELOAD: S.FAILED},
}  # fmt: skip
for _status in BatchStatus:
    for _action in Action:
        SPEC_TABLE[(_status, _action)] = _ALLOWED[_status].get(_action)

PAIRS = sorted(SPEC_TABLE, key=lambda pair: (pair[0].value, pair[1].value))


@pytest.mark.parametrize(("status", "action"), PAIRS, ids=[f"{s}-{a}" for s, a in PAIRS])
def test_every_status_action_pair(status: BatchStatus, action: Action) -> None:
    expected = SPEC_TABLE[(status, action)]
    offered = action in actions_for(status, has_retryable_recipients=True)
    assert offered == (expected is not None)
    if expected is None:
        with pytest.raises(ActionNotAllowed) as refused:
            transition(status, action, name="Spring promo")
        message = str(refused.value)
        assert "Spring promo" in message
        assert status.display_name in message
    else:
        assert transition(status, action) is expected


def test_completed_without_failures_offers_no_retry() -> None:
    assert Action.RETRY not in actions_for(S.COMPLETED, has_retryable_recipients=False)
    with pytest.raises(ActionNotAllowed, match="nothing to retry"):
        transition(S.COMPLETED, A.RETRY, has_retryable_recipients=False)


@pytest.mark.parametrize("status", [s for s in BatchStatus if s is not S.COMPLETED])
def test_retryable_flag_only_matters_for_completed(status: BatchStatus) -> None:
    assert actions_for(status, True) == actions_for(status, False)


def test_menu_order_puts_the_status_action_first() -> None:
    assert actions_for(S.RUNNING)[0] is A.PAUSE
    assert actions_for(S.PAUSED)[0] is A.RESUME
    assert actions_for(S.FAILED)[0] is A.RETRY


def test_display_names() -> None:
    assert S.RUNNING.display_name == "In Progress"
    assert [s.display_name for s in S if s is not S.RUNNING] == [
        "Scheduled", "Pending", "Paused", "Completed", "Cancelled", "Failed"
    ]  # fmt: skip
    assert RecipientStatus.NO_ANSWER.display_name == "No Answer"
    assert RecipientStatus.IN_PROGRESS.display_name == "In Progress"


def test_refusal_for_a_vanished_batch_call() -> None:
    assert "no longer exists" in str(ActionNotAllowed(A.PAUSE, None))
