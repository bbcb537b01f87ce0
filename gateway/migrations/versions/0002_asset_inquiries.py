"""asset inquiries

Revision ID: 0002
Revises: 0001
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "inquiries",
        sa.Column("inquiry_id", sa.String(length=36), nullable=False),
        sa.Column("client_id", sa.String(length=32), nullable=False),
        sa.Column("idempotency_key", sa.String(length=128), nullable=True),
        sa.Column("request_sha256", sa.String(length=64), nullable=False),
        sa.Column("case_ref", sa.String(length=64), nullable=False),
        sa.Column("officer_id", sa.String(length=12), nullable=False),
        sa.Column("legal_basis", sa.String(length=64), nullable=False),
        sa.Column("purpose", sa.String(length=300), nullable=False),
        sa.Column("priority", sa.String(length=8), nullable=False),
        sa.Column("debtor_ref", sa.String(length=32), nullable=False),
        sa.Column("debtor_pseudonym", sa.String(length=64), nullable=False),
        sa.Column("request", sa.Text(), nullable=True),
        sa.Column("callback_url", sa.Text(), nullable=True),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("due_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("completed_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("inquiry_id", name=op.f("pk_inquiries")),
        sa.UniqueConstraint(
            "client_id", "idempotency_key", name=op.f("uq_inquiries_client_id_idempotency_key")
        ),
    )
    with op.batch_alter_table("inquiries", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_inquiries_case_ref"), ["case_ref"], unique=False)
        batch_op.create_index(batch_op.f("ix_inquiries_debtor_pseudonym"), ["debtor_pseudonym"], unique=False)

    op.create_table(
        "inquiry_sources",
        sa.Column(
            "id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), autoincrement=True, nullable=False
        ),
        sa.Column("inquiry_id", sa.String(length=36), nullable=False),
        sa.Column("source_id", sa.String(length=48), nullable=False),
        sa.Column("partner_code", sa.String(length=32), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("request_ref", sa.String(length=36), nullable=False),
        sa.Column("request_sha256", sa.String(length=64), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("match_status", sa.String(length=24), nullable=True),
        sa.Column("rows", sa.Text(), nullable=True),
        sa.Column("as_of", sa.String(length=40), nullable=True),
        sa.Column("reference", sa.String(length=128), nullable=True),
        sa.Column("reason", sa.Text(), nullable=True),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("due_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("answered_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["inquiry_id"], ["inquiries.inquiry_id"], name=op.f("fk_inquiry_sources_inquiry_id_inquiries")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_inquiry_sources")),
        sa.UniqueConstraint("inquiry_id", "source_id", name=op.f("uq_inquiry_sources_inquiry_id_source_id")),
        sa.UniqueConstraint("request_ref", name=op.f("uq_inquiry_sources_request_ref")),
    )
    with op.batch_alter_table("inquiry_sources", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_inquiry_sources_inquiry_id"), ["inquiry_id"], unique=False)
        batch_op.create_index("ix_inquiry_sources_pending", ["status", "due_at"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("inquiry_sources", schema=None) as batch_op:
        batch_op.drop_index("ix_inquiry_sources_pending")
        batch_op.drop_index(batch_op.f("ix_inquiry_sources_inquiry_id"))

    op.drop_table("inquiry_sources")
    with op.batch_alter_table("inquiries", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_inquiries_debtor_pseudonym"))
        batch_op.drop_index(batch_op.f("ix_inquiries_case_ref"))

    op.drop_table("inquiries")
