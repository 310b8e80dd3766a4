"""The engine's store: its connections and the named queries and writes about batch
calls (pickup, queues, outcomes, waiting reasons); claiming recipients is in
`claiming`, call attempts are in `attempts`.

Hot-path statements are built once (SQLAlchemy then reuses their compiled form and cache
key) and run on the session's Connection (Core), not through the ORM. Every query is an
indexed LIMIT or reads the per-status counters, so a tick costs the same with a thousand
or a million pending recipients. Each function runs inside the caller's transaction
unless its name says it opens one (`sessions` argument).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from datetime import datetime
from typing import Any, cast

from sqlalchemy import Engine, Table, bindparam, event, func, or_, select, update
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session, sessionmaker

from app.models.db import make_engine, migrate
from app.models.imports import dialable, dialing_status
from app.models.recipients import move_recipients
from app.models.schema import Agent, BatchCall, Recipient, UTCDateTime
from app.models.snapshots import SendType
from app.models.status import BatchStatus, RecipientStatus
from app.services.engine.planning import RunningBatch
from app.services.engine.state import TickReport
from app.services.lease import write_transaction

log = logging.getLogger(__name__)

RUNNING = BatchStatus.RUNNING.value
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


BATCH_STATUS_SHARED = (
    select(_B.c.status).where(_B.c.id == bindparam("p_batch")).with_for_update(read=True)
)


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
                dialable(),  # an interrupted import is never dialed (app.models.imports)
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
            .where(
                BatchCall.id == batch_id,
                BatchCall.status == BatchStatus.SCHEDULED.value,
                dialable(),
            )
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
                dialing_status(),  # NULL, never RUNNING, while its import is incomplete
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
                BatchCall.time_ranges,
                BatchCall.blackout_dates,
                BatchCall.end_at,
                BatchCall.local_hours_start,
                BatchCall.local_hours_end,
                BatchCall.waiting_retry_count,
            )
            .join(Agent, Agent.id == BatchCall.agent_id)
            .where(or_(BatchCall.status == RUNNING, BatchCall.in_progress_count > 0))
            .order_by(BatchCall.id)
        ).all()
    busy_lines = sum(max(0, row.in_progress_count) for row in rows)
    return [RunningBatch(*row[1:]) for row in rows if row.status == RUNNING], busy_lines


def _due(
    batch_id: int,
    status: RecipientStatus,
    now: datetime,
    open_zones: Sequence[str] | None,
    limit: int,
) -> list[Any]:
    """Queries for the next `limit` recipients in `status` whose next try time has come
    and, with recipient-local hours (`open_zones`: the stored timezone forms inside them
    now), whose local hours are open or unknown. With local hours the index
    ix_recipients_due (batch_call_id, status, timezones, next_try_at) is sought once for
    the unknown timezones and once per open form (an IN list, no ORDER BY), so the query
    stops at `limit` however many recipients wait for their hours."""
    conditions = [
        Recipient.batch_call_id == batch_id,
        Recipient.status == status.value,
        or_(Recipient.next_try_at.is_(None), Recipient.next_try_at <= now),
    ]
    if open_zones is None:
        return [select(Recipient.id).where(*conditions).order_by(Recipient.id).limit(limit)]
    due = select(Recipient.id)
    return [
        due.where(*conditions, Recipient.timezones.is_(None)).limit(limit),
        due.where(*conditions, Recipient.timezones.in_(list(open_zones))).limit(limit),
    ]


def top_up_queue(
    sessions: sessionmaker[Session],
    batch_id: int,
    wanted: int,
    now: datetime,
    open_zones: Sequence[str] | None = None,
    waiting_retry: bool = False,
) -> int:
    """Move the next `wanted` due recipients to QUEUED: first those WAITING_RETRY whose
    delay is over, then PENDING ones (indexed LIMIT queries, whatever the number of
    pending recipients). With recipient-local hours only those inside them (see `_due`)."""
    moved = 0
    sources = ([RecipientStatus.WAITING_RETRY] if waiting_retry else []) + [PENDING]
    with write_transaction(sessions) as session:
        for source in sources:
            if moved >= wanted:
                break
            ids: list[int] = []
            for query in _due(batch_id, source, now, open_zones, wanted - moved):
                if len(ids) < wanted - moved:
                    ids += session.scalars(query.limit(wanted - moved - len(ids))).all()
            if not ids:
                continue
            # Locked (FOR SHARE on PostgreSQL): a Pause committing between this check and
            # the move would otherwise leave its batch call with QUEUED recipients.
            if batch_status_shared(session, batch_id) != RUNNING:
                return moved
            moved += move_recipients(
                session,
                batch_id,
                [source],
                QUEUED,
                where=[Recipient.id.in_(ids)],
                values={"next_try_at": None},
            )
    return moved


def requeue_outside_local_hours(
    sessions: sessionmaker[Session], batch_id: int, closed_zones: Sequence[str]
) -> int:
    """QUEUED recipients whose local hours have closed go back to PENDING (the queue is a
    few rows: an index seek per closed form)."""
    if not closed_zones:
        return 0
    closed = Recipient.timezones.in_(list(closed_zones))
    with sessions() as session:  # a read first: most ticks have nothing to give back
        found = session.scalar(
            select(Recipient.id)
            .where(Recipient.batch_call_id == batch_id, Recipient.status == QUEUED.value, closed)
            .limit(1)
        )
    if found is None:
        return 0
    with write_transaction(sessions) as session:
        return move_recipients(
            session,
            batch_id,
            [QUEUED],
            PENDING,
            where=[closed],
        )


def expire_batch(
    sessions: sessionmaker[Session], batch_id: int, now: datetime, report: TickReport
) -> int:
    """SPEC 10: past the end date, the recipients not reached (PENDING, QUEUED, waiting for
    a retry) end EXPIRED; calls in progress finish and are recorded."""
    with write_transaction(sessions) as session:
        if batch_status_shared(session, batch_id) != RUNNING:
            return 0
        moved = move_recipients(
            session,
            batch_id,
            [PENDING, QUEUED, RecipientStatus.WAITING_RETRY],
            RecipientStatus.EXPIRED,
            values={"last_error": "Not reached before the batch call's end date.", "ended_at": now},
        )
    if moved:
        report.touch(batch_id)
        log.info("batch call %s passed its end date: %d recipients expired", batch_id, moved)
    return moved


def waiting_for_local_hours(
    sessions: sessionmaker[Session], batch_id: int, closed_zones: Sequence[str]
) -> tuple[int, list[str]]:
    """How many PENDING recipients wait for their local hours, and which of the closed
    timezone forms they have (an index range count per form)."""
    waiting = 0
    present: list[str] = []
    with sessions() as session:
        for text in closed_zones:
            n = session.scalar(
                select(func.count())
                .select_from(Recipient)
                .where(
                    Recipient.batch_call_id == batch_id,
                    Recipient.status == PENDING.value,
                    Recipient.timezones == text,
                )
            )
            if n:
                waiting += int(n)
                present.append(text)
    return waiting, present


def next_retry_at(sessions: sessionmaker[Session], batch_id: int) -> datetime | None:
    """When the earliest recipient waiting for another attempt is due."""
    with sessions() as session:
        return cast(
            "datetime | None",
            session.scalar(
                select(func.min(Recipient.next_try_at)).where(
                    Recipient.batch_call_id == batch_id,
                    Recipient.status == RecipientStatus.WAITING_RETRY.value,
                )
            ),
        )


def requeue_to_pending(sessions: sessionmaker[Session], batch_id: int) -> int:
    """Outside the window QUEUED recipients are no longer due: back to PENDING."""
    with write_transaction(sessions) as session:
        return move_recipients(session, batch_id, [QUEUED], PENDING)


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
                    BatchCall.waiting_retry_count == 0,
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
