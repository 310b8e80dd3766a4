"""Batch call use cases: create, rename, pause, resume, cancel, retry, delete, and the
queries the list, details and recipients views need.

Each status change is one conditional UPDATE ("... WHERE status IN (allowed)") inside the
transaction that also moves the recipients and writes the audit event, so of two desktops
racing on one batch call exactly one succeeds and the other gets ActionNotAllowed.
"""

from __future__ import annotations

import builtins
import json
import logging
from collections.abc import Callable, Collection, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, time
from enum import StrEnum
from pathlib import Path
from types import SimpleNamespace
from typing import Any, Protocol

from sqlalchemy import (
    ColumnElement,
    and_,
    delete,
    false,
    func,
    insert,
    not_,
    or_,
    select,
    union_all,
    update,
)
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session, sessionmaker

from app.models import search_keys
from app.models.creation import (
    CONCURRENCY_MAX as CONCURRENCY_MAX,  # re-exported: views read it from here
)
from app.models.creation import (
    NAME_MAX as NAME_MAX,  # re-exported: the rename dialog reads it from here
)
from app.models.creation import (
    CreationRequest,
    creation_problems,
    name_problem,
)
from app.models.imports import (
    CLEANUP_LOCK_WAIT_S,
    ImportOwner,
    bounded_lock_wait,
    dialable,
    import_state,
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
    timezones_from_text,
)
from app.models.recipients import COUNT_COLUMNS, counts_of, move_recipients
from app.models.schema import Agent, AuditEvent, BatchCall, CallAttempt, FromNumber, Recipient
from app.models.snapshots import (
    AgentSnapshot,
    AuditSnapshot,
    BatchCallSnapshot,
    FromNumberSnapshot,
    RecipientSnapshot,
    SendType,
)
from app.models.status import (
    DIALING_ACTIONS,
    OPEN_RECIPIENT_STATUSES,
    RETRYABLE_RECIPIENT_STATUSES,
    Action,
    ActionNotAllowed,
    BatchStatus,
    RecipientStatus,
    statuses_allowing,
)
from app.models.window import (
    CallingWindow,
    days_from_text,
    days_to_text,
    parse_timezone,
    resolve_local,
)
from app.services.batch_common import (
    Actor,
    BatchCallContext,
    Clock,
    CreationCancelled,
    NotFound,
    ValidationError,
    utcnow,
)
from app.services.catalog import Catalog, agent_snapshot, number_snapshot
from app.services.placements import calls_being_placed, wait_for_calls_being_placed

log = logging.getLogger(__name__)

__all__ = [  # the names callers import from here, wherever they are defined now
    "COMMIT_ROWS",
    "CONCURRENCY_MAX",
    "DISCARD_LOCK_WAIT_S",
    "INSERT_CHUNK",
    "NAME_MAX",
    "PHONE_CHARS",
    "RECIPIENT_INSERT_COLUMNS",
    "Actor",
    "BatchCallService",
    "Clock",
    "CreationCancelled",
    "NotFound",
    "ValidationError",
    "agent_snapshot",
    "number_snapshot",
    "utcnow",
]

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
PHONE_CHARS = frozenset("+0123456789 -().")
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


def validate_name(name: str) -> str:
    """The trimmed name, or ValidationError: 1 to 100 characters after trimming."""
    problem = name_problem(name)
    if problem:
        raise ValidationError({"name": problem})
    return name.strip()


class RecipientSort(StrEnum):
    ROW = "row"
    PHONE = "phone"
    NAME = "name"
    STATUS = "status"
    ATTEMPTS = "attempts"
    ENDED = "ended"


_SORT_COLUMNS: dict[RecipientSort, Any] = {
    # Recipients are inserted in file order, so the id orders rows like row_number does,
    # and (batch_call_id[, status], id) indexes serve it without a sort.
    RecipientSort.ROW: Recipient.id,
    RecipientSort.PHONE: Recipient.phone_number,
    RecipientSort.NAME: Recipient.name_key,
    RecipientSort.STATUS: Recipient.status,
    RecipientSort.ATTEMPTS: Recipient.attempts,
    RecipientSort.ENDED: Recipient.ended_at,
}


_NULLABLE_SORTS = frozenset({RecipientSort.NAME, RecipientSort.ENDED})


def _sort_value(sort: RecipientSort, recipient: RecipientSnapshot) -> Any:
    """The value of the sorted column for a recipient (what a keyset cursor compares)."""
    if sort is RecipientSort.ROW:
        return recipient.id
    if sort is RecipientSort.PHONE:
        return recipient.phone_number
    if sort is RecipientSort.NAME:
        return search_keys.name_key(recipient.name)
    if sort is RecipientSort.STATUS:
        return RecipientStatus(recipient.status).value
    if sort is RecipientSort.ATTEMPTS:
        return recipient.attempts
    return recipient.ended_at


def _after(sort: RecipientSort, descending: bool, cursor: RecipientSnapshot) -> ColumnElement[bool]:
    """Rows after `cursor` in the order (sorted column, then id; empty values last)."""
    column = _SORT_COLUMNS[sort]
    value = _sort_value(sort, cursor)

    def beyond(a: Any, b: Any) -> ColumnElement[bool]:
        result: ColumnElement[bool] = a < b if descending else a > b
        return result

    if sort is RecipientSort.ROW:
        return beyond(Recipient.id, cursor.id)
    if value is None:  # among the empty values, which come last either way
        return and_(column.is_(None), beyond(Recipient.id, cursor.id))
    after_value = or_(beyond(column, value), and_(column == value, beyond(Recipient.id, cursor.id)))
    if sort in _NULLABLE_SORTS:
        return or_(after_value, column.is_(None))
    return after_value


#: A search matching at least this many recipients is "common": its first page is found
#: by walking the batch call's rows in order (200 matches come quickly), and its count by
#: counting each index range; a rarer one collects its matches from the indexes.
COMMON_SEARCH = 2_000


def search_branches(batch_id: int, text: str) -> list[ColumnElement[bool]]:
    """The ways `text` finds recipients, each a range scan on an index:

    - digits (with spaces, dashes, brackets): numbers that end with them; numbers that
      start with them when the text starts with "+" (an international number);
    - anything else too: names that start with the text, or whose last word does.
    """
    branches: list[ColumnElement[bool]] = []

    def starts_with(column: Any, prefix: str) -> ColumnElement[bool]:
        # The range is what the index serves; LIKE keeps the match exact under any
        # database collation.
        return and_(
            Recipient.batch_call_id == batch_id,
            column >= prefix,
            column < search_keys.prefix_upper_bound(prefix),
            column.startswith(prefix, autoescape=True),
        )

    digits = "".join(ch for ch in text if ch.isdigit())
    if digits and all(ch in PHONE_CHARS for ch in text):
        if text.startswith("+"):
            branches.append(starts_with(Recipient.phone_number, "+" + digits))
        else:
            branches.append(starts_with(Recipient.phone_digits_reversed, digits[::-1]))
    folded = search_keys.name_key(text)
    if folded:
        branches.append(starts_with(Recipient.name_key, folded))
        branches.append(starts_with(Recipient.name_last_word_key, folded))
    return branches


def recipient_search(batch_id: int, text: str, common: bool = False) -> ColumnElement[bool]:
    """Recipients found by `text` (see search_branches). A rare search is a union of index
    range scans (each way its own SELECT, so each uses its own index); a common one is
    the same conditions ORed, which the database checks row by row in the page's order
    and stops after a page."""
    branches = search_branches(batch_id, text)
    if not branches:
        return false()
    if common:
        return or_(*branches)
    selects = [select(Recipient.id).where(b) for b in branches]
    return Recipient.id.in_(union_all(*selects) if len(selects) > 1 else selects[0])


@dataclass(frozen=True)
class RecipientQuery:
    status: RecipientStatus | None = None
    search: str = ""
    sort: RecipientSort = RecipientSort.ROW
    descending: bool = False


@dataclass(frozen=True)
class BatchCallListing:
    """A read of every batch call against what the reader holds (`list_changed`):
    `versions` by id, to hand to the next read, and the snapshots of the rows that are new
    or changed."""

    versions: dict[int, int]
    fresh: list[BatchCallSnapshot]


#: The list's rows as plain Core rows (no mapped objects), newest first: every column a
#: snapshot reads (not the CSV's variable names, a JSON list), and the agent's name.
_LIST_STATEMENT = (
    select(
        *(c for c in BatchCall.__table__.columns if c.name != "variable_columns"),
        Agent.name.label("agent_name_"),
    )
    .join(Agent, Agent.id == BatchCall.agent_id)
    .order_by(BatchCall.created_at.desc(), BatchCall.id.desc())
)


def _listed_snapshot(row: Any, now: datetime) -> BatchCallSnapshot:
    # A namespace's attributes are read faster than a Row's (by name, about 45 per row).
    return batch_snapshot(SimpleNamespace(**row._mapping), agent_name=row.agent_name_, now=now)


def batch_snapshot(
    batch: BatchCall | Any, agent_name: str | None = None, now: datetime | None = None
) -> BatchCallSnapshot:
    """The snapshot of a mapped BatchCall, or of a row of its table's columns read with
    Core (a list of 10,000 skips the ORM) together with the agent's name."""
    return BatchCallSnapshot(
        id=batch.id,
        name=batch.name,
        status=BatchStatus(batch.status),
        agent_id=batch.agent_id,
        agent_name=batch.agent.name if agent_name is None else agent_name,
        from_number=batch.from_number,
        send_type=SendType(batch.send_type),
        scheduled_at=batch.scheduled_at,
        timezone=batch.timezone,
        window_start=batch.window_start,
        window_end=batch.window_end,
        allowed_days=days_from_text(batch.allowed_days),
        reserved_concurrency=batch.reserved_concurrency,
        total_recipients=batch.total_recipients,
        counts=counts_of(batch),
        failure_reason=batch.failure_reason,
        waiting_reason=batch.waiting_reason,
        retry_count=batch.retry_count,
        created_at=batch.created_at,
        started_at=batch.started_at,
        finished_at=batch.finished_at,
        updated_at=batch.updated_at,
        time_ranges=batch.time_ranges or "",
        blackout_dates=batch.blackout_dates or "",
        end_at=batch.end_at,
        local_hours=(
            f"{batch.local_hours_start}-{batch.local_hours_end}"
            if batch.local_hours_start and batch.local_hours_end
            else ""
        ),
        max_attempts=batch.max_attempts,
        retry_delay_minutes=batch.retry_delay_minutes,
        retry_outcomes=batch.retry_outcomes,
        import_state=import_state(
            batch.import_complete is not False,
            batch.import_heartbeat_at,
            batch.import_owner,
            now or utcnow(),
        ),
    )


def recipient_snapshot(r: Recipient) -> RecipientSnapshot:
    return RecipientSnapshot(
        id=r.id,
        row_number=r.row_number,
        phone_number=r.phone_number,
        name=r.name,
        variables=dict(r.variables or {}),
        status=RecipientStatus(r.status),
        attempts=r.attempts,
        last_error=r.last_error,
        provider_call_id=r.provider_call_id,
        requested_at=r.requested_at,
        answered_at=r.answered_at,
        ended_at=r.ended_at,
        duration_seconds=r.duration_seconds,
        answered_by=r.answered_by,
        timezones=timezones_from_text(r.timezones),
        next_try_at=r.next_try_at,
    )


class BatchCallService:
    """The batch call use cases. Thread-safe: every call opens its own short session."""

    def __init__(
        self,
        sessions: sessionmaker[Session],
        *,
        clock: Clock = utcnow,
        actor: Actor | None = None,
        on_change: Callable[[int], None] | None = None,
    ):
        self._context = BatchCallContext(sessions, clock, actor or Actor.current(), on_change)
        self.catalog = Catalog(sessions)
        #: How many calls the dialer was already placing when the last Pause, Cancel or
        #: Delete committed (it waited for them: none starts after it answered).
        self.calls_waited_for = 0

    @property
    def sessions(self) -> sessionmaker[Session]:
        return self._context.sessions

    @property
    def clock(self) -> Clock:
        return self._context.clock

    @clock.setter
    def clock(self, clock: Clock) -> None:
        self._context.clock = clock

    @property
    def actor(self) -> Actor:
        return self._context.actor

    @actor.setter
    def actor(self, actor: Actor) -> None:
        self._context.actor = actor

    @property
    def on_change(self) -> Callable[[int], None] | None:
        """Told the id of every batch call an action changed (the GUI turns it into a signal)."""
        return self._context.on_change

    @on_change.setter
    def on_change(self, on_change: Callable[[int], None] | None) -> None:
        self._context.on_change = on_change

    # ----------------------------------------------------------------- creation
    def validate_new(self, spec: NewBatchCall, session: Session) -> dict[str, Any]:
        problems: dict[str, str] = {}
        values: dict[str, Any] = {}
        problems.update(creation_problems(spec.creation_request(), self.clock()))
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
        now = self.clock()
        with self.sessions.begin() as session:
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
                created_by=self.actor.user,
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
        self._context.changed(batch_id)
        return self.get(batch_id)

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
        with self.sessions.begin() as session:
            still_there = session.execute(
                update(BatchCall)
                .where(BatchCall.id == batch_id)
                .values(
                    import_heartbeat_at=self.clock(),
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
        with self.sessions.begin() as session:
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
            self._context.audit(
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
            with self.sessions() as session:
                found = incomplete_imports_to_remove(session, self.clock())
        except OperationalError as error:
            log.info("interrupted imports not checked (%s); trying again later", error.orig)
            return []
        removed = []
        for item in found:
            try:
                with (
                    self.sessions.begin() as session,
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
                            user=self.actor.user,
                            host=self.actor.host,
                            at=self.clock(),
                        )
                    )
            except OperationalError as error:  # busy: the next tick tries again
                log.info("interrupted import %s not removed yet (%s)", item.id, error.orig)
                continue
            log.warning("removed batch call %s: its recipient import was interrupted", item.id)
            removed.append(item.id)
            self._context.changed(item.id)
        return removed

    def _discard_failed_create(self, batch_id: int) -> bool:
        """Remove the partial batch call at once, waiting at most DISCARD_LOCK_WAIT_S for a
        lock. If that fails it stays incomplete (never dialed) for the next process."""
        try:
            with self.sessions.begin() as session, bounded_lock_wait(session, DISCARD_LOCK_WAIT_S):
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
            self._context.changed(batch_id)
            return False
        self._context.changed(batch_id)
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

    # ----------------------------------------------------------------- actions
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
            .values(updated_at=self.clock(), **values)
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
        with self.sessions.begin() as session:
            batch = self._transition(session, batch_id, action, values, extra)
            if after:
                after(session)
            session.refresh(batch)
            self._context.audit(session, batch, action.value, detail)
            snapshot = batch_snapshot(batch, now=self.clock())
        self._context.changed(batch_id)
        return snapshot

    def _requeue(self, batch_id: int) -> Callable[[Session], None]:
        """QUEUED recipients go back to PENDING: they were due, not called."""

        def move(session: Session) -> None:
            move_recipients(session, batch_id, [RecipientStatus.QUEUED], RecipientStatus.PENDING)

        return move

    def rename(self, batch_id: int, name: str) -> BatchCallSnapshot:
        new_name = validate_name(name)
        with self.sessions.begin() as session:
            batch = session.get(BatchCall, batch_id, with_for_update=True)
            if batch is None:
                raise ActionNotAllowed(Action.RENAME, None)
            old = batch.name
            batch.name = new_name
            batch.updated_at = self.clock()
            self._context.audit(session, batch, Action.RENAME.value, f'from "{old}"')
            session.flush()
            snapshot = batch_snapshot(batch, now=self.clock())
        self._context.changed(batch_id)
        return snapshot

    def pause(self, batch_id: int) -> BatchCallSnapshot:
        snapshot = self._act(
            batch_id,
            Action.PAUSE,
            {
                "status": BatchStatus.PAUSED.value,
                "waiting_reason": f"Paused by {self.actor.user}.",
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
                "finished_at": self.clock(),
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
        waited = wait_for_calls_being_placed(self.sessions, batch_id, seen=seen)
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
        with self.sessions.begin() as session:
            batch = session.get(BatchCall, batch_id, with_for_update=True)
            if batch is None:
                raise ActionNotAllowed(Action.DELETE, None)
            self._context.audit(
                session, batch, Action.DELETE.value, f"{batch.total_recipients} recipients"
            )
            being_placed = calls_being_placed(session, batch_id)
            session.execute(delete(CallAttempt).where(CallAttempt.batch_call_id == batch_id))
            session.execute(delete(Recipient).where(Recipient.batch_call_id == batch_id))
            session.execute(delete(BatchCall).where(BatchCall.id == batch_id))
        self._await_calls_being_placed(batch_id, Action.DELETE, seen=being_placed)
        self._context.changed(batch_id)

    def perform(self, batch_id: int, action: Action) -> BatchCallSnapshot | None:
        """Run a status action by its enum (menus and the command line use this)."""
        if action is Action.RELOAD:
            return self.get(batch_id)
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

    # ----------------------------------------------------------------- queries
    def get(self, batch_id: int) -> BatchCallSnapshot:
        with self.sessions() as session:
            batch = session.get(BatchCall, batch_id)
            if batch is None:
                raise NotFound(f"No batch call with id {batch_id}.")
            return batch_snapshot(batch, now=self.clock())

    def find(self, batch_id: int) -> BatchCallSnapshot | None:
        try:
            return self.get(batch_id)
        except NotFound:
            return None

    def list(self, search: str = "") -> builtins.list[BatchCallSnapshot]:
        """Every batch call, newest first; `search` matches names case-insensitively."""
        stmt = _LIST_STATEMENT
        if search.strip():
            stmt = stmt.where(
                func.lower(BatchCall.name).contains(search.strip().lower(), autoescape=True)
            )
        now = self.clock()
        with self.sessions() as session:
            return [_listed_snapshot(row, now) for row in session.execute(stmt)]

    def list_changed(
        self, versions: Mapping[int, int] | None = None, stale: Collection[int] = ()
    ) -> BatchCallListing:
        """Every batch call's row version, and the snapshots of those not as `versions`
        (from the previous read) had them, or named in `stale`: a poll of 10,000 batch
        calls of which ten changed builds ten snapshots, not 10,000. A batch call still
        importing is always fresh (whether its import is alive depends on the time)."""
        known = versions or {}
        now = self.clock()
        seen: dict[int, int] = {}
        fresh: builtins.list[BatchCallSnapshot] = []
        with self.sessions() as session:
            for row in session.execute(_LIST_STATEMENT):
                # Every column and the agent's name: any change gives another version.
                version = seen[row.id] = hash(row)
                if known.get(row.id) != version or row.id in stale or row.import_complete is False:
                    fresh.append(_listed_snapshot(row, now))
        return BatchCallListing(seen, fresh)

    def resolve(self, reference: str) -> BatchCallSnapshot:
        """A batch call by id, or by its exact (case-insensitive) name if unique."""
        text = reference.strip()
        if text and text.isascii() and text.isdigit():
            if len(text) > 18:  # beyond any stored id (64-bit), and beyond SQLite's integers
                raise NotFound(f"No batch call with id {text}.")
            return self.get(int(text))
        with self.sessions() as session:
            matches = session.scalars(
                select(BatchCall).where(func.lower(BatchCall.name) == reference.strip().lower())
            ).all()
            if not matches:
                raise NotFound(f'No batch call named "{reference}".')
            if len(matches) > 1:
                ids = ", ".join(str(b.id) for b in matches)
                raise NotFound(
                    f'Several batch calls are named "{reference}" (ids {ids}); use an id.'
                )
            return batch_snapshot(matches[0], now=self.clock())

    def _recipient_filter(
        self, batch_id: int, query: RecipientQuery, common: bool = False
    ) -> builtins.list[ColumnElement[bool]]:
        conditions: list[ColumnElement[bool]] = [Recipient.batch_call_id == batch_id]
        if query.status is not None:
            conditions.append(Recipient.status == RecipientStatus(query.status).value)
        text = query.search.strip()
        if text:
            conditions.append(recipient_search(batch_id, text, common))
        return conditions

    def _common_search(self, session: Session, batch_id: int, text: str) -> bool:
        """Whether `text` matches COMMON_SEARCH recipients or more (a few capped index
        range counts, a millisecond or two)."""
        found = 0
        for branch in search_branches(batch_id, text):
            capped = select(Recipient.id).where(branch).limit(COMMON_SEARCH).subquery()
            found += int(session.scalar(select(func.count()).select_from(capped)) or 0)
            if found >= COMMON_SEARCH:
                return True
        return False

    def _count_search(self, session: Session, batch_id: int, query: RecipientQuery) -> int:
        """Matches of a search: each index range counted on its own, a recipient found by
        two ways counted once (its later way excludes the earlier ones' ranges)."""
        branches = search_branches(batch_id, query.search.strip())
        status = (
            [Recipient.status == RecipientStatus(query.status).value]
            if query.status is not None
            else []
        )
        total = 0
        found_by: list[ColumnElement[bool]] = []  # earlier ways that found someone
        for branch in branches:
            earlier = [not_(b) for b in found_by]
            found = int(
                session.scalar(
                    select(func.count())
                    .select_from(Recipient)
                    .where(branch, *status, *[or_(e, e.is_(None)) for e in earlier])
                )
                or 0
            )
            if found:
                found_by.append(branch)
            total += found
        return total

    def count_recipients(self, batch_id: int, query: RecipientQuery = RecipientQuery()) -> int:
        """How many recipients match: a search counts its index ranges (10-400 ms at a
        million recipients and 100,000 matches or more), the rest reads the counters."""
        if query.search.strip():
            with self.sessions() as session:
                return self._count_search(session, batch_id, query)
        return self.stored_count(batch_id, query) or 0

    def stored_count(self, batch_id: int, query: RecipientQuery = RecipientQuery()) -> int | None:
        """The count the counters kept with every status change answer at once (all, or one
        status: never a count of the rows); None for a search, which only
        `count_recipients` counts (a view shows its first page before)."""
        if query.search.strip():
            return None
        with self.sessions() as session:
            batch = session.get(BatchCall, batch_id)
            if batch is None:
                return 0
            if query.status is None:
                return int(batch.total_recipients)
            return int(getattr(batch, COUNT_COLUMNS[RecipientStatus(query.status)].key))

    def recipients_page(
        self,
        batch_id: int,
        query: RecipientQuery = RecipientQuery(),
        offset: int = 0,
        limit: int = 200,
        *,
        after: RecipientSnapshot | None = None,
    ) -> builtins.list[RecipientSnapshot]:
        """A page of recipients in the query's order: the page that follows the recipient
        `after` (keyset paging: as fast at row 900,000 as at row 0), else from `offset`."""
        sort = RecipientSort(query.sort)
        column = _SORT_COLUMNS[sort]
        ordered = column.desc() if query.descending else column.asc()
        # Empty names and times sort last either way, on SQLite and PostgreSQL alike.
        order = [ordered.nulls_last()] if sort in _NULLABLE_SORTS else [ordered]
        if sort is RecipientSort.ROW:
            order = []
        tiebreak = Recipient.id.desc() if query.descending else Recipient.id.asc()
        with self.sessions() as session:
            common = bool(query.search.strip()) and self._common_search(
                session, batch_id, query.search.strip()
            )
        conditions = self._recipient_filter(batch_id, query, common=common)
        if after is not None:
            conditions.append(_after(sort, query.descending, after))
            offset = 0
        stmt = (
            select(Recipient)
            .where(*conditions)
            .order_by(*order, tiebreak)
            .offset(offset)
            .limit(limit)
        )
        with self.sessions() as session:
            return [recipient_snapshot(r) for r in session.scalars(stmt)]

    def recipient_at(
        self, batch_id: int, query: RecipientQuery, position: int
    ) -> RecipientSnapshot | None:
        """The recipient at `position` (0-based) in the query's order, or None (a cursor for
        `recipients_page(after=...)`; reading it counts the rows before it once)."""
        page = self.recipients_page(batch_id, query, offset=position, limit=1)
        return page[0] if page else None

    def recipients_by_id(self, batch_id: int, ids: Sequence[int]) -> dict[int, RecipientSnapshot]:
        """The current state of these recipients of the batch call (a live refresh of the
        rows a view shows, whatever page they came from)."""
        if not ids:
            return {}
        stmt = select(Recipient).where(
            Recipient.batch_call_id == batch_id, Recipient.id.in_(list(ids))
        )
        with self.sessions() as session:
            return {r.id: recipient_snapshot(r) for r in session.scalars(stmt)}

    def iter_recipients(
        self, batch_id: int, query: RecipientQuery = RecipientQuery(), chunk: int = 5_000
    ) -> Iterator[RecipientSnapshot]:
        """Every matching recipient in row order, read in keyset pages (memory stays flat)."""
        last_id = 0
        conditions = self._recipient_filter(batch_id, query)
        while True:
            with self.sessions() as session:
                rows = session.scalars(
                    select(Recipient)
                    .where(*conditions, Recipient.id > last_id)
                    .order_by(Recipient.id)
                    .limit(chunk)
                ).all()
                snapshots = [recipient_snapshot(r) for r in rows]
            if not snapshots:
                return
            yield from snapshots
            last_id = snapshots[-1].id

    def export_recipients(
        self, batch_id: int, path: str | Path, query: RecipientQuery = RecipientQuery()
    ) -> int:
        """Write the recipients (with outcomes and variables) to a CSV; returns the count."""
        from app.services.csv_export import export_recipients

        with self.sessions() as session:
            batch = session.get(BatchCall, batch_id)
            if batch is None:
                raise NotFound(f"No batch call with id {batch_id}.")
            variables = list(batch.variable_columns or [])
        # A CSV column named like an outcome column ("status") is exported as "var_status".
        headers = {v: f"var_{v}" if v in EXPORT_FIXED_COLUMNS else v for v in variables}
        columns = [*EXPORT_COLUMNS, *headers.values()]

        def rows() -> Iterator[dict[str, object]]:
            for r in self.iter_recipients(batch_id, query):
                row: dict[str, object] = {
                    "phone_number": r.phone_number,
                    "name": r.name or "",
                    "status": r.status.value,
                    "attempts": r.attempts,
                    "last_error": r.last_error or "",
                    "provider_call_id": r.provider_call_id or "",
                    "requested_at": _iso(r.requested_at),
                    "answered_at": _iso(r.answered_at),
                    "ended_at": _iso(r.ended_at),
                    "duration_seconds": "" if r.duration_seconds is None else r.duration_seconds,
                    "answered_by": r.answered_by or "",
                    # "Skipped: do not call", "Expired", "Waiting for retry" as shown.
                    "status_display": r.status.display_name,
                    "next_attempt_at": _iso(r.next_try_at)
                    if r.status is RecipientStatus.WAITING_RETRY
                    else "",
                    "timezones": " ".join(r.timezones),
                }
                for key, header in headers.items():
                    row[header] = r.variables.get(key, "")
                yield row

        return export_recipients(rows(), columns, path)

    def call_attempts(self, recipient_id: int) -> builtins.list[dict[str, Any]]:
        with self.sessions() as session:
            attempts = session.scalars(
                select(CallAttempt)
                .where(CallAttempt.recipient_id == recipient_id)
                .order_by(CallAttempt.attempt_number)
            ).all()
            return [
                {
                    "attempt": a.attempt_number,
                    "provider_call_id": a.provider_call_id,
                    "provider_status": a.provider_status,
                    "outcome": a.outcome,
                    "error": a.error,
                    "requested_at": a.requested_at,
                    "answered_at": a.answered_at,
                    "ended_at": a.ended_at,
                    "duration_seconds": a.duration_seconds,
                    "answered_by": a.answered_by,
                }
                for a in attempts
            ]

    def outcomes_since(
        self, batch_id: int, since: datetime
    ) -> builtins.list[tuple[datetime, RecipientStatus]]:
        """(end time, outcome) of the batch call's calls that ended at or after `since`
        (the Summary's rate, estimate and chart)."""
        stmt = select(CallAttempt.ended_at, CallAttempt.outcome).where(
            CallAttempt.batch_call_id == batch_id,
            CallAttempt.outcome.is_not(None),
            CallAttempt.ended_at >= since,
        )
        with self.sessions() as session:
            return [
                (ended, RecipientStatus(outcome))
                for ended, outcome in session.execute(stmt)
                if ended is not None and outcome in RecipientStatus.__members__
            ]

    def history(self, batch_id: int) -> builtins.list[AuditSnapshot]:
        with self.sessions() as session:
            events = session.scalars(
                select(AuditEvent)
                .where(AuditEvent.batch_call_id == batch_id)
                .order_by(AuditEvent.at, AuditEvent.id)
            ).all()
            return [
                AuditSnapshot(
                    id=e.id,
                    batch_call_id=e.batch_call_id,
                    batch_call_name=e.batch_call_name,
                    action=e.action,
                    detail=e.detail,
                    user=e.user,
                    host=e.host,
                    at=e.at,
                )
                for e in events
            ]

    def calling_window(self, batch_id: int) -> CallingWindow:
        b = self.get(batch_id)
        return CallingWindow.from_text(
            b.timezone, b.window_start, b.window_end, days_to_text(b.allowed_days)
        )

    # ----------------------------------------------------------------- agents and numbers
    def add_agent(self, name: str, kind: str, value: str, active: bool = True) -> AgentSnapshot:
        return self.catalog.add_agent(name, kind, value, active)

    def set_agent_active(self, agent_id: int, active: bool) -> AgentSnapshot:
        return self.catalog.set_agent_active(agent_id, active)

    def list_agents(self, active_only: bool = False) -> builtins.list[AgentSnapshot]:
        return self.catalog.list_agents(active_only)

    def add_from_number(
        self, phone_number: str, label: str = "", source: str = "simulated"
    ) -> FromNumberSnapshot:
        return self.catalog.add_from_number(phone_number, label, source)

    def list_from_numbers(self, active_only: bool = False) -> builtins.list[FromNumberSnapshot]:
        return self.catalog.list_from_numbers(active_only)

    def open_recipient_count(self, batch_id: int) -> int:
        b = self.get(batch_id)
        return sum(b.counts[s] for s in OPEN_RECIPIENT_STATUSES)


EXPORT_COLUMNS = (
    "phone_number",
    "name",
    "status",
    "attempts",
    "last_error",
    "provider_call_id",
    "requested_at",
    "answered_at",
    "ended_at",
    "duration_seconds",
    "answered_by",
    "status_display",
    "next_attempt_at",
    "timezones",
)
EXPORT_FIXED_COLUMNS = frozenset(EXPORT_COLUMNS)


def _check(cancel: Callable[[], bool] | None) -> None:
    if cancel is not None and cancel():
        raise CreationCancelled()


def _iso(value: datetime | None) -> str:
    return value.isoformat() if value else ""
