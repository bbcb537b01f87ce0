"""audit: an index from a person's keyed pseudonym to the audit records naming them

Revision ID: 0008
Revises: 0007
"""

from __future__ import annotations

import json
import re

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None

PSEUDONYM = re.compile(r"[0-9a-f]{64}")


def upgrade() -> None:
    table = op.create_table(
        "audit_persons",
        sa.Column("person_ref", sa.String(length=64), nullable=False),
        sa.Column("audit_id", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("person_ref", "audit_id", name=op.f("pk_audit_persons")),
    )
    # Records written before this revision: the same rule as gateway.storage.audit.persons_named.
    conn = op.get_bind()
    rows = conn.execute(
        sa.text("SELECT id, data FROM audit_log WHERE data LIKE '%\"persons\"%' OR data LIKE '%\"debtor\"%'")
    )
    found = []
    for audit_id, data in rows:
        parsed = json.loads(data) if data else {}
        named = [*(parsed.get("persons") or []), parsed.get("debtor")]
        refs = {p for p in named if isinstance(p, str) and PSEUDONYM.fullmatch(p)}
        found += [{"person_ref": ref, "audit_id": audit_id} for ref in sorted(refs)]
    if found:
        op.bulk_insert(table, found)


def downgrade() -> None:
    op.drop_table("audit_persons")
