"""The long-term proof job: every worker takes the signed documents whose proof is due, one at a time
(a lease in the database, so workers never collide and a dead one's claim runs out), and adds the next
step — validation material and a first archive time-stamp on arrival, a new archive time-stamp before the
last one's certificate expires (gateway/signatures/longterm.py).

A step that fails (the time-stamping service or a responder down) is tried again ``retry_seconds`` later;
the file as it was stays kept. The job runs only where trust anchors are configured: without them no
signature was checked and none is kept."""

from __future__ import annotations

import asyncio
import logging
import os
import socket
from collections.abc import Callable, Sequence
from datetime import datetime, timedelta
from typing import Any

from prometheus_client import Counter

from gateway.settings import LongTermSettings
from gateway.storage import signed_documents as store
from gateway.storage.database import Database
from gateway.storage.timestamps import now

log = logging.getLogger(__name__)

STEPS = Counter("gateway_long_term_proof_steps_total", "Long-term proof steps by outcome", ["outcome"])
#: A worker holds a file this much longer than a step's budget: a step never outlives its claim.
LEASE_MARGIN_SECONDS = 30.0
#: Without an archive time-stamp (no service configured), a kept file is looked at again this often.
RECHECK_WITHOUT_TSA = timedelta(days=30)


class ProofJob:
    def __init__(
        self,
        db: Database,
        roots: Sequence[Any],
        settings: LongTermSettings,
        clock: Callable[[], datetime] = now,
        worker: str | None = None,
        revocation_hosts: Sequence[str] = (),
    ) -> None:
        self._db = db
        self._roots = list(roots)
        self._settings = settings
        self._clock = clock
        self._hosts = tuple(revocation_hosts)
        self.worker = worker or f"{socket.gethostname()}:{os.getpid()}"[:64]

    async def run_once(self) -> bool:
        """One due file a step further; False when none was due."""
        from gateway.signatures.longterm import ProofFailed, advance

        s = self._settings
        at = self._clock()
        lease = timedelta(seconds=s.budget_seconds + LEASE_MARGIN_SECONDS)
        row = await self._db.write(lambda conn: store.claim_due(conn, self.worker, at, lease))
        if row is None:
            return False
        try:
            proof = await advance(row.pdf, self._roots, s.tsa_url or None, s.budget_seconds, self._hosts)
        except ProofFailed as exc:
            STEPS.labels("failed").inc()
            log.warning("long-term proof of %s not made now (%s); retrying later", row.message_id, exc)
            error, retry_at = str(exc), self._clock() + timedelta(seconds=s.retry_seconds)
            await self._db.write(
                lambda conn: store.store_failure(conn, row.message_id, self.worker, error, retry_at, at)
            )
            return True
        if proof.archive_expires_at is not None:
            due = proof.archive_expires_at - timedelta(days=s.renew_before_days)
            if due <= at:
                # The service stamps with a certificate already inside the renewal window: renewing again
                # at once would only repeat that. Tried again later, when the service may have a new one.
                log.warning(
                    "the time-stamping service's certificate expires %s, within long_term.renew_before_days",
                    proof.archive_expires_at.isoformat(),
                )
                due = at + timedelta(seconds=s.retry_seconds)
        else:
            due = at + RECHECK_WITHOUT_TSA
        kept = await self._db.write(
            lambda conn: store.store_proof(
                conn,
                row.message_id,
                self.worker,
                proof.pdf,
                proof.level,
                proof.timestamps,
                proof.archive_expires_at,
                due,
                self._clock(),
            )
        )
        STEPS.labels("done" if kept else "superseded").inc()
        log.info(
            "long-term proof of %s: %s, %d archive time-stamp(s)",
            row.message_id,
            proof.level,
            proof.timestamps,
        )
        return True

    async def run(self) -> None:
        while True:
            try:
                if await self.run_once():
                    continue
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("long-term proof job failed; retrying")
            await asyncio.sleep(self._settings.poll_seconds)
