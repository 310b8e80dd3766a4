"""The engine's store: its connections and the named queries and writes about batch
calls (pickup, queues, claims, outcomes, waiting reasons); call attempts are in
`attempts`.

Hot-path statements are built once (SQLAlchemy then reuses their compiled form and cache
key) and run on the session's Connection (Core), not through the ORM. Every query is an
indexed LIMIT or reads the per-status counters, so a tick costs the same with a thousand
or a million pending recipients. Each function runs inside the caller's transaction
unless its name says it opens one (`sessions` argument).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, cast

from sqlalchemy import Engine, Table, bindparam, event, func, insert, or_, select, update
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session, sessionmaker

from app.models.db import make_engine, migrate
from app.models.recipients import move_recipients
from app.models.schema import Agent, BatchCall, CallAttempt, EngineLease, Recipient, UTCDateTime
from app.models.snapshots import SendType
from app.models.status import BatchStatus, RecipientStatus
from app.services.engine.attempts import Claim, finish_recipient, void
from app.services.engine.planning import RunningBatch
from app.services.engine.state import TickReport
from app.services.lease import write_transaction
from app.services.telephony import CallRequest

log = logging.getLogger(__name__)

RUNNING = BatchStatus.RUNNING.value
IN_PROGRESS = RecipientStatus.IN_PROGRESS
QUEUED = RecipientStatus.QUEUED
PENDING = RecipientStatus.PENDING

#: How long the engine waits for another writer (an import, a second desktop) before the
#: tick gives up and the next one tries again: short, so stopping the engine stays quick.
ENGINE_BUSY_TIMEOUT_MS = 5000


#: The engine's PostgreSQL transactions never wait on the network (no request is made
#: inside one): one left idle this long belongs to a frozen process (SIGSTOP, a closed
#: laptop) and is ended by the server, its locks freed, so that a supervisor's action
#: answers within seconds and a standby can take over.
ENGINE_IDLE_IN_TRANSACTION = "1s"


def open_engine_database(url: str) -> tuple[Engine, sessionmaker[Session]]:
    """The engine's own connections (created in the thread that ticks), schema migrated."""
    if make_url(url).get_backend_name() == "postgresql":
        options = f"-c idle_in_transaction_session_timeout={ENGINE_IDLE_IN_TRANSACTION}"
        db = make_engine(url, connect_args={"options": options})
    else:
        db = make_engine(url)
    if db.dialect.name == "sqlite":

        def shorter_wait(dbapi_connection: Any, _record: Any) -> None:
            cursor = dbapi_connection.cursor()
            cursor.execute(f"PRAGMA busy_timeout={ENGINE_BUSY_TIMEOUT_MS}")
            cursor.close()

        event.listen(db, "connect", shorter_wait)  # after make_engine's own pragmas
    try:
        migrate(db)
    except BaseException:
        db.dispose()
        raise
    return db, sessionmaker(db, expire_on_commit=False)


_B = cast(Table, BatchCall.__table__)
_R = cast(Table, Recipient.__table__)
_A = cast(Table, CallAttempt.__table__)
_L = cast(Table, EngineLease.__table__)


BATCH_STATUS_SHARED = (
    select(_B.c.status).where(_B.c.id == bindparam("p_batch")).with_for_update(read=True)
)
#: Inside the claiming transaction: the lease is still this engine's holding (holder
#: and fencing token; on PostgreSQL the row is locked FOR SHARE for that short moment).
LEASE_FENCE_SHARED = (
    select(_L.c.holder, _L.c.fence)
    .where(_L.c.name == bindparam("p_name"))
    .with_for_update(read=True)
)
#: Attempts whose call id is unknown, old enough to reconcile: sent (requested_at, set
#: when the answer was lost) before `p_sent_cutoff`, or, never recorded as sent (a
#: crash), claimed before `p_claim_cutoff`. The index ix_call_attempts_unresolved
#: (outcome, provider_call_id, id) reaches them directly, in id order, so the query does
#: not slow down as refused attempts (no call id, FAILED) pile up.
QUEUED_CANDIDATES = (
    select(_R.c.id, _R.c.phone_number, _R.c.name, _R.c.variables, _R.c.attempts)
    .where(_R.c.batch_call_id == bindparam("p_batch"), _R.c.status == QUEUED.value)
    .order_by(_R.c.id)
    .limit(bindparam("p_limit"))
    .with_for_update()
)
INSERT_ATTEMPTS = insert(_A).returning(_A.c.id, _A.c.recipient_id, sort_by_parameter_order=True)


def batch_status_shared(session: Session, batch_id: int) -> str | None:
    """The batch call's status, its row locked against a concurrent action (FOR SHARE on
    PostgreSQL; SQLite's BEGIN IMMEDIATE already excludes every other writer)."""
    return cast(
        "str | None",
        session.connection().execute(BATCH_STATUS_SHARED, {"p_batch": batch_id}).scalar(),
    )


# ---------------------------------------------------------------------- pickup
def due_batch_calls(sessions: sessionmaker[Session], now: datetime) -> list[tuple[int, str]]:
    """SCHEDULED batch calls whose time has come (Send Now: at once)."""
    with sessions() as session:
        rows = session.execute(
            select(BatchCall.id, BatchCall.name)
            .where(
                BatchCall.status == BatchStatus.SCHEDULED.value,
                or_(
                    BatchCall.send_type == SendType.SEND_NOW.value,
                    BatchCall.scheduled_at <= now,
                ),
            )
            .order_by(BatchCall.id)
        ).all()
    return [(row[0], row[1]) for row in rows]


def start_batch_call(sessions: sessionmaker[Session], batch_id: int, now: datetime) -> bool:
    """SCHEDULED -> RUNNING by one conditional UPDATE: of two engines racing for one batch
    call exactly one takes it."""
    moment = bindparam("pickup_now", now, type_=UTCDateTime())
    with sessions.begin() as session:
        result = session.execute(
            update(BatchCall)
            .where(BatchCall.id == batch_id, BatchCall.status == BatchStatus.SCHEDULED.value)
            .values(
                status=RUNNING,
                started_at=func.coalesce(BatchCall.started_at, moment),
                waiting_reason=None,
                updated_at=now,
            )
            .execution_options(synchronize_session=False)
        )
    return bool(result.rowcount == 1)  # type: ignore[attr-defined]


# ---------------------------------------------------------------------- dialing
def active_batches(sessions: sessionmaker[Session]) -> tuple[list[RunningBatch], int]:
    """The RUNNING batch calls, and the lines in use by every batch call (a paused or
    cancelled batch call's calls still hold lines): one query."""
    with sessions() as session:
        rows = session.execute(
            select(
                BatchCall.status,
                BatchCall.id,
                BatchCall.name,
                BatchCall.timezone,
                BatchCall.window_start,
                BatchCall.window_end,
                BatchCall.allowed_days,
                BatchCall.reserved_concurrency,
                BatchCall.pending_count,
                BatchCall.queued_count,
                BatchCall.in_progress_count,
                BatchCall.waiting_reason,
                Agent.kind,
                Agent.value,
                BatchCall.from_number,
            )
            .join(Agent, Agent.id == BatchCall.agent_id)
            .where(or_(BatchCall.status == RUNNING, BatchCall.in_progress_count > 0))
            .order_by(BatchCall.id)
        ).all()
    busy_lines = sum(max(0, row.in_progress_count) for row in rows)
    return [RunningBatch(*row[1:]) for row in rows if row.status == RUNNING], busy_lines


def top_up_queue(sessions: sessionmaker[Session], batch_id: int, wanted: int, now: datetime) -> int:
    """Move the next `wanted` due PENDING recipients to QUEUED (an indexed LIMIT query,
    whatever the number of pending recipients)."""
    with write_transaction(sessions) as session:
        ids = session.scalars(
            select(Recipient.id)
            .where(
                Recipient.batch_call_id == batch_id,
                Recipient.status == PENDING.value,
                or_(Recipient.next_try_at.is_(None), Recipient.next_try_at <= now),
            )
            .order_by(Recipient.id)
            .limit(wanted)
        ).all()
        if not ids:
            return 0
        # Locked (FOR SHARE on PostgreSQL): a Pause committing between this check and
        # the move would otherwise leave its batch call with QUEUED recipients.
        if batch_status_shared(session, batch_id) != RUNNING:
            return 0
        return move_recipients(
            session,
            batch_id,
            [PENDING],
            QUEUED,
            where=[Recipient.id.in_(ids)],
            values={"next_try_at": None},
        )


def requeue_to_pending(sessions: sessionmaker[Session], batch_id: int) -> int:
    """Outside the window QUEUED recipients are no longer due: back to PENDING."""
    with write_transaction(sessions) as session:
        return move_recipients(session, batch_id, [QUEUED], PENDING)


def claim(
    session: Session,
    batch: RunningBatch,
    count: int,
    provider_name: str,
    claimed_at: datetime,
    now: datetime,
    request_for: Any,
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
    """Claims not placed go back to the queue (or PENDING if the batch call stopped)."""
    with write_transaction(sessions) as session:
        for claim_ in claims:
            status = batch_status_shared(session, claim_.batch_id)
            if status is None:
                continue
            void(session, claim_, QUEUED if status == RUNNING else PENDING)
            report.touch(claim_.batch_id)


# ---------------------------------------------------------------------- batch outcomes
def fail_batch_in(session: Session, batch_id: int, reason: str, now: datetime) -> bool:
    result = session.execute(
        update(BatchCall)
        .where(BatchCall.id == batch_id, BatchCall.status == RUNNING)
        .values(
            status=BatchStatus.FAILED.value,
            failure_reason=reason,
            waiting_reason=None,
            finished_at=now,
            updated_at=now,
        )
        .execution_options(synchronize_session=False)
    )
    if result.rowcount != 1:  # type: ignore[attr-defined]
        return False
    move_recipients(session, batch_id, [QUEUED], PENDING)
    return True


def fail_batch(
    sessions: sessionmaker[Session], batch_id: int, reason: str, now: datetime, report: TickReport
) -> None:
    with write_transaction(sessions) as session:
        failed = fail_batch_in(session, batch_id, reason, now)
    if failed:
        report.touch(batch_id)
        log.error("batch call %s failed: %s", batch_id, reason)


def complete(
    sessions: sessionmaker[Session], done: Sequence[int], now: datetime, report: TickReport
) -> None:
    """RUNNING with nothing PENDING, QUEUED or IN_PROGRESS (from the counters) ->
    COMPLETED, by a conditional UPDATE on those counters."""
    for batch_id in done:
        with sessions.begin() as session:
            result = session.execute(
                update(BatchCall)
                .where(
                    BatchCall.id == batch_id,
                    BatchCall.status == RUNNING,
                    BatchCall.pending_count == 0,
                    BatchCall.queued_count == 0,
                    BatchCall.in_progress_count == 0,
                )
                .values(
                    status=BatchStatus.COMPLETED.value,
                    finished_at=now,
                    waiting_reason=None,
                    updated_at=now,
                )
                .execution_options(synchronize_session=False)
            )
        if result.rowcount == 1:  # type: ignore[attr-defined]
            report.touch(batch_id, recipients=False)
            log.info("batch call %s completed", batch_id)


def write_reasons(
    sessions: sessionmaker[Session],
    batches: dict[int, RunningBatch],
    reasons: dict[int, str | None],
    report: TickReport,
) -> None:
    """Only when a reason changes (a write per tick per batch call would be waste)."""
    changes = {
        batch_id: reason
        for batch_id, reason in reasons.items()
        if batch_id in batches and batches[batch_id].waiting_reason != reason
    }
    if not changes:
        return
    with sessions.begin() as session:
        for batch_id, reason in changes.items():
            result = session.execute(
                update(BatchCall)
                .where(BatchCall.id == batch_id, BatchCall.status == RUNNING)
                .values(waiting_reason=reason)
                .execution_options(synchronize_session=False)
            )
            if result.rowcount == 1:  # type: ignore[attr-defined]
                report.touch(batch_id, recipients=False)
                report.waiting_reasons[batch_id] = reason or ""


# ---------------------------------------------------------------------- reconciliation
