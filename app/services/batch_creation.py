"""Creating a batch call: validating the request, then storing the batch call and all its
recipients, or nothing (chunk by chunk, so a million-row import never holds SQLite's
write lock for long), and removing what an interrupted creation left behind."""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, time
from pathlib import Path
from typing import Any, Protocol

from sqlalchemy import delete, insert, update
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session

from app.models import search_keys
from app.models.creation import CreationRequest, creation_problems
from app.models.imports import (
    CLEANUP_LOCK_WAIT_S,
    ImportOwner,
    bounded_lock_wait,
    incomplete_imports_to_remove,
    removable,
)
from app.models.policy import (
    blackout_dates_text,
    parse_blackout_dates,
    parse_retry_outcomes,
    retry_outcomes_text,
    stored_timezones_for_number,
    time_ranges_text,
)
from app.models.schema import Agent, AuditEvent, BatchCall, FromNumber, Recipient
from app.models.snapshots import BatchCallSnapshot, SendType
from app.models.status import BatchStatus, RecipientStatus
from app.models.window import days_to_text, parse_timezone, resolve_local
from app.services.batch_common import (
    BatchCallContext,
    CreationCancelled,
    NotFound,
    ValidationError,
)
from app.services.batch_queries import BatchCallQueries

log = logging.getLogger("app.services.batch_calls")  # one logger for the batch call service

INSERT_CHUNK = 5_000
#: Recipients stored per transaction: few enough that a Cancel or the engine waits well
#: under a second for SQLite's write lock, many enough that a million rows are not a
#: thousand commits (each rewriting the same index pages through the WAL).
COMMIT_ROWS = 50_000
RECIPIENT_INSERT_COLUMNS = (
    "batch_call_id",
    "row_number",
    "phone_number",
    "name",
    "variables",
    "status",
    "attempts",
    "timezones",
    # The search keys (app.models.search_keys): written here because the SQLite path
    # bypasses SQLAlchemy's column defaults.
    "phone_digits_reversed",
    "name_key",
    "name_last_word_key",
)
#: An interrupted creation removes its partial batch call at once, waiting at most this long
#: for a lock; if it cannot, the batch call stays incomplete (never dialed) and the next
#: process removes it.
DISCARD_LOCK_WAIT_S = 5.0


class RecipientInput(Protocol):
    """An accepted recipient row (app.services.csv_import.RecipientRow fits)."""

    @property
    def row_number(self) -> int: ...
    @property
    def phone_number(self) -> str: ...
    @property
    def name(self) -> str | None: ...
    @property
    def variables(self) -> dict[str, str]: ...


@dataclass(frozen=True)
class NewBatchCall:
    name: str
    agent_id: int
    from_number_id: int
    send_type: SendType = SendType.SEND_NOW
    #: For SCHEDULE: the aware instant to start (see scheduled_instant()).
    scheduled_at: datetime | None = None
    timezone: str = "UTC"
    window_start: str = "09:00"
    window_end: str = "18:00"
    allowed_days: frozenset[int] = field(default_factory=lambda: frozenset({1, 2, 3, 4, 5}))
    reserved_concurrency: int = 1
    variable_columns: tuple[str, ...] = ()
    # Campaign policy (SPEC 10): see app.models.creation.CreationRequest for the forms.
    time_ranges: str = ""
    blackout_dates: str = ""
    end_at: datetime | None = None
    local_hours: str = ""
    max_attempts: int = 1
    retry_delay_minutes: int = 60
    retry_outcomes: str = "no-answer,busy"

    def creation_request(self) -> CreationRequest:
        return CreationRequest.of(self)


def scheduled_instant(day: date, at: time, timezone: str) -> datetime:
    """A wall-clock date and time in a timezone as an aware UTC instant."""
    return resolve_local(datetime.combine(day, at), parse_timezone(timezone))


class BatchCallCreation:
    """Creating batch calls. Thread-safe: every call opens its own short sessions."""

    def __init__(self, context: BatchCallContext, queries: BatchCallQueries) -> None:
        self.context = context
        self.queries = queries

    def validate_new(self, spec: NewBatchCall, session: Session) -> dict[str, Any]:
        problems: dict[str, str] = {}
        values: dict[str, Any] = {}
        problems.update(creation_problems(spec.creation_request(), self.context.clock()))
        values["name"] = spec.name.strip()
        agent = session.get(Agent, spec.agent_id)
        if agent is None:
            problems["agent"] = "Choose an agent."
        elif not agent.active:
            problems["agent"] = f'The agent "{agent.name}" is not active; choose an active one.'
        number = session.get(FromNumber, spec.from_number_id)
        if number is None:
            problems["from_number"] = "Choose a from number."
        elif not number.active:
            problems["from_number"] = f"The from number {number.phone_number} is not active."
        else:
            values["from_number"] = number.phone_number
        if problems:
            raise ValidationError(problems)
        return values

    def create(
        self,
        spec: NewBatchCall,
        recipient_chunks: Iterable[Sequence[RecipientInput]],
        *,
        progress: Callable[[int], None] | None = None,
        before_scheduled: Callable[[], None] | None = None,
        cancel: Callable[[], bool] | None = None,
    ) -> BatchCallSnapshot:
        """Store the batch call and all its recipients, or nothing.

        `before_scheduled` runs once every recipient is stored and before the batch call
        can be dialed; if it raises, nothing is kept (the command line refuses a file with
        rejected rows there, after its one pass over the file).

        The batch call is committed first as PENDING with `import_complete` false (visible,
        cancellable, never dialed: app.models.imports), then the recipients are stored chunk
        by chunk, and the transaction that makes it SCHEDULED marks the import complete.
        `cancel` is asked before each commit: once it says yes, the open transaction rolls
        back on its own connection, the partial batch call is removed at once and
        CreationCancelled is raised. If anything fails the same happens; if the process
        dies, the next process removes the incomplete batch call.
        """
        _check(cancel)
        now = self.context.clock()
        with self.context.sessions.begin() as session:
            values = self.validate_new(spec, session)
            request = spec.creation_request()
            ranges = request.ranges()
            local_hours = request.local_hours_rule()
            first = ranges[0]
            batch = BatchCall(
                name=values["name"],
                status=BatchStatus.PENDING.value,
                agent_id=spec.agent_id,
                from_number_id=spec.from_number_id,
                from_number=values["from_number"],
                send_type=SendType(spec.send_type).value,
                scheduled_at=spec.scheduled_at if spec.send_type == SendType.SCHEDULE else None,
                timezone=spec.timezone,
                # The first range also fills the one-window columns older readers know.
                window_start=f"{first.start:%H:%M}",
                window_end=f"{first.end:%H:%M}",
                time_ranges=time_ranges_text(ranges) if spec.time_ranges else None,
                allowed_days=days_to_text(spec.allowed_days),
                blackout_dates=blackout_dates_text(parse_blackout_dates(spec.blackout_dates))
                or None,
                end_at=spec.end_at,
                local_hours_start=f"{local_hours.start:%H:%M}" if local_hours else None,
                local_hours_end=f"{local_hours.end:%H:%M}" if local_hours else None,
                max_attempts=spec.max_attempts,
                retry_delay_minutes=spec.retry_delay_minutes,
                retry_outcomes=retry_outcomes_text(parse_retry_outcomes(spec.retry_outcomes)),
                reserved_concurrency=spec.reserved_concurrency,
                variable_columns=list(spec.variable_columns),
                created_at=now,
                updated_at=now,
                created_by=self.context.actor.user,
                import_heartbeat_at=now,
                import_complete=False,
                import_owner=ImportOwner.current(),
            )
            session.add(batch)
            session.flush()
            batch_id = batch.id
            _check(cancel)
        try:
            total = self._store_recipients(
                batch_id, spec, recipient_chunks, progress, before_scheduled, cancel
            )
        except BaseException:
            removed = self._discard_failed_create(batch_id)
            if cancel is not None and cancel():
                raise CreationCancelled(None if removed else batch_id) from None
            raise
        log.info("created batch call %s with %d recipients", batch_id, total)
        self.context.changed(batch_id)
        return self.queries.get(batch_id)

    def _insert_recipients(
        self,
        batch_id: int,
        rows: list[tuple[Any, ...]],
        cancel: Callable[[], bool] | None = None,
    ) -> int:
        """One transaction: the rows (in RECIPIENT_INSERT_COLUMNS order, variables as JSON
        text), the counters and the import heartbeat. SQLite gets the rows straight through
        its driver's executemany: SQLAlchemy's per-row parameter processing was half of a
        million-row import's time."""
        with self.context.sessions.begin() as session:
            still_there = session.execute(
                update(BatchCall)
                .where(BatchCall.id == batch_id)
                .values(
                    import_heartbeat_at=self.context.clock(),
                    total_recipients=BatchCall.total_recipients + len(rows),
                    pending_count=BatchCall.pending_count + len(rows),
                )
                .execution_options(synchronize_session=False)
            ).rowcount  # type: ignore[attr-defined]
            if not still_there:
                raise NotFound("The batch call was deleted while its recipients were stored.")
            connection = session.connection()
            if connection.dialect.name == "sqlite":
                placeholders = ",".join("?" * len(RECIPIENT_INSERT_COLUMNS))
                cursor = connection.connection.driver_connection.cursor()  # type: ignore[union-attr]
                try:
                    cursor.executemany(
                        f"INSERT INTO recipients ({','.join(RECIPIENT_INSERT_COLUMNS)}) "
                        f"VALUES ({placeholders})",
                        rows,
                    )
                finally:
                    cursor.close()
            else:
                connection.execute(
                    insert(Recipient),
                    [
                        {
                            **dict(zip(RECIPIENT_INSERT_COLUMNS, row, strict=True)),
                            "variables": json.loads(row[4]) if row[4] else None,
                        }
                        for row in rows
                    ],
                )
            _check(cancel)  # before the commit: the chunk rolls back with the rest
        return len(rows)

    def _store_recipients(
        self,
        batch_id: int,
        spec: NewBatchCall,
        recipient_chunks: Iterable[Sequence[RecipientInput]],
        progress: Callable[[int], None] | None,
        before_scheduled: Callable[[], None] | None = None,
        cancel: Callable[[], bool] | None = None,
    ) -> int:
        """Insert the recipients chunk by chunk, each chunk its own short transaction, so a
        million-row import never holds SQLite's write lock for long (a Cancel, or the engine,
        gets in between). Until the last transaction the import is incomplete, which nothing
        dials; the heartbeat and the owner let the next process remove it if this one dies
        before the end."""
        total = 0
        variable_columns: dict[str, None] = dict.fromkeys(spec.variable_columns)
        pending = RecipientStatus.PENDING.value
        dumps = json.dumps
        zones_of = stored_timezones_for_number
        reversed_digits = search_keys.reversed_digits
        name_key = search_keys.name_key
        last_word_key = search_keys.last_word_key
        rows: list[tuple[Any, ...]] = []
        for chunk in recipient_chunks:
            for r in chunk:
                variables = r.variables or None
                if variables:
                    variable_columns.update(dict.fromkeys(variables))
                rows.append(
                    (
                        batch_id,
                        r.row_number,
                        r.phone_number,
                        r.name,
                        dumps(variables) if variables else None,
                        pending,
                        0,
                        zones_of(r.phone_number),
                        reversed_digits(r.phone_number),
                        name_key(r.name),
                        last_word_key(r.name),
                    )
                )
            if len(rows) >= COMMIT_ROWS:
                total += self._insert_recipients(batch_id, rows, cancel)
                rows = []
            if progress:
                progress(total + len(rows))
        if rows:
            total += self._insert_recipients(batch_id, rows, cancel)
        if before_scheduled is not None:
            before_scheduled()
        if total == 0:
            raise ValidationError({"recipients": "No valid recipients: at least one is required."})
        with self.context.sessions.begin() as session:
            # SCHEDULED only if still PENDING: a Cancel committed meanwhile stands.
            session.execute(
                update(BatchCall)
                .where(BatchCall.id == batch_id, BatchCall.status == BatchStatus.PENDING.value)
                .values(status=BatchStatus.SCHEDULED.value)
                .execution_options(synchronize_session=False)
            )
            batch = session.get(BatchCall, batch_id, populate_existing=True)
            if batch is None:
                raise NotFound("The batch call was deleted while its recipients were stored.")
            batch.variable_columns = list(variable_columns)
            batch.import_heartbeat_at = None
            batch.import_complete = True
            batch.import_owner = None
            self.context.audit(
                session,
                batch,
                "CREATE",
                f"{total} recipients; {SendType(spec.send_type).display_name}",
            )
            _check(cancel)
        return total

    def discard_abandoned_imports(self) -> list[int]:
        """Remove the batch calls whose import was interrupted (their process is provably
        gone, or their heartbeat is stale): creation is all or nothing. Never one that
        finished importing or has a call attempt (app.models.imports). Waits at most
        CLEANUP_LOCK_WAIT_S for a lock; what it cannot remove now, a later call removes.
        Returns the ids removed."""
        try:
            with self.context.sessions() as session:
                found = incomplete_imports_to_remove(session, self.context.clock())
        except OperationalError as error:
            log.info("interrupted imports not checked (%s); trying again later", error.orig)
            return []
        removed = []
        for item in found:
            try:
                with (
                    self.context.sessions.begin() as session,
                    bounded_lock_wait(session, CLEANUP_LOCK_WAIT_S),
                ):
                    gone = session.execute(
                        delete(BatchCall)
                        .where(*removable(item))
                        .execution_options(synchronize_session=False)
                    ).rowcount  # type: ignore[attr-defined]
                    if not gone:
                        continue
                    session.execute(delete(Recipient).where(Recipient.batch_call_id == item.id))
                    session.add(
                        AuditEvent(
                            batch_call_id=item.id,
                            batch_call_name=item.name,
                            action="DISCARD",
                            detail="its recipient import was interrupted; nothing was kept",
                            user=self.context.actor.user,
                            host=self.context.actor.host,
                            at=self.context.clock(),
                        )
                    )
            except OperationalError as error:  # busy: the next tick tries again
                log.info("interrupted import %s not removed yet (%s)", item.id, error.orig)
                continue
            log.warning("removed batch call %s: its recipient import was interrupted", item.id)
            removed.append(item.id)
            self.context.changed(item.id)
        return removed

    def _discard_failed_create(self, batch_id: int) -> bool:
        """Remove the partial batch call at once, waiting at most DISCARD_LOCK_WAIT_S for a
        lock. If that fails it stays incomplete (never dialed) for the next process."""
        try:
            with (
                self.context.sessions.begin() as session,
                bounded_lock_wait(session, DISCARD_LOCK_WAIT_S),
            ):
                gone = session.execute(
                    delete(BatchCall).where(
                        BatchCall.id == batch_id, BatchCall.import_complete.is_(False)
                    )
                ).rowcount  # type: ignore[attr-defined]
                if gone:
                    session.execute(delete(Recipient).where(Recipient.batch_call_id == batch_id))
        except OperationalError as error:
            log.warning(
                "the unfinished batch call %s could not be removed now (%s); it is never "
                "dialed and the next start removes it",
                batch_id,
                error.orig,
            )
            self.context.changed(batch_id)
            return False
        self.context.changed(batch_id)
        return True

    def create_from_csv(
        self,
        spec: NewBatchCall,
        path: str | Path,
        options: Any = None,
        *,
        progress: Callable[[int, int], None] | None = None,
        cancel: Callable[[], bool] | None = None,
    ) -> BatchCallSnapshot:
        """Create from a recipients CSV, streamed in chunks (see app.services.csv_import)."""
        from app.services import csv_import

        options = options or csv_import.ImportOptions()
        chunks = csv_import.iter_recipient_chunks(
            path, options, chunk_size=INSERT_CHUNK, progress=progress, cancel=cancel
        )
        return self.create(spec, chunks, cancel=cancel)


def _check(cancel: Callable[[], bool] | None) -> None:
    if cancel is not None and cancel():
        raise CreationCancelled()
