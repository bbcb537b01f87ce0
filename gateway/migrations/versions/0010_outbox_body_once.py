"""outbox: a document's body is read from its message row, not stored a second time

Revision ID: 0010
Revises: 0009
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Batch mode: SQLite cannot ALTER a column's nullability in place (the table is copied).
    with op.batch_alter_table("outbox") as batch:
        batch.alter_column("body", existing_type=sa.Text(), nullable=True)


def downgrade() -> None:
    op.execute("UPDATE outbox SET body = '' WHERE body IS NULL")
    with op.batch_alter_table("outbox") as batch:
        batch.alter_column("body", existing_type=sa.Text(), nullable=False)
