"""Small immutable copies of stored rows, safe to hand across threads to the views."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any

from app.models.imports import ImportState
from app.models.status import (
    RETRYABLE_RECIPIENT_STATUSES,
    Action,
    BatchStatus,
    RecipientStatus,
    actions_for,
)
from app.models.window import days_from_text, format_days


class SendType(StrEnum):
    SEND_NOW = "SEND_NOW"
    SCHEDULE = "SCHEDULE"

    @property
    def display_name(self) -> str:
        return "Send Now" if self is SendType.SEND_NOW else "Schedule"


@dataclass(frozen=True)
class AgentSnapshot:
    id: int
    name: str
    kind: str
    value: str
    active: bool


@dataclass(frozen=True)
class FromNumberSnapshot:
    id: int
    phone_number: str
    label: str
    source: str
    active: bool

    @property
    def display(self) -> str:
        return f"{self.phone_number} ({self.label})" if self.label else self.phone_number


@dataclass(frozen=True)
class BatchCallSnapshot:
    id: int
    name: str
    status: BatchStatus
    agent_id: int
    agent_name: str
    from_number: str
    send_type: SendType
    scheduled_at: datetime | None
    timezone: str
    window_start: str
    window_end: str
    allowed_days: frozenset[int]
    reserved_concurrency: int
    total_recipients: int
    counts: dict[RecipientStatus, int] = field(compare=True)
    failure_reason: str | None
    waiting_reason: str | None
    retry_count: int
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    updated_at: datetime
    #: Whether all its recipients are stored (only COMPLETE ones can ever be dialed).
    import_state: ImportState = ImportState.COMPLETE

    @property
    def import_complete(self) -> bool:
        return self.import_state is ImportState.COMPLETE

    @property
    def status_display(self) -> str:
        pending = self.status is BatchStatus.PENDING
        if self.import_state is ImportState.INTERRUPTED:
            if pending:
                return "Importing… (interrupted)"
            return f"{self.status.display_name} (import interrupted)"
        if self.import_state is ImportState.IMPORTING:
            return "Importing…" if pending else f"{self.status.display_name} (importing…)"
        return self.status.display_name

    @property
    def finished_count(self) -> int:
        """Recipients with a final outcome (completed, failed or no answer)."""
        return sum(self.counts[s] for s in RecipientStatus if s.is_terminal)

    @property
    def remaining_count(self) -> int:
        return self.total_recipients - self.finished_count

    @property
    def progress_percent(self) -> float:
        if not self.total_recipients:
            return 0.0
        return 100.0 * self.finished_count / self.total_recipients

    @property
    def has_retryable_recipients(self) -> bool:
        return any(self.counts[s] for s in RETRYABLE_RECIPIENT_STATUSES)

    @property
    def actions(self) -> list[Action]:
        return actions_for(self.status, self.has_retryable_recipients, self.import_complete)

    @property
    def allowed_days_display(self) -> str:
        return format_days(self.allowed_days)


@dataclass(frozen=True)
class RecipientSnapshot:
    id: int
    row_number: int
    phone_number: str
    name: str | None
    variables: dict[str, Any]
    status: RecipientStatus
    attempts: int
    last_error: str | None
    provider_call_id: str | None
    requested_at: datetime | None
    answered_at: datetime | None
    ended_at: datetime | None
    duration_seconds: int | None
    answered_by: str | None


@dataclass(frozen=True)
class AuditSnapshot:
    id: int
    batch_call_id: int | None
    batch_call_name: str
    action: str
    detail: str
    user: str
    host: str
    at: datetime


def allowed_days_of(text: str) -> frozenset[int]:
    return days_from_text(text)
