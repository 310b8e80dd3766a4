"""Small immutable copies of stored rows, safe to hand across threads to the views."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any

from app.models.creation import CreationRequest
from app.models.imports import ImportState
from app.models.policy import (
    CallingSchedule,
    Forecast,
    RetryOutcome,
    estimate_finish,
    format_time_ranges,
)
from app.models.status import (
    RETRYABLE_RECIPIENT_STATUSES,
    TERMINAL_RECIPIENT_STATUSES,
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
    # Campaign policy (SPEC 10), in the stored text forms of app.models.creation.
    time_ranges: str = ""
    blackout_dates: str = ""
    end_at: datetime | None = None
    local_hours: str = ""
    max_attempts: int = 1
    retry_delay_minutes: int = 60
    retry_outcomes: str = "no-answer,busy"

    @property
    def creation_request(self) -> CreationRequest:
        """The batch call's rules as they were given (for the schedule and descriptions)."""
        return CreationRequest.of(self)

    @property
    def schedule(self) -> CallingSchedule:
        return self.creation_request.schedule()

    @property
    def time_ranges_display(self) -> str:
        return format_time_ranges(self.creation_request.ranges())

    @property
    def local_hours_display(self) -> str:
        rule = self.creation_request.local_hours_rule()
        if rule is None:
            return "Off (the batch call's window only)"
        return f"{rule.start:%H:%M} to {rule.end:%H:%M} in each recipient's own timezone"

    @property
    def retries_display(self) -> str:
        return self.creation_request.retry_policy().describe()

    @property
    def blackout_dates_display(self) -> str:
        return ", ".join(self.blackout_dates.split(",")) if self.blackout_dates else "None"

    def forecast(self, now: datetime, calls_per_second: float) -> Forecast | None:
        """SPEC 10's estimated finish while it runs (or is scheduled); None otherwise."""
        if self.status not in (BatchStatus.RUNNING, BatchStatus.SCHEDULED):
            return None
        counts = self.counts
        left = sum(
            counts.get(s, 0)
            for s in (
                RecipientStatus.PENDING,
                RecipientStatus.QUEUED,
                RecipientStatus.WAITING_RETRY,
            )
        )
        outcomes = sum(
            counts.get(s, 0)
            for s in (RecipientStatus.COMPLETED, RecipientStatus.FAILED, RecipientStatus.NO_ANSWER)
        )
        retry = self.creation_request.retry_policy()
        retried = 0
        if RetryOutcome.NO_ANSWER in retry.outcomes or RetryOutcome.BUSY in retry.outcomes:
            retried += counts.get(RecipientStatus.NO_ANSWER, 0)
        if RetryOutcome.FAILED in retry.outcomes:
            retried += counts.get(RecipientStatus.FAILED, 0)
        share = retried / outcomes if outcomes else (0.3 if retry.max_attempts > 1 else 0.0)
        start = now
        if self.status is BatchStatus.SCHEDULED and self.scheduled_at is not None:
            start = max(now, self.scheduled_at)
        return estimate_finish(
            now=start,
            schedule=self.schedule,
            left=left,
            finished=self.finished_count,
            retry=retry,
            retried_share=min(share, 0.95),
            reserved_concurrency=self.reserved_concurrency,
            calls_per_second=calls_per_second,
            started_at=self.started_at,
        )

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
        counts = self.counts  # the five terminal statuses, not all nine through the enum
        return sum(counts[s] for s in TERMINAL_RECIPIENT_STATUSES)

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
    timezones: tuple[str, ...] = ()
    next_try_at: datetime | None = None


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
