"""import completeness and the importing process

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-30
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

INCOMPLETE_REASON = (
    "Its recipients were not all stored (the import was interrupted), so it is never "
    "dialed. Delete it and create it again."
)


def upgrade() -> None:
    # Plain ADD COLUMN (SQLite supports it): a batch "move and copy" of batch_calls would
    # drop the old table, and with foreign keys on that cascades to every recipient and
    # call attempt.
    op.add_column(
        "batch_calls",
        sa.Column("import_complete", sa.Boolean(), server_default=sa.true(), nullable=False),
    )
    op.add_column("batch_calls", sa.Column("import_owner", sa.String(length=200), nullable=True))
    batch_calls = sa.table(
        "batch_calls",
        sa.column("status", sa.String),
        sa.column("import_heartbeat_at", sa.DateTime),
        sa.column("import_complete", sa.Boolean),
        sa.column("failure_reason", sa.Text),
    )
    # Before 0004 an unfinished import was told by its heartbeat alone, which a Cancel and
    # a Retry did not clear: mark those incomplete, and stop any that was made dialable.
    incomplete = batch_calls.c.import_heartbeat_at.is_not(None)
    op.execute(batch_calls.update().where(incomplete).values(import_complete=False))
    op.execute(
        batch_calls.update()
        .where(incomplete, batch_calls.c.status.in_(["SCHEDULED", "RUNNING", "PAUSED"]))
        .values(status="FAILED", failure_reason=INCOMPLETE_REASON)
    )


def downgrade() -> None:
    with op.batch_alter_table("batch_calls", schema=None) as batch_op:
        batch_op.drop_column("import_owner")
        batch_op.drop_column("import_complete")
