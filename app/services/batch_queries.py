"""Reading batch calls: one by id or name, the list (and what changed in it since the last
read), the audit trail, the recent outcomes and the calling window. Everything returned is
an immutable snapshot (app.models.snapshots): no mapped object leaves its session."""

from __future__ import annotations

import builtins
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from datetime import datetime
from types import SimpleNamespace
from typing import Any

from sqlalchemy import func, select

from app.models.imports import import_state
from app.models.recipients import counts_of
from app.models.schema import Agent, AuditEvent, BatchCall, CallAttempt
from app.models.snapshots import AuditSnapshot, BatchCallSnapshot, SendType
from app.models.status import OPEN_RECIPIENT_STATUSES, BatchStatus, RecipientStatus
from app.models.window import CallingWindow, days_from_text, days_to_text
from app.services.batch_common import BatchCallContext, NotFound, utcnow


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


class BatchCallQueries:
    """The reads of batch calls. Thread-safe: every call opens its own short session."""

    def __init__(self, context: BatchCallContext) -> None:
        self.context = context

    def get(self, batch_id: int) -> BatchCallSnapshot:
        with self.context.sessions() as session:
            batch = session.get(BatchCall, batch_id)
            if batch is None:
                raise NotFound(f"No batch call with id {batch_id}.")
            return batch_snapshot(batch, now=self.context.clock())

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
        now = self.context.clock()
        with self.context.sessions() as session:
            return [_listed_snapshot(row, now) for row in session.execute(stmt)]

    def list_changed(
        self, versions: Mapping[int, int] | None = None, stale: Collection[int] = ()
    ) -> BatchCallListing:
        """Every batch call's row version, and the snapshots of those not as `versions`
        (from the previous read) had them, or named in `stale`: a poll of 10,000 batch
        calls of which ten changed builds ten snapshots, not 10,000. A batch call still
        importing is always fresh (whether its import is alive depends on the time)."""
        known = versions or {}
        now = self.context.clock()
        seen: dict[int, int] = {}
        fresh: builtins.list[BatchCallSnapshot] = []
        with self.context.sessions() as session:
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
        with self.context.sessions() as session:
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
            return batch_snapshot(matches[0], now=self.context.clock())

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
        with self.context.sessions() as session:
            return [
                (ended, RecipientStatus(outcome))
                for ended, outcome in session.execute(stmt)
                if ended is not None and outcome in RecipientStatus.__members__
            ]

    def history(self, batch_id: int) -> builtins.list[AuditSnapshot]:
        with self.context.sessions() as session:
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

    def open_recipient_count(self, batch_id: int) -> int:
        b = self.get(batch_id)
        return sum(b.counts[s] for s in OPEN_RECIPIENT_STATUSES)
