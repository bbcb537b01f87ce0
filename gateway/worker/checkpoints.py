"""Signs the head of the audit chain every N records or M minutes (``audit.checkpoint_every_*``).

Every worker runs it; they never conflict: a checkpoint is written under the audit head's row lock and
at most once per record, so the first worker to find one due signs it and the others find nothing to do.
"""

from __future__ import annotations

import asyncio
import logging

from gateway.security.signing import Signer
from gateway.settings import AuditSettings
from gateway.storage.checkpoints import ChainBroken, checkpoint_if_due
from gateway.storage.database import Database

log = logging.getLogger(__name__)
POLL_SECONDS = 5.0


async def run(
    db: Database, signer: Signer, settings: AuditSettings, poll_seconds: float = POLL_SECONDS
) -> None:
    interval = min(poll_seconds, settings.checkpoint_every_minutes * 60)
    while True:
        try:
            made = await checkpoint_if_due(
                db, signer, settings.checkpoint_every_records, settings.checkpoint_every_minutes
            )
            if made is not None:
                # Also a copy outside the database: shipped logs anchor the chain a second time.
                log.info(
                    "audit checkpoint %s: record %s head %s key %s signature %s",
                    made["id"],
                    made["audit_id"],
                    made["head_hash"],
                    made["key_id"],
                    made["signature"],
                )
        except asyncio.CancelledError:
            raise
        except ChainBroken as exc:
            log.error("audit chain broken, not signing it: %s; run 'python run.py audit verify'", exc)
        except Exception:
            log.exception("audit checkpoint failed; retrying")
        await asyncio.sleep(interval)
