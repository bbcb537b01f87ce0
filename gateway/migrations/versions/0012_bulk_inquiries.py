"""bulk lookups: a bulk request, and the inquiry each of its debtors became

Revision ID: 0012
Revises: 0011
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "bulk_inquiries",
        sa.Column("bulk_id", sa.String(length=36), nullable=False),
        sa.Column("client_id", sa.String(length=32), nullable=False),
        sa.Column("token_subject", sa.String(length=128), nullable=True),
        sa.Column("idempotency_key", sa.String(length=128), nullable=True),
        sa.Column("request_sha256", sa.String(length=64), nullable=False),
        sa.Column("request", sa.Text(), nullable=False),
        sa.Column("callback_base", sa.Text(), nullable=True),
        sa.Column("debtors", sa.Integer(), nullable=False),
        sa.Column("expanded", sa.Integer(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("claimed_by", sa.String(length=64), nullable=True),
        sa.Column("claimed_until", sa.DateTime(timezone=True), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expanded_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("bulk_id", name=op.f("pk_bulk_inquiries")),
        sa.UniqueConstraint(
            "client_id", "idempotency_key", name=op.f("uq_bulk_inquiries_client_id_idempotency_key")
        ),
    )
    with op.batch_alter_table("bulk_inquiries", schema=None) as batch_op:
        batch_op.create_index("ix_bulk_inquiries_status", ["status"], unique=False)

    op.create_table(
        "bulk_items",
        sa.Column("bulk_id", sa.String(length=36), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("inquiry_id", sa.String(length=36), nullable=False),
        sa.ForeignKeyConstraint(
            ["bulk_id"], ["bulk_inquiries.bulk_id"], name=op.f("fk_bulk_items_bulk_id_bulk_inquiries")
        ),
        sa.ForeignKeyConstraint(
            ["inquiry_id"], ["inquiries.inquiry_id"], name=op.f("fk_bulk_items_inquiry_id_inquiries")
        ),
        sa.PrimaryKeyConstraint("bulk_id", "position", name=op.f("pk_bulk_items")),
        sa.UniqueConstraint("inquiry_id", name=op.f("uq_bulk_items_inquiry_id")),
    )


def downgrade() -> None:
    op.drop_table("bulk_items")
    with op.batch_alter_table("bulk_inquiries", schema=None) as batch_op:
        batch_op.drop_index("ix_bulk_inquiries_status")
    op.drop_table("bulk_inquiries")
