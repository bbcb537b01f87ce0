"""A message's signature as the console shows it: the validation report kept on arrival (the
``signature_checked`` evidence) and how far the document's long-term proof has got."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncConnection

from gateway.services.signature_intake import EVENT, summary
from gateway.storage import tables as t
from gateway.storage.timestamps import as_utc


@dataclass(frozen=True, slots=True)
class Proof:
    level: str
    timestamps: int
    archive_expires_at: datetime | None
    due_at: datetime
    attempts: int
    last_error: str | None


@dataclass(frozen=True, slots=True)
class SignatureView:
    """``summary``: the ``signature`` of the API's message view; ``checks``: (signature field, check,
    result, reason) rows; ``revocation``: the revocation answers used; ``proof``: None when no file is
    kept."""

    summary: dict[str, Any]
    checks: list[tuple[str, str, str, str]]
    revocation: list[dict[str, Any]]
    proof: Proof | None


async def signature_view(conn: AsyncConnection, message_id: str) -> SignatureView | None:
    e = t.evidences
    detail = (
        await conn.execute(
            select(e.c.detail)
            .where(e.c.message_id == message_id, e.c.event == EVENT)
            .order_by(e.c.id)
            .limit(1)
        )
    ).scalar()
    if detail is None:
        return None
    parsed = json.loads(detail)
    shown = summary(parsed)
    report = shown.get("report") or {}
    checks: list[tuple[str, str, str, str]] = []
    revocation: list[dict[str, Any]] = []
    for sig in report.get("signatures") or []:
        for check in sig.get("checks") or []:
            checks.append(
                (str(sig.get("field")), check.get("name"), check.get("result"), check.get("reason"))
            )
        revocation.extend(sig.get("revocation_data") or [])
    kept = t.signed_documents
    row = (
        await conn.execute(
            select(
                kept.c.level,
                kept.c.timestamps,
                kept.c.archive_expires_at,
                kept.c.due_at,
                kept.c.attempts,
                kept.c.last_error,
            ).where(kept.c.message_id == message_id)
        )
    ).first()
    proof = None
    if row is not None:
        proof = Proof(
            row.level,
            int(row.timestamps),
            as_utc(row.archive_expires_at) if row.archive_expires_at is not None else None,
            as_utc(row.due_at),
            int(row.attempts),
            row.last_error,
        )
    return SignatureView(shown, checks, revocation, proof)
