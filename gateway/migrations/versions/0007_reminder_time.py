"""deadlines: when each document's sender is to be reminded (capped to half the time to its deadline)

Revision ID: 0007
Revises: 0006
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Rows accepted before this revision keep remind_at NULL: the watcher reminds them by the configured lead.
    with op.batch_alter_table("messages") as batch_op:
        batch_op.add_column(sa.Column("remind_at", sa.DateTime(timezone=True), nullable=True))
        batch_op.create_index("ix_messages_remind", ["remind_at"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("messages") as batch_op:
        batch_op.drop_index("ix_messages_remind")
        batch_op.drop_column("remind_at")
