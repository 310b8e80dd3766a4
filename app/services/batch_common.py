"""What the parts of the batch call service share (app.services.batch_calls composes them):
the errors its callers catch, who acts, the clock, and the one context that writes the
audit trail and tells the listener which batch call changed."""

from __future__ import annotations

import getpass
import logging
import os
import socket
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy.orm import Session, sessionmaker

from app.models.schema import AuditEvent, BatchCall

log = logging.getLogger("app.services.batch_calls")

Clock = Callable[[], datetime]


def utcnow() -> datetime:
    return datetime.now(UTC)


class ValidationError(ValueError):
    """Input that cannot be used; `problems` maps a field to what is wrong with it."""

    def __init__(self, problems: dict[str, str]):
        self.problems = problems
        super().__init__(" ".join(problems.values()))


class NotFound(LookupError):
    pass


class CreationCancelled(Exception):
    """The creation was cancelled (the supervisor, or a stop signal): nothing was kept.

    `left_batch_id` names the partial batch call if it could not be removed at once (a
    lock held too long): it is incomplete, never dialed, and the next process removes it.
    """

    def __init__(self, left_batch_id: int | None = None) -> None:
        self.left_batch_id = left_batch_id
        if left_batch_id is None:
            message = "Creation cancelled: nothing was stored."
        else:
            message = (
                f"Creation cancelled: the unfinished batch call {left_batch_id} is never "
                "dialed and is removed at the next start."
            )
        super().__init__(message)


@dataclass(frozen=True)
class Actor:
    """Who performs an action and from which machine (for the audit trail)."""

    user: str
    host: str

    @classmethod
    def current(cls) -> Actor:
        try:
            user = getpass.getuser()
        except (KeyError, OSError):
            user = f"uid {os.getuid()}" if hasattr(os, "getuid") else "unknown"
        return cls(user=user, host=socket.gethostname())


class BatchCallContext:
    """The session factory, the clock, who acts and who is told of changes, held once for
    every part of a BatchCallService. The service replaces `clock`, `actor` and
    `on_change` here (a window connects its listener after start-up; tests swap the
    clock), so every part reads them at each use rather than keeping copies."""

    def __init__(
        self,
        sessions: sessionmaker[Session],
        clock: Clock,
        actor: Actor,
        on_change: Callable[[int], None] | None = None,
    ) -> None:
        self.sessions = sessions
        self.clock = clock
        self.actor = actor
        #: Told the id of every batch call an action changed (the GUI turns it into a signal).
        self.on_change = on_change

    def changed(self, batch_id: int) -> None:
        if self.on_change:
            try:
                self.on_change(batch_id)
            except Exception:  # a listener must never undo a committed action
                log.exception("change listener failed")

    def audit(self, session: Session, batch: BatchCall, action: str, detail: str = "") -> None:
        session.add(
            AuditEvent(
                batch_call_id=batch.id,
                batch_call_name=batch.name,
                action=action,
                detail=detail,
                user=self.actor.user,
                host=self.actor.host,
                at=self.clock(),
            )
        )
