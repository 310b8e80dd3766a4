"""The placing protocol shared by the dialer and the supervisor's actions.

The dialer sends no request to the telephony provider while it holds a database lock.
Instead, each call goes through three short transactions:

1. claim: the recipient QUEUED -> IN_PROGRESS and a call attempt without a call id,
   committed only while the engine's lease fence is current;
2. mark: just before the request, the attempt's `requested_at` is set, only while its
   batch call is RUNNING (a conditional UPDATE); the request is then sent within
   `SEND_WINDOW_SECONDS` of that commit (monotonic clock) or not at all;
3. store: the call id, after the answer.

A Pause, Cancel or Delete commits its status change, which stops every mark that
follows, and then waits for the attempts already marked: once each has its answer, or
`SEND_WINDOW_SECONDS` have passed since the action saw it, no request for that batch
call can start any more. The action answers after that bounded wait.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import cast

from sqlalchemy import Table, func, select
from sqlalchemy.orm import Session, sessionmaker

from app.models.schema import CallAttempt

#: A marked request is sent within this many real seconds of its mark, or never.
SEND_WINDOW_SECONDS = 1.0
#: How often a waiting action looks again.
_POLL_SECONDS = 0.02

_A = cast(Table, CallAttempt.__table__)

#: Attempts marked for sending whose answer is not in yet (a lost answer has
#: provider_status "unknown" and is reconciled instead).
_BEING_PLACED = select(func.count()).where(
    _A.c.provider_call_id.is_(None),
    _A.c.outcome.is_(None),
    _A.c.requested_at.is_not(None),
    _A.c.provider_status.is_(None),
)


def calls_being_placed(session: Session, batch_id: int) -> int:
    """Requests of this batch call the dialer marked for sending, answer not yet in."""
    return int(session.scalar(_BEING_PLACED.where(_A.c.batch_call_id == batch_id)) or 0)


def wait_for_calls_being_placed(
    sessions: sessionmaker[Session],
    batch_id: int,
    *,
    seen: int | None = None,
    sleep: Callable[[float], object] = time.sleep,
) -> int:
    """After an action that stops a batch call has committed: wait until no request of
    it can start any more (see the module docstring). `seen`: how many were being
    placed when the action committed, if it already counted them (a Delete, whose rows
    are gone afterwards). Returns how many it waited for; never longer than
    SEND_WINDOW_SECONDS plus a poll."""
    until = time.monotonic() + SEND_WINDOW_SECONDS + _POLL_SECONDS
    if seen is not None:
        if seen:
            sleep(max(0.0, until - time.monotonic()))
        return seen
    first: int | None = None
    while True:
        with sessions() as session:
            count = calls_being_placed(session, batch_id)
        if first is None:
            first = count
        if count == 0 or time.monotonic() >= until:
            return first
        sleep(_POLL_SECONDS)
