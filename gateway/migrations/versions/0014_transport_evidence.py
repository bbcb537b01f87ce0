"""inquiry sources keep what the exchange platform proved about their call

A source answered through X-Road keeps the request hash its security server returned (and which request it
answered, under which X-Road ids); through an LGSP, the platform's transaction id. NULL for a direct call.

Revision ID: 0014
Revises: 0013
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0014"
down_revision = "0013"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("inquiry_sources") as batch:
        batch.add_column(sa.Column("transport_evidence", sa.Text(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("inquiry_sources") as batch:
        batch.drop_column("transport_evidence")
