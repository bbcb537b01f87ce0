"""signed documents kept as long-term proof

The PDF of a document whose signature was checked on arrival, kept beyond its message's payload, and the
state of its long-term proof (validation material, archive time-stamps and when they must be renewed).

Revision ID: 0015
Revises: 0014
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0015"
down_revision = "0014"
branch_labels = None
depends_on = None

TS = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "signed_documents",
        sa.Column("message_id", sa.String(64), nullable=False),
        sa.Column("sender", sa.String(64), nullable=False),
        sa.Column("original_sha256", sa.String(64), nullable=False),
        sa.Column("original_length", sa.BigInteger(), nullable=False),
        sa.Column("pdf", sa.LargeBinary(), nullable=False),
        sa.Column("level", sa.String(16), nullable=False),
        sa.Column("timestamps", sa.Integer(), nullable=False),
        sa.Column("archive_expires_at", TS),
        sa.Column("due_at", TS, nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("last_error", sa.Text()),
        sa.Column("claimed_by", sa.String(64)),
        sa.Column("claimed_until", TS),
        sa.Column("created_at", TS, nullable=False),
        sa.Column("updated_at", TS, nullable=False),
        sa.PrimaryKeyConstraint("message_id", name=op.f("pk_signed_documents")),
    )
    op.create_index("ix_signed_documents_due", "signed_documents", ["due_at"])


def downgrade() -> None:
    op.drop_index("ix_signed_documents_due", "signed_documents")
    op.drop_table("signed_documents")
