"""the dialer lease's fencing token

Revision ID: 0005
Revises: 0003
Create Date: 2026-11-30
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Incremented at every change of holder; an existing lease row starts at 0.
    with op.batch_alter_table("engine_leases", schema=None) as batch_op:
        batch_op.add_column(sa.Column("fence", sa.Integer(), server_default="0", nullable=False))


def downgrade() -> None:
    with op.batch_alter_table("engine_leases", schema=None) as batch_op:
        batch_op.drop_column("fence")
