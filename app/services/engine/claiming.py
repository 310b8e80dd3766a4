"""Claiming recipients for calls (transaction A of placing): the QUEUED candidates
locked and moved IN_PROGRESS with an attempt each, under the lease's fence, the
per-number cap and the do-not-call list checked (again just before each request);
claims not placed are voided.

Runs inside the caller's transaction unless a function takes `sessions` (then it
opens its own); like `store`, its hot statements are built once.
"""

from __future__ import annotations

import logging
from collections.abc import Collection, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, cast

from sqlalchemy import Table, bindparam, func, insert, select, update
from sqlalchemy.orm import Session, sessionmaker

from app.models.recipients import move_recipients
from app.models.schema import CallAttempt, DoNotCallNumber, EngineLease, Recipient, UTCDateTime
from app.models.status import RecipientStatus
from app.services.engine.attempts import Claim, aware, finish_recipient, void, void_many
from app.services.engine.config import Clock
from app.services.engine.planning import RunningBatch, mask_number
from app.services.engine.state import TickReport
from app.services.engine.store import RUNNING, batch_status_shared
from app.services.lease import write_transaction
from app.services.telephony import CallRequest

log = logging.getLogger(__name__)

IN_PROGRESS = RecipientStatus.IN_PROGRESS
QUEUED = RecipientStatus.QUEUED
PENDING = RecipientStatus.PENDING
DO_NOT_CALL_MESSAGE = "On the do-not-call list: not called."

_R = cast(Table, Recipient.__table__)
_A = cast(Table, CallAttempt.__table__)
_L = cast(Table, EngineLease.__table__)
_D = cast(Table, DoNotCallNumber.__table__)

#: Inside the claiming transaction: the lease is still this engine's holding (holder
#: and fencing token; on PostgreSQL the row is locked FOR SHARE for that short moment).
LEASE_FENCE_SHARED = (
    select(_L.c.holder, _L.c.fence)
    .where(_L.c.name == bindparam("p_name"))
    .with_for_update(read=True)
)
QUEUED_CANDIDATES = (
    select(_R.c.id, _R.c.phone_number, _R.c.name, _R.c.variables, _R.c.attempts)
    .where(_R.c.batch_call_id == bindparam("p_batch"), _R.c.status == QUEUED.value)
    .order_by(_R.c.id)
    .limit(bindparam("p_limit"))
    .with_for_update()
)
INSERT_ATTEMPTS = insert(_A).returning(_A.c.id, _A.c.recipient_id, sort_by_parameter_order=True)


def claim(
    session: Session,
    batch: RunningBatch,
    count: int,
    provider_name: str,
    claimed_at: datetime,
    now: datetime,
    request_for: Any,
    number_cap: int = 0,
    *,
    fence: Fence | None = None,
) -> list[Claim]:
    """Transaction A (the caller's write transaction): up to `count` QUEUED recipients
    -> IN_PROGRESS (attempts + 1), each with a CallAttempt row without a call id, only
    while `fence` is the lease's current holding (else LeaseLost).
    `request_for(row)` builds a recipient's request (ValueError: it cannot be called)."""
    connection = session.connection()
    if fence is not None:  # LeaseLost: this engine was taken over, it claims nothing
        check_fence(session, fence)
    # The batch call row (FOR SHARE) and the candidates (FOR UPDATE) are locked on
    # PostgreSQL; SQLite's BEGIN IMMEDIATE already excludes every other writer.
    if batch_status_shared(session, batch.id) != RUNNING:
        return []
    rows = connection.execute(QUEUED_CANDIDATES, {"p_batch": batch.id, "p_limit": count}).all()
    if rows and number_cap > 0:
        rows = _hold_back_capped(session, batch.id, rows, number_cap, now)
    if not rows:
        return []
    moved = move_recipients(
        session,
        batch.id,
        [QUEUED],
        IN_PROGRESS,
        where=[Recipient.id.in_([row.id for row in rows])],
        values={"attempts": Recipient.attempts + 1, "last_error": None},
    )
    if moved != len(rows):  # impossible under the locks: claim nothing this time
        raise RuntimeError(f"claimed {moved} of {len(rows)} locked recipients")
    requests: dict[int, CallRequest] = {}
    for row in rows:
        try:
            requests[row.id] = request_for(row)
        except ValueError as exc:  # defensive: the settings were checked already
            finish_recipient(
                session,
                batch.id,
                row.id,
                row.attempts + 1,
                RecipientStatus.FAILED,
                {"last_error": f"The call could not be prepared: {exc}", "ended_at": now},
            )
    numbers = {row.id: row.attempts + 1 for row in rows}
    inserted = (
        connection.execute(
            INSERT_ATTEMPTS,
            [
                {
                    "recipient_id": row.id,
                    "batch_call_id": batch.id,
                    "attempt_number": numbers[row.id],
                    "provider": provider_name[:16],
                    "to_number": row.phone_number,
                    "from_number": batch.from_number,
                    "created_at": claimed_at,
                }
                for row in rows
                if row.id in requests
            ],
        ).all()
        if requests
        else []
    )
    return [
        Claim(
            attempt_id,
            recipient_id,
            batch.id,
            numbers[recipient_id],
            requests[recipient_id],
            claimed_at,
        )
        for attempt_id, recipient_id in inserted
    ]


NUMBER_ATTEMPTS_SINCE = (
    select(_A.c.to_number, func.count(), func.min(_A.c.created_at))
    .where(
        _A.c.to_number.in_(bindparam("p_numbers", expanding=True)),
        _A.c.created_at > bindparam("p_since", type_=UTCDateTime()),
    )
    .group_by(_A.c.to_number)
)
ON_DO_NOT_CALL_AMONG = select(_D.c.phone_number).where(
    _D.c.phone_number.in_(bindparam("p_numbers", expanding=True))
)


def _hold_back_capped(
    session: Session, batch_id: int, rows: Sequence[Any], cap: int, now: datetime
) -> list[Any]:
    """SPEC 10's per-number cap: a recipient whose number already had `cap` attempts in
    the last 24 hours (any batch call, ix_call_attempts_number_time) goes back to PENDING
    until the oldest of them is 24 hours old; the others are returned."""
    since = now - timedelta(hours=24)
    numbers = list({row.phone_number for row in rows})
    counts = {
        number: (int(n), first)
        for number, n, first in session.connection().execute(
            NUMBER_ATTEMPTS_SINCE, {"p_numbers": numbers, "p_since": since}
        )
    }
    allowed: list[Any] = []
    used: dict[str, int] = {}
    for row in rows:
        n, first = counts.get(row.phone_number, (0, None))
        n += used.get(row.phone_number, 0)
        if n < cap:
            used[row.phone_number] = used.get(row.phone_number, 0) + 1
            allowed.append(row)
            continue
        first = aware(first) or now
        move_recipients(
            session,
            batch_id,
            [QUEUED],
            PENDING,
            where=[Recipient.id == row.id],
            values={"next_try_at": max(now, first + timedelta(hours=24))},
        )
    return allowed


def on_do_not_call_among(session: Session, numbers: Collection[str]) -> set[str]:
    """Which of `numbers` are on the do-not-call list (its unique index, one query)."""
    if not numbers:
        return set()
    rows = session.connection().execute(ON_DO_NOT_CALL_AMONG, {"p_numbers": list(numbers)})
    return set(rows.scalars())


def stop_do_not_call(
    session: Session, claims: Sequence[Claim], clock: Clock, report: TickReport
) -> list[Claim]:
    """Checked in the last transaction before the request (SPEC 10): a number added to
    the do-not-call list while its batch call runs is never called after that. The
    stopped recipients get their own outcome; the others are returned."""
    allowed: list[Claim] = []
    listed = on_do_not_call_among(session, {claim.request.to for claim in claims})
    for claim in claims:
        if claim.request.to not in listed:
            allowed.append(claim)
            continue
        if void(session, claim, RecipientStatus.DO_NOT_CALL):
            session.execute(
                update(Recipient)
                .where(Recipient.id == claim.recipient_id)
                .values(last_error=DO_NOT_CALL_MESSAGE, ended_at=clock())
            )
        report.touch(claim.batch_id)
        log.info("call to %s not placed: on the do-not-call list", mask_number(claim.request.to))
    return allowed


@dataclass(frozen=True)
class Fence:
    """The lease a claim is made under: its name, this holder and its fencing token."""

    name: str
    holder: str
    token: int | None


class LeaseLost(Exception):
    """The lease's holder or fence changed: this engine was taken over."""

    def __init__(self, holder: str | None) -> None:
        super().__init__(f"the dialer lease is held by {holder}")
        self.holder = holder


def check_fence(session: Session, fence: Fence) -> None:
    """Inside a claiming transaction: the lease is still this holding (its row locked
    FOR SHARE on PostgreSQL, so a takeover waits for this short transaction)."""
    row = session.connection().execute(LEASE_FENCE_SHARED, {"p_name": fence.name}).first()
    if row is None or row.holder != fence.holder or row.fence != fence.token:
        raise LeaseLost(row.holder if row is not None else None)


def void_claims(
    sessions: sessionmaker[Session], claims: Iterable[Claim], report: TickReport
) -> None:
    """Claims not placed go back to the queue (or PENDING if the batch call stopped):
    one transaction, one DELETE and one move of the recipients per batch call."""
    per_batch: dict[int, list[Claim]] = {}
    for claim_ in claims:
        per_batch.setdefault(claim_.batch_id, []).append(claim_)
    if not per_batch:
        return
    with write_transaction(sessions) as session:
        for batch_id, batch_claims in per_batch.items():
            status = batch_status_shared(session, batch_id)
            if status is None:
                continue
            void_many(session, batch_claims, QUEUED if status == RUNNING else PENDING)
            report.touch(batch_id)
