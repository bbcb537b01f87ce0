"""document pipeline: answers, replacements, deadlines; natural keys unique per type

Revision ID: 0003
Revises: 0002
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("messages", schema=None) as batch_op:
        batch_op.add_column(sa.Column("in_reply_to", sa.String(length=36), nullable=True))
        batch_op.add_column(sa.Column("replaces", sa.String(length=36), nullable=True))
        batch_op.add_column(sa.Column("due_at", sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column("reminded_at", sa.DateTime(timezone=True), nullable=True))
        batch_op.drop_constraint("uq_messages_natural_key", type_="unique")
        batch_op.create_unique_constraint(
            batch_op.f("uq_messages_message_type_natural_key"), ["message_type", "natural_key"]
        )
        batch_op.create_index(batch_op.f("ix_messages_in_reply_to"), ["in_reply_to"], unique=False)
        batch_op.create_index("ix_messages_open_due", ["status", "due_at"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("messages", schema=None) as batch_op:
        batch_op.drop_index("ix_messages_open_due")
        batch_op.drop_index(batch_op.f("ix_messages_in_reply_to"))
        batch_op.drop_constraint(batch_op.f("uq_messages_message_type_natural_key"), type_="unique")
        batch_op.create_unique_constraint("uq_messages_natural_key", ["natural_key"])
        batch_op.drop_column("reminded_at")
        batch_op.drop_column("due_at")
        batch_op.drop_column("replaces")
        batch_op.drop_column("in_reply_to")
