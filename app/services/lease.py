"""Only one engine dials a database: a lease row that its holder keeps renewing.

Two desktops, or a desktop and a headless worker, may share one database. Each runs an
engine, but only the holder of the "dialer" lease picks up, dials, tracks and
reconciles; the others stand by and take over when the holder stops renewing (it
crashed, lost the network, was killed). Taking the lease is one conditional UPDATE
(`WHERE holder = me OR expires_at <= now`) and, for the very first engine, an INSERT
whose primary key settles an insert race; both work the same on SQLite and PostgreSQL.
"""

from __future__ import annotations

import logging
import os
import socket
import sys
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import select, text, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from app.models.schema import EngineLease

log = logging.getLogger(__name__)

DIALER_LEASE = "dialer"


def new_holder_id() -> str:
    """host:pid:random, so two engines in one process (tests) still differ."""
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


def holder_is_gone(holder: str | None) -> bool:
    """True when the holder ran on this computer and its process no longer exists (a
    crash, a kill): its lease need not be waited out. Only on POSIX, where signal 0
    merely asks whether a process exists; anything uncertain counts as alive."""
    if not holder or sys.platform == "win32":
        return False
    host, _, rest = holder.partition(":")
    pid_text = rest.partition(":")[0]
    if host != socket.gethostname() or not pid_text.isdigit():
        return False
    pid = int(pid_text)
    if pid == os.getpid() or pid <= 1:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except OSError:
        return False
    return False


@dataclass(frozen=True)
class LeaseState:
    held: bool
    holder: str | None
    expires_at: datetime | None


@contextmanager
def write_transaction(sessions: sessionmaker[Session]) -> Iterator[Session]:
    """A transaction that takes the write lock first.

    On SQLite, `BEGIN IMMEDIATE`: it waits for (and then blocks) other writers, so the
    reads that follow cannot be overtaken by another desktop's write before this one
    commits. PostgreSQL needs nothing special (callers lock rows they depend on).
    """
    with sessions() as session, session.begin():
        if session.get_bind().dialect.name == "sqlite":
            session.execute(text("BEGIN IMMEDIATE"))
        yield session


class DialerLease:
    """Acquire-or-renew with a heartbeat; `hold(now)` is called at the top of every tick."""

    def __init__(
        self,
        sessions: sessionmaker[Session],
        holder: str | None = None,
        *,
        ttl_seconds: float = 30.0,
        heartbeat_seconds: float = 5.0,
        name: str = DIALER_LEASE,
    ) -> None:
        if not 0 < heartbeat_seconds < ttl_seconds:
            raise ValueError("The lease heartbeat must be positive and shorter than its expiry.")
        self.sessions = sessions
        self.holder = holder or new_holder_id()
        self.name = name
        self.ttl = timedelta(seconds=ttl_seconds)
        self.heartbeat = timedelta(seconds=heartbeat_seconds)
        self._renewed_at: datetime | None = None
        self._expires_at: datetime | None = None
        self._other: str | None = None

    @property
    def held(self) -> bool:
        return self._renewed_at is not None

    def hold(self, now: datetime) -> LeaseState:
        """Take or renew the lease if possible; renew at most once per heartbeat."""
        if (
            self._renewed_at is not None
            and self._expires_at is not None
            and now < self._renewed_at + self.heartbeat
            and now < self._expires_at
        ):
            return LeaseState(True, self.holder, self._expires_at)
        expires = now + self.ttl
        try:
            with write_transaction(self.sessions) as session:
                taken = session.execute(
                    update(EngineLease)
                    .where(
                        EngineLease.name == self.name,
                        (EngineLease.holder == self.holder) | (EngineLease.expires_at <= now),
                    )
                    .values(holder=self.holder, heartbeat_at=now, expires_at=expires)
                    .execution_options(synchronize_session=False)
                )
                won = taken.rowcount == 1  # type: ignore[attr-defined]
                if not won:
                    current = session.execute(
                        select(EngineLease.holder, EngineLease.expires_at).where(
                            EngineLease.name == self.name
                        )
                    ).first()
                    if current is None:
                        session.add(
                            EngineLease(
                                name=self.name,
                                holder=self.holder,
                                heartbeat_at=now,
                                expires_at=expires,
                            )
                        )
                        session.flush()
                        won = True
                    elif holder_is_gone(current[0]):
                        taken = session.execute(
                            update(EngineLease)
                            .where(EngineLease.name == self.name, EngineLease.holder == current[0])
                            .values(holder=self.holder, heartbeat_at=now, expires_at=expires)
                            .execution_options(synchronize_session=False)
                        )
                        if taken.rowcount != 1:  # type: ignore[attr-defined]
                            return self._lost(*self._read())
                        log.info("took over the dialer lease of %s (no longer running)", current[0])
                        won = True
                    else:
                        return self._lost(current[0], current[1])
        except IntegrityError:  # another engine inserted the row first
            return self._lost(*self._read())
        if self._renewed_at is None:
            log.info("this engine (%s) now holds the dialer lease", self.holder)
        self._renewed_at, self._expires_at, self._other = now, expires, None
        return LeaseState(True, self.holder, expires)

    def _read(self) -> tuple[str | None, datetime | None]:
        with self.sessions() as session:
            row = session.execute(
                select(EngineLease.holder, EngineLease.expires_at).where(
                    EngineLease.name == self.name
                )
            ).first()
        return (row[0], row[1]) if row else (None, None)

    def _lost(self, holder: str | None, expires_at: datetime | None) -> LeaseState:
        if self._renewed_at is not None:
            log.warning("the dialer lease was taken over by %s; standing by", holder)
        elif holder != self._other:
            log.info("standing by: dialing is done by %s", holder)
        self._renewed_at = self._expires_at = None
        self._other = holder
        return LeaseState(False, holder, expires_at)

    def release(self, now: datetime) -> None:
        """Let another engine take over at once (on a clean stop)."""
        if self._renewed_at is None:
            return
        self._renewed_at = self._expires_at = None
        with write_transaction(self.sessions) as session:
            session.execute(
                update(EngineLease)
                .where(EngineLease.name == self.name, EngineLease.holder == self.holder)
                .values(expires_at=now)
                .execution_options(synchronize_session=False)
            )
        log.info("dialer lease released by %s", self.holder)
