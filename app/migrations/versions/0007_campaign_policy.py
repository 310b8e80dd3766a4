"""campaign policy: windows, local hours, retries, end date, do-not-call list

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-30
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import app.models.schema

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Existing batch calls read as one window (window_start-window_end: time_ranges NULL),
    # no local-hours rule, one attempt and no end: the server defaults below.
    with op.batch_alter_table("batch_calls", schema=None) as batch_op:
        batch_op.add_column(sa.Column("time_ranges", sa.String(length=200), nullable=True))
        batch_op.add_column(sa.Column("blackout_dates", sa.Text(), nullable=True))
        batch_op.add_column(sa.Column("end_at", app.models.schema.UTCDateTime(), nullable=True))
        batch_op.add_column(sa.Column("local_hours_start", sa.String(length=5), nullable=True))
        batch_op.add_column(sa.Column("local_hours_end", sa.String(length=5), nullable=True))
        batch_op.add_column(
            sa.Column("max_attempts", sa.Integer(), server_default="1", nullable=False)
        )
        batch_op.add_column(
            sa.Column("retry_delay_minutes", sa.Integer(), server_default="60", nullable=False)
        )
        batch_op.add_column(
            sa.Column(
                "retry_outcomes",
                sa.String(length=64),
                server_default="no-answer,busy",
                nullable=False,
            )
        )
        for name in ("waiting_retry_count", "do_not_call_count", "expired_count"):
            batch_op.add_column(sa.Column(name, sa.Integer(), server_default="0", nullable=False))
    with op.batch_alter_table("recipients", schema=None) as batch_op:
        batch_op.add_column(sa.Column("timezones", sa.String(length=200), nullable=True))
        batch_op.create_index(
            "ix_recipients_due",
            ["batch_call_id", "status", "timezones", "next_try_at"],
            unique=False,
        )
    with op.batch_alter_table("call_attempts", schema=None) as batch_op:
        batch_op.create_index(
            "ix_call_attempts_number_time", ["to_number", "created_at"], unique=False
        )
    op.create_table(
        "do_not_call",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("phone_number", sa.String(length=20), nullable=False),
        sa.Column("source", sa.String(length=16), nullable=False),
        sa.Column("added_by", sa.String(length=100), nullable=False),
        sa.Column("added_at", app.models.schema.UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_do_not_call")),
        sa.UniqueConstraint("phone_number", name=op.f("uq_do_not_call_phone_number")),
    )
    op.create_table(
        "do_not_call_events",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("action", sa.String(length=16), nullable=False),
        sa.Column("phone_number", sa.String(length=20), nullable=True),
        sa.Column("detail", sa.Text(), nullable=False),
        sa.Column("user", sa.String(length=100), nullable=False),
        sa.Column("host", sa.String(length=255), nullable=False),
        sa.Column("at", app.models.schema.UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_do_not_call_events")),
    )


def downgrade() -> None:
    op.drop_table("do_not_call_events")
    op.drop_table("do_not_call")
    with op.batch_alter_table("call_attempts", schema=None) as batch_op:
        batch_op.drop_index("ix_call_attempts_number_time")
    with op.batch_alter_table("recipients", schema=None) as batch_op:
        batch_op.drop_index("ix_recipients_due")
        batch_op.drop_column("timezones")
    with op.batch_alter_table("batch_calls", schema=None) as batch_op:
        for name in (
            "expired_count",
            "do_not_call_count",
            "waiting_retry_count",
            "retry_outcomes",
            "retry_delay_minutes",
            "max_attempts",
            "local_hours_end",
            "local_hours_start",
            "end_at",
            "blackout_dates",
            "time_ranges",
        ):
            batch_op.drop_column(name)
