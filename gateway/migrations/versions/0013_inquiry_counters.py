"""inquiries count their pending and timed-out sources

An answer updates one inquiry row instead of reading every source of the inquiry (with 100 banks asked,
the inquiry's status was recomputed from 100 rows at each of its 100 answers).

Revision ID: 0013
Revises: 0012
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0013"
down_revision = "0012"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("inquiries") as batch:
        batch.add_column(sa.Column("sources_total", sa.Integer(), nullable=False, server_default="0"))
        batch.add_column(sa.Column("sources_pending", sa.Integer(), nullable=False, server_default="0"))
        batch.add_column(sa.Column("sources_timeout", sa.Integer(), nullable=False, server_default="0"))
    op.execute(
        """
        UPDATE inquiries SET
          sources_total = (SELECT count(*) FROM inquiry_sources s WHERE s.inquiry_id = inquiries.inquiry_id),
          sources_pending = (SELECT count(*) FROM inquiry_sources s
                             WHERE s.inquiry_id = inquiries.inquiry_id AND s.status = 'pending'),
          sources_timeout = (SELECT count(*) FROM inquiry_sources s
                             WHERE s.inquiry_id = inquiries.inquiry_id AND s.status = 'timeout')
        """
    )


def downgrade() -> None:
    with op.batch_alter_table("inquiries") as batch:
        batch.drop_column("sources_timeout")
        batch.drop_column("sources_pending")
        batch.drop_column("sources_total")
