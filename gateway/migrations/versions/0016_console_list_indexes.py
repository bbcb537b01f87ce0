"""console lists: the message list pages by (received_at, message_id); an actor's latest audit record

Revision ID: 0016
Revises: 0015
"""

from __future__ import annotations

from alembic import op

revision = "0016"
down_revision = "0015"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index(
        "ix_messages_received_at_message_id", "messages", ["received_at", "message_id"], unique=False
    )
    op.create_index("ix_audit_log_actor_id", "audit_log", ["actor", "id"], unique=False)


def downgrade() -> None:
    op.drop_index("ix_audit_log_actor_id", table_name="audit_log")
    op.drop_index("ix_messages_received_at_message_id", table_name="messages")
