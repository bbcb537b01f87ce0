"""``run.py audit``: the audit trail and the evidence it gives."""

from __future__ import annotations

import argparse
import asyncio
from typing import Any

from gateway.settings import Settings


def _audit(settings: Settings, _args: argparse.Namespace) -> int:
    """Walk the hash chain of the audit log: 0 when intact, 1 naming the first record that is not."""
    from sqlalchemy import func, select

    from gateway.storage.audit import verify_chain
    from gateway.storage.database import Database
    from gateway.storage.tables import audit_log

    async def run() -> tuple[int | None, int]:
        db = Database(settings.resolved_database_url)
        try:
            async with db.read() as conn:
                count = int((await conn.execute(select(func.count()).select_from(audit_log))).scalar_one())
                return await verify_chain(conn), count
        finally:
            await db.dispose()

    broken, count = asyncio.run(run())
    if broken is None:
        print(f"audit chain intact: {count} record(s)")
        return 0
    if broken == -1:
        print("audit chain broken: its head does not match the last record (records cut from the end)")
    else:
        print(f"audit chain broken at record {broken}: edited, deleted or reordered from there on")
    return 1


def register(sub: Any) -> None:
    audit = sub.add_parser("audit", help="the audit log")
    audit.add_argument("action", choices=["verify"], help="walk the hash chain; exit 1 if it is broken")
    audit.set_defaults(func=_audit)
