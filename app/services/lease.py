"""Only one engine dials a database: a lease row that its holder keeps renewing.

Two desktops, or a desktop and a headless worker, may share one database. Each runs an
engine, but only the holder of the "dialer" lease picks up, dials, tracks and
reconciles; the others stand by and take over when the holder stops renewing (it
crashed, lost the network, was killed). Renewing or taking the lease is one
compare-and-set UPDATE (`WHERE holder = <as read> AND heartbeat_at = <as read>`) and, for
the very first engine, an INSERT whose primary key settles an insert race; both work the
same on SQLite and PostgreSQL. No engine compares its clock with another's: a standby
engine takes over only after watching the heartbeat stand still for the lease's expiry.

A holder is named `host:pid:instance:machine`. The instance is random per engine, so no
two engines ever share a name; the machine key is a digest of the kernel's boot id and
the process-id namespace. A holder whose process is gone may be taken over at once, but
only when it is provably on this very machine (same host name *and* machine key):
containers and cloned VMs share host names, and their process ids mean nothing here.
"""

from __future__ import annotations

import hashlib
import logging
import os
import socket
import sys
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import cache
from pathlib import Path

from sqlalchemy import select, text, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from app.models.schema import EngineLease

log = logging.getLogger(__name__)

DIALER_LEASE = "dialer"
#: The holder of a lease released on a clean stop: any engine may take it at once.
RELEASED = ""


BOOT_ID_PATH = Path("/proc/sys/kernel/random/boot_id")
PID_NAMESPACE_PATH = Path("/proc/self/ns/pid")
#: The machine key of a system that cannot prove which machine it is (not Linux).
UNKNOWN_MACHINE = "unknown"


@dataclass(frozen=True)
class MachineIdentity:
    """What makes process ids comparable: one host name, one boot, one pid namespace."""

    host: str
    boot_id: str | None
    pid_namespace: str | None

    @property
    def key(self) -> str:
        """A short digest of boot id and pid namespace; UNKNOWN_MACHINE without them."""
        if not self.boot_id or not self.pid_namespace:
            return UNKNOWN_MACHINE
        digest = hashlib.sha256(f"{self.boot_id}/{self.pid_namespace}".encode()).hexdigest()
        return digest[:16]


@cache
def this_machine() -> MachineIdentity:
    """This process's machine (read once: none of it changes while a process runs)."""
    try:
        boot_id: str | None = BOOT_ID_PATH.read_text(encoding="ascii").strip() or None
    except OSError:
        boot_id = None
    try:
        namespace: str | None = os.readlink(PID_NAMESPACE_PATH)
    except OSError:
        namespace = None
    return MachineIdentity(socket.gethostname(), boot_id, namespace)


def new_holder_id(machine: MachineIdentity | None = None, pid: int | None = None) -> str:
    """host:pid:instance:machine-key; the instance is random, so two engines in one
    process (tests) still differ."""
    machine = machine or this_machine()
    pid = os.getpid() if pid is None else pid
    return f"{machine.host}:{pid}:{uuid.uuid4().hex[:12]}:{machine.key}"


def holder_is_gone(holder: str | None, here: MachineIdentity | None = None) -> bool:
    """True when the holder ran on this very machine and its process no longer exists (a
    crash, a kill): its lease need not be waited out. "This machine" needs the same host
    name and the same machine key (boot id and pid namespace): another container or a
    cloned VM with this host name is never presumed dead. Only on POSIX, where signal 0
    merely asks whether a process exists; anything uncertain counts as alive, and so
    does a holder named the old way (host:pid:random), which cannot prove its machine."""
    if not holder or sys.platform == "win32":
        return False
    here = here or this_machine()
    parts = holder.split(":")
    if len(parts) != 4 or here.key == UNKNOWN_MACHINE:
        return False
    host, pid_text, _instance, machine_key = parts
    if host != here.host or machine_key != here.key or not pid_text.isdigit():
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
    """Acquire-or-renew with a heartbeat; `hold(now)` is called at the top of every tick.

    Expiry is judged without comparing two computers' clocks (a desktop whose clock is
    fast would otherwise take over a live lease): the holder changes `heartbeat_at` at
    every renewal, and another engine takes over only once it has itself watched the row
    stay unchanged for `ttl_seconds` of its own clock (or the holder released it, or
    its process is gone). Taking over is a compare-and-set on (holder, heartbeat_at).
    """

    def __init__(
        self,
        sessions: sessionmaker[Session],
        holder: str | None = None,
        *,
        ttl_seconds: float = 30.0,
        heartbeat_seconds: float = 5.0,
        name: str = DIALER_LEASE,
        machine: MachineIdentity | None = None,
    ) -> None:
        if not 0 < heartbeat_seconds < ttl_seconds:
            raise ValueError("The lease heartbeat must be positive and shorter than its expiry.")
        self.sessions = sessions
        self.machine = machine or this_machine()
        self.holder = holder or new_holder_id(self.machine)
        self.name = name
        self.ttl = timedelta(seconds=ttl_seconds)
        self.heartbeat = timedelta(seconds=heartbeat_seconds)
        self._renewed_at: datetime | None = None
        self._expires_at: datetime | None = None
        self._other: str | None = None
        #: The other holder's row as last seen, and since when (this engine's clock) it
        #: has not changed.
        self._seen: tuple[str, datetime] | None = None
        self._seen_since: datetime | None = None
        #: The fencing token of this holding (see EngineLease.fence); None when not held.
        self.fence: int | None = None
        #: Until when (monotonic) this holder may still send requests, without renewing.
        self._send_until = 0.0

    @property
    def held(self) -> bool:
        return self._renewed_at is not None

    def may_send(self, now: datetime) -> bool:
        """True when this holder may still send a request to the provider, judged on its
        own clocks just before the request: a standby takes over only after watching the
        heartbeat stand still for the expiry, so a holder stops a heartbeat short of that,
        by the engine's clock and by the monotonic one (a process frozen with SIGSTOP, a
        laptop asleep, a wall clock that jumped). Thread-safe (reads two values)."""
        renewed = self._renewed_at
        if renewed is None or self.fence is None:
            return False
        margin = self.ttl - self.heartbeat
        return now < renewed + margin and time.monotonic() < self._send_until

    def forget(self) -> None:
        """The lease turned out to be held by another engine: ask again next time."""
        if self._renewed_at is not None:
            log.warning("the dialer lease was taken over by another engine; standing by")
        self._renewed_at = self._expires_at = None
        self.fence = None

    def _unchanged_for(self, holder: str, heartbeat_at: datetime, now: datetime) -> timedelta:
        """How long (this engine's clock) the other holder's row has stayed as it is."""
        seen = (holder, heartbeat_at)
        if (
            seen != self._seen
            or self._seen_since is None
            or now < self._seen_since  # this clock went back: start watching again
        ):
            self._seen, self._seen_since = seen, now
        return now - self._seen_since

    def hold(self, now: datetime) -> LeaseState:
        """Take or renew the lease if possible; renew at most once per heartbeat."""
        if (
            self._renewed_at is not None
            and self._expires_at is not None
            and self._renewed_at <= now < self._renewed_at + self.heartbeat
            and now < self._expires_at
        ):
            return LeaseState(True, self.holder, self._expires_at)
        expires = now + self.ttl
        started = time.monotonic()  # before the renewal any standby can see
        try:
            with write_transaction(self.sessions) as session:
                current = session.execute(
                    select(EngineLease.holder, EngineLease.heartbeat_at, EngineLease.fence)
                    .where(EngineLease.name == self.name)
                    .with_for_update()
                ).first()
                if current is None:
                    fence = 1
                    session.add(
                        EngineLease(
                            name=self.name,
                            holder=self.holder,
                            heartbeat_at=now,
                            expires_at=expires,
                            fence=fence,
                        )
                    )
                    session.flush()
                else:
                    holder, beat = current[0], current[1]
                    # Every change of holder is a new fence: a taken-over holder's claims fail.
                    fence = (current[2] or 0) + (0 if holder == self.holder else 1)
                    if holder != self.holder:
                        released = holder == RELEASED
                        gone = not released and holder_is_gone(holder, self.machine)
                        stale = (
                            not released
                            and not gone
                            and self._unchanged_for(holder, beat, now) >= self.ttl
                        )
                        if not (released or gone or stale):
                            return self._lost(holder, beat)
                    # A heartbeat that always changes, whatever this clock says.
                    new_beat = max(now, beat + timedelta(microseconds=1))
                    taken = session.execute(
                        update(EngineLease)
                        .where(
                            EngineLease.name == self.name,
                            EngineLease.holder == holder,
                            EngineLease.heartbeat_at == beat,
                        )
                        .values(
                            holder=self.holder,
                            heartbeat_at=new_beat,
                            expires_at=expires,
                            fence=fence,
                        )
                        .execution_options(synchronize_session=False)
                    )
                    if taken.rowcount != 1:  # type: ignore[attr-defined]
                        return self._lost(*self._read())
                    if holder != self.holder and holder != RELEASED:
                        log.info("took over the dialer lease of %s (it stopped renewing)", holder)
        except IntegrityError:  # another engine inserted the row first
            return self._lost(*self._read())
        if self._renewed_at is None:
            log.info("this engine (%s) now holds the dialer lease", self.holder)
        self._renewed_at, self._expires_at, self._other = now, expires, None
        self.fence = fence
        self._send_until = started + (self.ttl - self.heartbeat).total_seconds()
        self._seen = self._seen_since = None
        return LeaseState(True, self.holder, expires)

    def _read(self) -> tuple[str | None, datetime | None]:
        with self.sessions() as session:
            row = session.execute(
                select(EngineLease.holder, EngineLease.heartbeat_at).where(
                    EngineLease.name == self.name
                )
            ).first()
        return (row[0], row[1]) if row else (None, None)

    def _lost(self, holder: str | None, heartbeat_at: datetime | None) -> LeaseState:
        if self._renewed_at is not None:
            log.warning("the dialer lease was taken over by %s; standing by", holder)
        elif holder != self._other:
            log.info("standing by: dialing is done by %s", holder)
        self._renewed_at = self._expires_at = None
        self.fence = None
        self._other = holder
        expires = heartbeat_at + self.ttl if heartbeat_at is not None else None
        return LeaseState(False, holder, expires)

    def release(self, now: datetime) -> None:
        """Let another engine take over at once (on a clean stop)."""
        if self._renewed_at is None:
            return
        self._renewed_at = self._expires_at = None
        self.fence = None
        with write_transaction(self.sessions) as session:
            session.execute(
                update(EngineLease)
                .where(EngineLease.name == self.name, EngineLease.holder == self.holder)
                .values(holder=RELEASED, expires_at=now)
                .execution_options(synchronize_session=False)
            )
        log.info("dialer lease released by %s", self.holder)
