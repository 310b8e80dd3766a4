"""Recipients and batch calls for tests: rows as the CSV importer hands them over, a batch
call in every status (SPEC §3), and migrated template databases copied for each test."""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy import func, select, update

from app.models.schema import BatchCall, Recipient
from app.models.snapshots import BatchCallSnapshot
from app.models.status import BatchStatus, RecipientStatus
from app.services.batch_calls import Actor, NewBatchCall

if TYPE_CHECKING:
    from app.views.context import AppContext


@dataclass(frozen=True)
class Row:
    """A recipient row as the CSV importer hands it to the service."""

    row_number: int
    phone_number: str
    name: str | None = None
    variables: dict[str, str] = field(default_factory=dict)


def make_rows(count: int, start: int = 0) -> list[Row]:
    return [
        Row(i + 2, f"+1202555{(start + i) % 10000:04d}", f"Person {start + i}", {"city": "Austin"})
        for i in range(count)
    ]


def create_batch(
    context: AppContext, name: str, recipients: int = 10, **spec: Any
) -> BatchCallSnapshot:
    """A Scheduled batch call of `recipients` rows with the first active agent and number."""
    agent = context.service.list_agents(active_only=True)[0]
    number = context.service.list_from_numbers(active_only=True)[0]
    new = NewBatchCall(name=name, agent_id=agent.id, from_number_id=number.id, **spec)
    return context.service.create(new, [make_rows(recipients)])


def force_state(
    context: AppContext,
    batch_id: int,
    status: BatchStatus,
    outcomes: dict[RecipientStatus, int] | None = None,
    *,
    failure_reason: str | None = None,
    waiting_reason: str | None = None,
) -> BatchCallSnapshot:
    """Put a batch call (and its first recipients) where the engine would have put them."""
    now = context.clock()
    with context.sessions.begin() as session:
        ids = session.scalars(
            select(Recipient.id).where(Recipient.batch_call_id == batch_id).order_by(Recipient.id)
        ).all()
        position = 0
        for recipient_status, how_many in (outcomes or {}).items():
            chosen = ids[position : position + how_many]
            position += how_many
            called = recipient_status is not RecipientStatus.PENDING
            terminal = recipient_status.is_terminal
            for offset, recipient_id in enumerate(chosen):
                session.execute(
                    update(Recipient)
                    .where(Recipient.id == recipient_id)
                    .values(
                        status=recipient_status.value,
                        attempts=1 if called else 0,
                        provider_call_id=f"SIM{recipient_id:029d}" if called else None,
                        requested_at=now - timedelta(minutes=5) if called else None,
                        answered_at=now - timedelta(minutes=4)
                        if recipient_status is RecipientStatus.COMPLETED
                        else None,
                        ended_at=now - timedelta(minutes=3) if terminal else None,
                        duration_seconds=42 + offset
                        if recipient_status is RecipientStatus.COMPLETED
                        else None,
                        answered_by="human"
                        if recipient_status is RecipientStatus.COMPLETED
                        else None,
                        last_error="The line was busy."
                        if recipient_status is RecipientStatus.NO_ANSWER
                        else (
                            "The recipient's phone number cannot be reached."
                            if recipient_status is RecipientStatus.FAILED
                            else None
                        ),
                    )
                )
        counts = dict(
            session.execute(
                select(Recipient.status, func.count())
                .where(Recipient.batch_call_id == batch_id)
                .group_by(Recipient.status)
            )
            .tuples()
            .all()
        )
        session.execute(
            update(BatchCall)
            .where(BatchCall.id == batch_id)
            .values(
                status=status.value,
                pending_count=counts.get("PENDING", 0),
                queued_count=counts.get("QUEUED", 0),
                in_progress_count=counts.get("IN_PROGRESS", 0),
                completed_count=counts.get("COMPLETED", 0),
                failed_count=counts.get("FAILED", 0),
                no_answer_count=counts.get("NO_ANSWER", 0),
                failure_reason=failure_reason,
                waiting_reason=waiting_reason,
                started_at=None
                if status in (BatchStatus.SCHEDULED, BatchStatus.PENDING)
                else now - timedelta(minutes=10),
                finished_at=now
                if status in (BatchStatus.COMPLETED, BatchStatus.CANCELLED, BatchStatus.FAILED)
                else None,
            )
        )
    return context.service.get(batch_id)


#: One batch call per status, as SPEC §3 lists them (COMPLETED twice: with and without
#: failures, because only the first offers Retry).
STATUS_CASES: dict[str, tuple[BatchStatus, dict[RecipientStatus, int]]] = {
    "scheduled": (BatchStatus.SCHEDULED, {}),
    "pending": (BatchStatus.PENDING, {}),
    "running": (
        BatchStatus.RUNNING,
        {RecipientStatus.COMPLETED: 3, RecipientStatus.IN_PROGRESS: 2, RecipientStatus.QUEUED: 1},
    ),
    "paused": (BatchStatus.PAUSED, {RecipientStatus.COMPLETED: 4}),
    "completed": (
        BatchStatus.COMPLETED,
        {RecipientStatus.COMPLETED: 7, RecipientStatus.FAILED: 2, RecipientStatus.NO_ANSWER: 1},
    ),
    "completed-clean": (BatchStatus.COMPLETED, {RecipientStatus.COMPLETED: 10}),
    "cancelled": (BatchStatus.CANCELLED, {RecipientStatus.COMPLETED: 2}),
    "failed": (BatchStatus.FAILED, {RecipientStatus.FAILED: 1}),
}


def seed_every_status(context: AppContext) -> dict[str, BatchCallSnapshot]:
    """One batch call named after each case of STATUS_CASES ("Campaign running", ...)."""
    made: dict[str, BatchCallSnapshot] = {}
    for offset, (case, (status, outcomes)) in enumerate(STATUS_CASES.items()):
        snapshot = create_batch(context, f"Campaign {case}")
        made[case] = force_state(
            context,
            snapshot.id,
            status,
            outcomes,
            failure_reason="Twilio rejected the credentials." if case == "failed" else None,
        )
        context.clock.advance(minutes=1 + offset)  # type: ignore[attr-defined]
    return made


class Templates:
    """Migrated database files ("empty": demo agent and number; "seeded": also one batch
    call per status), each built once per session and copied for each test (fast set-up)."""

    def __init__(self, directory: Path):
        self.directory = directory
        self._made: dict[tuple[str, datetime], tuple[Path, datetime]] = {}

    def get(self, kind: str, clock: Any) -> tuple[Path, datetime]:
        """(template file, the clock's time after building it) for a FakeClock's start."""
        from app.views.context import build_context, ensure_demo_defaults

        key = (kind, clock.current)
        if key not in self._made:
            path = self.directory / f"{kind}-{len(self._made)}.sqlite3"
            template_clock = copy.copy(clock)
            ctx = build_context(
                f"sqlite:///{path}", clock=template_clock, actor=Actor("qa", "seed")
            )
            ensure_demo_defaults(ctx.service)
            if kind == "seeded":
                seed_every_status(ctx)
            with ctx.db.connect() as connection:
                connection.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)")
            ctx.close()
            self._made[key] = (path, template_clock.current)
        return self._made[key]
