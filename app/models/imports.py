"""Import completeness: a batch call is dialable only once all its recipients are stored.

SPEC section 3: a batch call whose recipients were not all stored is never dialed, whatever
is done to it. Creation stores the batch call with `import_complete = False`, then the
recipients chunk by chunk (short transactions, so a large import never holds SQLite's write
lock for long), renewing `import_heartbeat_at` and naming its process in `import_owner`;
the transaction that makes it SCHEDULED sets `import_complete`. The flag, not the status,
says whether the recipients are all there: Retry and Resume refuse an incomplete batch call,
and the pickup and the dialer select only `dialable()` ones.

An incomplete import whose process is gone (checked on the same machine) or, where that
cannot be checked (another machine), whose heartbeat is stale was interrupted: the next
process removes it, unless it somehow has call attempts (then it stays, refused, for the
supervisor to delete).
"""

from __future__ import annotations

import os
import socket
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from pathlib import Path

from sqlalchemy import ColumnElement, case, exists, null, select, text
from sqlalchemy.orm import Session

from app.models.schema import BatchCall, CallAttempt

#: An import renews its heartbeat with every chunk (well under a second each); one this
#: old belongs to a process that died, on a machine that cannot check the process itself.
IMPORT_STALE_AFTER = timedelta(minutes=2)
#: How long the clean-up waits for a database lock before trying again on a later tick.
CLEANUP_LOCK_WAIT_S = 2.0


class ImportState(StrEnum):
    """Where a batch call's recipient import stands."""

    COMPLETE = "COMPLETE"
    #: Recipients are being stored by a live process.
    IMPORTING = "IMPORTING"
    #: The importing process stopped before the end: never dialed, removed by the clean-up.
    INTERRUPTED = "INTERRUPTED"


def dialable() -> ColumnElement[bool]:
    """The condition every query that may lead to dialing a batch call adds."""
    return BatchCall.import_complete.is_(True)


def dialing_status() -> ColumnElement[str | None]:
    """The status as the dialer must see it: NULL (never RUNNING) while incomplete."""
    return case((dialable(), BatchCall.status), else_=null()).label("status")


def has_call_attempts() -> ColumnElement[bool]:
    return exists().where(CallAttempt.batch_call_id == BatchCall.id)


# --------------------------------------------------------------------------- owner
def _read(path: str) -> str | None:
    try:
        return Path(path).read_text(encoding="ascii").strip()
    except (OSError, UnicodeDecodeError):
        return None


def _machine() -> str | None:
    """This boot of this machine and this PID namespace (Linux), or None elsewhere: a PID
    means the same process only within both."""
    boot = _read("/proc/sys/kernel/random/boot_id")
    try:
        namespace = os.readlink("/proc/self/ns/pid")
    except OSError:
        return None
    return f"{boot}{namespace}" if boot else None


def _started(pid: int) -> str | None:
    """The process's start time in clock ticks since boot (tells a reused PID apart)."""
    stat = _read(f"/proc/{pid}/stat")
    if stat is None:
        return None
    fields = stat.rpartition(")")[2].split()
    return fields[19] if len(fields) > 19 else None


@dataclass(frozen=True)
class ImportOwner:
    """The process that stores a batch call's recipients."""

    machine: str
    pid: int
    started: str
    host: str

    def text(self) -> str:
        return f"{self.machine}|{self.pid}|{self.started}|{self.host}"[:200]

    @classmethod
    def parse(cls, value: str | None) -> ImportOwner | None:
        parts = (value or "").split("|")
        if len(parts) != 4 or not parts[1].isdigit():
            return None
        return cls(parts[0], int(parts[1]), parts[2], parts[3])

    @classmethod
    def current(cls) -> str:
        """This process, as stored in `import_owner`."""
        pid = os.getpid()
        return cls(_machine() or "", pid, _started(pid) or "", socket.gethostname()[:100]).text()

    def alive(self) -> bool | None:
        """Whether that process still runs, when this is provably the same machine (boot
        and PID namespace) and it can be checked; None otherwise (the heartbeat tells)."""
        here = _machine()
        if not here or not self.machine or here != self.machine or not self.started:
            return None
        return _started(self.pid) == self.started

    def provably_gone(self) -> bool:
        return self.alive() is False


def import_state(
    complete: bool, heartbeat_at: datetime | None, owner: str | None, now: datetime
) -> ImportState:
    """The process itself when it can be checked (this machine), else the heartbeat."""
    if complete:
        return ImportState.COMPLETE
    parsed = ImportOwner.parse(owner)
    alive = parsed.alive() if parsed is not None else None
    if alive is None:
        alive = heartbeat_at is not None and heartbeat_at >= now - IMPORT_STALE_AFTER
    return ImportState.IMPORTING if alive else ImportState.INTERRUPTED


@dataclass(frozen=True)
class InterruptedImport:
    id: int
    name: str
    #: The heartbeat seen; the removal re-checks it, so an import that went on is kept.
    heartbeat_at: datetime | None


def incomplete_imports_to_remove(session: Session, now: datetime) -> list[InterruptedImport]:
    """Interrupted imports the clean-up may remove: never one that finished importing,
    never one with a call attempt (see `removable()`)."""
    rows = session.execute(
        select(
            BatchCall.id,
            BatchCall.name,
            BatchCall.import_heartbeat_at,
            BatchCall.import_owner,
        )
        .where(BatchCall.import_complete.is_(False), ~has_call_attempts())
        .order_by(BatchCall.id)
    ).all()
    return [
        InterruptedImport(row.id, row.name, row.import_heartbeat_at)
        for row in rows
        if import_state(False, row.import_heartbeat_at, row.import_owner, now)
        is ImportState.INTERRUPTED
    ]


def removable(found: InterruptedImport) -> list[ColumnElement[bool]]:
    """The conditions a DELETE of an interrupted import repeats in the database."""
    heartbeat = (
        BatchCall.import_heartbeat_at.is_(None)
        if found.heartbeat_at is None
        else BatchCall.import_heartbeat_at == found.heartbeat_at
    )
    return [
        BatchCall.id == found.id,
        BatchCall.import_complete.is_(False),
        heartbeat,
        ~has_call_attempts(),
    ]


@contextmanager
def bounded_lock_wait(session: Session, seconds: float) -> Iterator[None]:
    """Inside, the session's statements wait at most `seconds` for a lock (SQLite's busy
    timeout, PostgreSQL's lock_timeout) and then fail with OperationalError, instead of
    the long wait the connection otherwise allows. Use it on a fresh transaction."""
    connection = session.connection()
    millis = max(1, int(seconds * 1000))
    if connection.dialect.name == "sqlite":
        previous = connection.exec_driver_sql("PRAGMA busy_timeout").scalar()
        connection.exec_driver_sql(f"PRAGMA busy_timeout={millis}")
        try:
            yield
        finally:
            connection.exec_driver_sql(f"PRAGMA busy_timeout={int(previous or 0)}")
        return
    if connection.dialect.name == "postgresql":
        # SET LOCAL ends with the transaction.
        connection.execute(text(f"SET LOCAL lock_timeout = {millis}"))
    yield
