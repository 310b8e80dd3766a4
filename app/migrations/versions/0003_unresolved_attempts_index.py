"""index of the call attempts awaiting reconciliation

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-27
"""

from __future__ import annotations

from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # The dialer looks for attempts without an outcome and a call id every tick; without
    # this index that query walks every refused attempt (no call id either) ever made.
    with op.batch_alter_table("call_attempts", schema=None) as batch_op:
        batch_op.create_index(
            "ix_call_attempts_unresolved", ["outcome", "provider_call_id", "id"], unique=False
        )


def downgrade() -> None:
    with op.batch_alter_table("call_attempts", schema=None) as batch_op:
        batch_op.drop_index("ix_call_attempts_unresolved")
