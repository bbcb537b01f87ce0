"""ops_samples: figures the console charts over time (queue depths, parked, overdue, partner calls)

Sampled by the worker's gauge loop about once a minute, pruned by age.

Revision ID: 0017
Revises: 0016
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0017"
down_revision = "0016"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "ops_samples",
        sa.Column(
            "id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), autoincrement=True, nullable=False
        ),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("series", sa.String(32), nullable=False),
        sa.Column("key", sa.String(128), nullable=False),
        sa.Column("value", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_ops_samples")),
    )
    op.create_index(op.f("ix_ops_samples_series_key_at"), "ops_samples", ["series", "key", "at"])
    op.create_index(op.f("ix_ops_samples_at"), "ops_samples", ["at"])


def downgrade() -> None:
    op.drop_index("ix_ops_samples_at", table_name="ops_samples")
    op.drop_index("ix_ops_samples_series_key_at", table_name="ops_samples")
    op.drop_table("ops_samples")
