"""recipient search keys: reversed phone digits and folded names, indexed

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-30
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from app.models import search_keys

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None

CHUNK = 10_000


def upgrade() -> None:
    with op.batch_alter_table("recipients", schema=None) as batch_op:
        batch_op.add_column(sa.Column("phone_digits_reversed", sa.String(20), nullable=True))
        batch_op.add_column(sa.Column("name_key", sa.String(200), nullable=True))
        batch_op.add_column(sa.Column("name_last_word_key", sa.String(200), nullable=True))
    _fill_existing_rows()
    with op.batch_alter_table("recipients", schema=None) as batch_op:
        batch_op.create_index(
            "ix_recipients_batch_digits", ["batch_call_id", "phone_digits_reversed"], unique=False
        )
        batch_op.create_index(
            "ix_recipients_batch_name", ["batch_call_id", "name_key"], unique=False
        )
        batch_op.create_index(
            "ix_recipients_batch_last_word", ["batch_call_id", "name_last_word_key"], unique=False
        )


def _fill_existing_rows() -> None:
    """Compute the keys of the recipients stored before this revision, in chunks of CHUNK
    rows (the same functions the application uses on insert; neither database has them)."""
    bind = op.get_bind()
    recipients = sa.table(
        "recipients",
        sa.column("id", sa.Integer),
        sa.column("phone_number", sa.String),
        sa.column("name", sa.String),
        sa.column("phone_digits_reversed", sa.String),
        sa.column("name_key", sa.String),
        sa.column("name_last_word_key", sa.String),
    )
    update = (
        sa.update(recipients)
        .where(recipients.c.id == sa.bindparam("rid"))
        .values(
            phone_digits_reversed=sa.bindparam("digits"),
            name_key=sa.bindparam("folded"),
            name_last_word_key=sa.bindparam("last_word"),
        )
    )
    last_id = 0
    while True:
        rows = bind.execute(
            sa.select(recipients.c.id, recipients.c.phone_number, recipients.c.name)
            .where(recipients.c.id > last_id)
            .order_by(recipients.c.id)
            .limit(CHUNK)
        ).all()
        if not rows:
            return
        bind.execute(
            update,
            [
                {
                    "rid": row.id,
                    "digits": search_keys.reversed_digits(row.phone_number),
                    "folded": search_keys.name_key(row.name),
                    "last_word": search_keys.last_word_key(row.name),
                }
                for row in rows
            ],
        )
        last_id = rows[-1].id


def downgrade() -> None:
    with op.batch_alter_table("recipients", schema=None) as batch_op:
        batch_op.drop_index("ix_recipients_batch_last_word")
        batch_op.drop_index("ix_recipients_batch_name")
        batch_op.drop_index("ix_recipients_batch_digits")
        batch_op.drop_column("name_last_word_key")
        batch_op.drop_column("name_key")
        batch_op.drop_column("phone_digits_reversed")
