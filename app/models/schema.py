"""SQLAlchemy mapped classes: the stored shape of agents, numbers, batch calls and calls.

Written for SQLite (the embedded default) and PostgreSQL (the shared deployment) alike:
no dialect-specific types, timestamps stored as UTC.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    Boolean,
    DateTime,
    Dialect,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Text,
    TypeDecorator,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

from app.models import search_keys

NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


def utcnow() -> datetime:
    return datetime.now(UTC)


class UTCDateTime(TypeDecorator[datetime]):
    """Stores naive UTC, hands out aware UTC: SQLite keeps no offset, PostgreSQL need not."""

    impl = DateTime
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given where an aware one is required")
        return value.astimezone(UTC).replace(tzinfo=None)

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC)


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)
    type_annotation_map = {datetime: UTCDateTime, dict[str, Any]: JSON}


class Agent(Base):
    """What a recipient hears: a TwiML App SID, a voice webhook URL, or a TwiML template."""

    __tablename__ = "agents"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(100), unique=True)
    kind: Mapped[str] = mapped_column(String(16))  # application | url | twiml
    value: Mapped[str] = mapped_column(Text)
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class FromNumber(Base):
    """An outbound-capable caller number in E.164."""

    __tablename__ = "from_numbers"

    id: Mapped[int] = mapped_column(primary_key=True)
    phone_number: Mapped[str] = mapped_column(String(20), unique=True)
    label: Mapped[str] = mapped_column(String(100), default="")
    source: Mapped[str] = mapped_column(String(16), default="simulated")
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class BatchCall(Base):
    __tablename__ = "batch_calls"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(100))
    status: Mapped[str] = mapped_column(String(16), index=True)
    agent_id: Mapped[int] = mapped_column(ForeignKey("agents.id"))
    from_number_id: Mapped[int] = mapped_column(ForeignKey("from_numbers.id"))
    #: The from number as it was at creation: locked even if the number list changes.
    from_number: Mapped[str] = mapped_column(String(20))
    send_type: Mapped[str] = mapped_column(String(16))  # SEND_NOW | SCHEDULE
    scheduled_at: Mapped[datetime | None]
    timezone: Mapped[str] = mapped_column(String(64))
    window_start: Mapped[str] = mapped_column(String(5))  # HH:MM in the batch's timezone
    window_end: Mapped[str] = mapped_column(String(5))
    #: Allowed weekdays as ISO numbers joined by commas: "1,2,3,4,5" is Monday to Friday.
    allowed_days: Mapped[str] = mapped_column(String(16))
    reserved_concurrency: Mapped[int] = mapped_column(Integer)
    total_recipients: Mapped[int] = mapped_column(Integer, default=0)
    #: The CSV's dynamic variable columns, in file order (for exports and the details view).
    variable_columns: Mapped[list[str] | None] = mapped_column(JSON)
    # Recipients per status, kept in the same transaction as every recipient status change
    # (see app.models.recipients.move_recipients), so the list never counts a million rows.
    pending_count: Mapped[int] = mapped_column(Integer, default=0)
    queued_count: Mapped[int] = mapped_column(Integer, default=0)
    in_progress_count: Mapped[int] = mapped_column(Integer, default=0)
    completed_count: Mapped[int] = mapped_column(Integer, default=0)
    failed_count: Mapped[int] = mapped_column(Integer, default=0)
    no_answer_count: Mapped[int] = mapped_column(Integer, default=0)
    failure_reason: Mapped[str | None] = mapped_column(Text)
    waiting_reason: Mapped[str | None] = mapped_column(Text)
    retry_count: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    started_at: Mapped[datetime | None]
    finished_at: Mapped[datetime | None]
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)
    created_by: Mapped[str] = mapped_column(String(100), default="")
    # Campaign policy (SPEC 10). A batch call from before it reads as one window
    # (window_start-window_end), no local-hours rule, one attempt, no end.
    #: "09:00-12:00,14:00-18:00" or "00:00-24:00" (all day); NULL: window_start-window_end.
    time_ranges: Mapped[str | None] = mapped_column(String(200))
    #: Local dates in the batch's timezone on which nothing is dialed: "2026-12-25,...".
    blackout_dates: Mapped[str | None] = mapped_column(Text)
    #: After this instant nothing is dialed; recipients not reached end as EXPIRED.
    end_at: Mapped[datetime | None]
    #: Recipient-local calling hours (HH:MM); NULL: no local-hours rule.
    local_hours_start: Mapped[str | None] = mapped_column(String(5))
    local_hours_end: Mapped[str | None] = mapped_column(String(5))
    max_attempts: Mapped[int] = mapped_column(Integer, default=1, server_default="1")
    retry_delay_minutes: Mapped[int] = mapped_column(Integer, default=60, server_default="60")
    #: Outcomes retried automatically: "no-answer,busy,failed" (any subset).
    retry_outcomes: Mapped[str] = mapped_column(
        String(64), default="no-answer,busy", server_default="no-answer,busy"
    )
    waiting_retry_count: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    do_not_call_count: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    expired_count: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    #: Set while the recipients are being stored and renewed with every chunk; NULL once
    #: the import finished. A stale value means the importing process died: the engine
    #: removes such a batch call (creation is all or nothing).
    import_heartbeat_at: Mapped[datetime | None]

    agent: Mapped[Agent] = relationship(lazy="joined", innerjoin=True)


def _inserted(key: Callable[[str | None], str | None], column: str) -> Callable[[Any], Any]:
    """A column default computed from another column of the inserted row."""
    return lambda context: key(context.get_current_parameters().get(column))


class Recipient(Base):
    __tablename__ = "recipients"
    __table_args__ = (
        # Per-status counts, the dialer's "next PENDING/QUEUED" pick and status-filtered
        # pages are all index range scans on (batch_call_id, status, id).
        Index("ix_recipients_batch_status", "batch_call_id", "status", "id"),
        Index("ix_recipients_batch_phone", "batch_call_id", "phone_number"),
        # Searches by the last digits or by a name, and the name sort (app.models.search_keys).
        Index("ix_recipients_batch_digits", "batch_call_id", "phone_digits_reversed"),
        Index("ix_recipients_batch_name", "batch_call_id", "name_key"),
        Index("ix_recipients_batch_last_word", "batch_call_id", "name_last_word_key"),
        # The dialer's due pick: per status, the recipients of the timezone sets whose
        # local hours are open, whose next attempt time has come.
        Index("ix_recipients_due", "batch_call_id", "status", "timezones", "next_try_at"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    batch_call_id: Mapped[int] = mapped_column(
        ForeignKey("batch_calls.id", ondelete="CASCADE"), index=True
    )
    row_number: Mapped[int] = mapped_column(Integer)  # row in the imported CSV
    phone_number: Mapped[str] = mapped_column(String(20))
    name: Mapped[str | None] = mapped_column(String(200))
    variables: Mapped[dict[str, Any] | None]
    status: Mapped[str] = mapped_column(String(16), default="PENDING")
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    last_error: Mapped[str | None] = mapped_column(Text)
    provider_call_id: Mapped[str | None] = mapped_column(String(64))
    requested_at: Mapped[datetime | None]
    answered_at: Mapped[datetime | None]
    ended_at: Mapped[datetime | None]
    duration_seconds: Mapped[int | None] = mapped_column(Integer)
    answered_by: Mapped[str | None] = mapped_column(String(32))
    #: Earliest time the dialer may try this recipient again: after a transient error, or
    #: the next automatic attempt of a recipient WAITING_RETRY.
    next_try_at: Mapped[datetime | None]
    #: Search keys, filled on insert from the phone number and the name.
    phone_digits_reversed: Mapped[str | None] = mapped_column(
        String(20), default=_inserted(search_keys.reversed_digits, "phone_number")
    )
    name_key: Mapped[str | None] = mapped_column(
        String(200), default=_inserted(search_keys.name_key, "name")
    )
    name_last_word_key: Mapped[str | None] = mapped_column(
        String(200), default=_inserted(search_keys.last_word_key, "name")
    )
    #: The number's timezones from libphonenumber at import ("America/Boise,America/
    #: Los_Angeles"), so dialing never parses numbers; NULL: none known.
    timezones: Mapped[str | None] = mapped_column(String(200))


class CallAttempt(Base):
    """One provider call. Written before the provider is asked, so a crash can be reconciled."""

    __tablename__ = "call_attempts"
    __table_args__ = (
        UniqueConstraint("recipient_id", "attempt_number", name="uq_call_attempts_recipient"),
        Index("ix_call_attempts_open", "batch_call_id", "outcome"),
        # The attempts awaiting reconciliation (no outcome, no call id), in id order: the
        # dialer looks for them every tick, while refused attempts (no call id, FAILED)
        # pile up for ever.
        Index("ix_call_attempts_unresolved", "outcome", "provider_call_id", "id"),
        # The per-number cap: attempts to one number in the last 24 hours, all batch calls.
        Index("ix_call_attempts_number_time", "to_number", "created_at"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    recipient_id: Mapped[int] = mapped_column(ForeignKey("recipients.id", ondelete="CASCADE"))
    batch_call_id: Mapped[int] = mapped_column(ForeignKey("batch_calls.id", ondelete="CASCADE"))
    attempt_number: Mapped[int] = mapped_column(Integer)
    provider: Mapped[str] = mapped_column(String(16))
    provider_call_id: Mapped[str | None] = mapped_column(String(64), index=True)
    to_number: Mapped[str] = mapped_column(String(20))
    from_number: Mapped[str] = mapped_column(String(20))
    provider_status: Mapped[str | None] = mapped_column(String(16))
    #: NULL while the call is open; then COMPLETED, FAILED or NO_ANSWER.
    outcome: Mapped[str | None] = mapped_column(String(16))
    error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    requested_at: Mapped[datetime | None]
    answered_at: Mapped[datetime | None]
    ended_at: Mapped[datetime | None]
    duration_seconds: Mapped[int | None] = mapped_column(Integer)
    answered_by: Mapped[str | None] = mapped_column(String(32))
    last_polled_at: Mapped[datetime | None]


class AuditEvent(Base):
    """Who did what to which batch call, from which machine, when. Outlives a deletion."""

    __tablename__ = "audit_events"

    id: Mapped[int] = mapped_column(primary_key=True)
    batch_call_id: Mapped[int | None] = mapped_column(Integer, index=True)
    batch_call_name: Mapped[str] = mapped_column(String(100))
    action: Mapped[str] = mapped_column(String(16))
    detail: Mapped[str] = mapped_column(Text, default="")
    user: Mapped[str] = mapped_column(String(100))
    host: Mapped[str] = mapped_column(String(255))
    at: Mapped[datetime] = mapped_column(default=utcnow)


class DoNotCallNumber(Base):
    """One number of the database's do-not-call list (E.164), checked as each call is placed."""

    __tablename__ = "do_not_call"

    id: Mapped[int] = mapped_column(primary_key=True)
    phone_number: Mapped[str] = mapped_column(String(20), unique=True)
    source: Mapped[str] = mapped_column(String(16), default="manual")  # manual | import
    added_by: Mapped[str] = mapped_column(String(100), default="")
    added_at: Mapped[datetime] = mapped_column(default=utcnow)


class DoNotCallEvent(Base):
    """The do-not-call list's audit trail: who added, removed or imported what, when."""

    __tablename__ = "do_not_call_events"

    id: Mapped[int] = mapped_column(primary_key=True)
    action: Mapped[str] = mapped_column(String(16))  # ADD | REMOVE | IMPORT
    phone_number: Mapped[str | None] = mapped_column(String(20))
    detail: Mapped[str] = mapped_column(Text, default="")
    user: Mapped[str] = mapped_column(String(100))
    host: Mapped[str] = mapped_column(String(255))
    at: Mapped[datetime] = mapped_column(default=utcnow)


class Setting(Base):
    """Shared, non-secret settings (plan concurrency, calls per second, ...). Secrets never."""

    __tablename__ = "settings"

    key: Mapped[str] = mapped_column(String(64), primary_key=True)
    value: Mapped[str] = mapped_column(Text)


class EngineLease(Base):
    """Only one engine dials a database at a time: the holder renews its heartbeat."""

    __tablename__ = "engine_leases"

    name: Mapped[str] = mapped_column(String(32), primary_key=True)
    holder: Mapped[str] = mapped_column(String(200))
    heartbeat_at: Mapped[datetime]
    expires_at: Mapped[datetime]
    #: The fencing token: incremented whenever the lease changes holder, so a holder that
    #: was taken over (frozen, cut off) can tell, in the transaction that claims calls.
    fence: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
