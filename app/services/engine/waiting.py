"""What keeps a RUNNING batch call inside its window from dialing, under the campaign
policy (SPEC 10): recipients waiting for their own local hours, or for another attempt.
The open timezone forms are computed once a minute; the reasons (which count rows) at
most once a minute per batch call.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy.orm import Session, sessionmaker

from app.models.policy import LocalHours, all_timezone_texts, open_timezone_texts
from app.services.engine import store
from app.services.engine.attempts import aware
from app.services.engine.planning import RunningBatch, local_hours_reason, retry_wait_reason

#: A recipient is queued only if its local hours are still open this much later.
SAFETY = timedelta(minutes=2)


class PolicyWaits:
    """The dialer's view of local hours and retry waits (one per engine)."""

    def __init__(self, sessions: sessionmaker[Session]) -> None:
        self.sessions = sessions
        self._zones_key: tuple[LocalHours, datetime] | None = None
        self._zones: tuple[list[str], list[str]] = ([], [])
        self._idle_reasons: dict[int, tuple[datetime, str | None]] = {}

    def open_zones(self, hours: LocalHours, now: datetime) -> list[str]:
        """The stored timezone forms inside `hours` this minute and still in two minutes
        (recomputed once a minute): a recipient queued now is placed within seconds, and
        never after its hours close."""
        minute = now.replace(second=0, microsecond=0)
        key = (hours, minute)
        if self._zones_key != key:
            self._zones_key = key
            opened, _ = open_timezone_texts(hours, minute)
            still, _ = open_timezone_texts(hours, minute + SAFETY)
            keep = set(still)
            both = [text for text in opened if text in keep]
            self._zones = (both, [text for text in all_timezone_texts() if text not in set(both)])
        return self._zones[0]

    def closed_zones(self, hours: LocalHours, now: datetime) -> list[str]:
        self.open_zones(hours, now)
        return self._zones[1]

    def idle_reason(
        self, batch: RunningBatch, hours: LocalHours | None, now: datetime
    ) -> str | None:
        """Why a batch call inside its window places nothing: its recipients wait for
        their local hours, or for their next attempt. Counted at most once a minute."""
        cached = self._idle_reasons.get(batch.id)
        if cached is not None and now - cached[0] < timedelta(minutes=1) and now >= cached[0]:
            return cached[1]
        reason: str | None = None
        if hours is not None and batch.pending:
            closed = self.closed_zones(hours, now)
            waiting, present = store.waiting_for_local_hours(self.sessions, batch.id, closed)
            if waiting:
                opens = [
                    moment
                    for text in present
                    if (moment := hours.next_open(text.split(","), now)) is not None
                ]
                reason = local_hours_reason(
                    waiting, hours, min(opens) if opens else None, batch.timezone
                )
        if reason is None and batch.waiting_retry:
            reason = retry_wait_reason(
                batch.waiting_retry,
                aware(store.next_retry_at(self.sessions, batch.id)),
                batch.timezone,
            )
        self._idle_reasons[batch.id] = (now, reason)
        return reason
