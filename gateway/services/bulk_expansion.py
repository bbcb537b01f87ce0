"""Turning an accepted bulk lookup into its inquiries, a chunk of debtors per write transaction.

Runs in the workers (:class:`BulkExpander`, started by ``gateway/worker/main.py``): the api answers the
bulk with one small transaction and never holds the database's single writer for a thousand debtors,
and whichever worker is alive finishes a bulk, after a restart too, with no coordination beyond the
database. A worker takes a bulk with a lease (``claimed_by``/``claimed_until``), renewed by every chunk;
a worker that dies leaves the lease to run out and another takes the bulk where it stopped.

Each chunk is all or nothing, and never done twice: its transaction first moves the bulk's ``expanded``
counter from where this worker found it (the fence, :func:`gateway.storage.bulk.advance`), then stores
the chunk's inquiries (deterministic ids, :func:`gateway.services.bulk.inquiry_id_of`), their sources,
partner requests and ``assets.inquire`` audit records. A worker whose lease was taken over finds the
counter moved and writes nothing.
"""

from __future__ import annotations

import asyncio
import dataclasses
import hashlib
import json
import logging
import os
import socket
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy.ext.asyncio import AsyncConnection

from gateway.domain import inquiry as rules
from gateway.partners import Partner
from gateway.security.signing import canonical_json
from gateway.services.bulk import debtor_inquiry, inquiry_id_of
from gateway.services.inquiries import InquiryService
from gateway.settings import BulkSettings
from gateway.storage import bulk as store
from gateway.storage import inquiries as inquiry_store
from gateway.storage import outbox
from gateway.storage.audit import append_many
from gateway.storage.database import Database
from gateway.storage.timestamps import now

log = logging.getLogger(__name__)


class BulkExpander:
    """Expands accepted bulks into inquiries; one per worker process."""

    def __init__(
        self,
        db: Database,
        inquiries: InquiryService,
        partners: list[Partner],
        settings: BulkSettings,
        handover: outbox.Handover | None = None,
        owner: str | None = None,
        clock: Callable[[], datetime] = now,
    ) -> None:
        self._db = db
        self._inquiries = inquiries
        self._refs = [rules.PartnerRef(code=p.code, kind=p.kind) for p in partners if p.is_lookup_source]
        self._settings = settings
        #: The relay of this process: publishes each chunk's partner requests from its commit.
        self._handover = handover or outbox.NoHandover()
        self.owner = owner or f"bulk:{socket.gethostname()}:{os.getpid()}:{id(self):x}"
        self._clock = clock

    async def run(self) -> None:
        """Until cancelled: take the oldest bulk left to expand and expand it; idle, look every
        ``poll_seconds`` (a read)."""
        while True:
            try:
                busy = await self.expand_next()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("bulk expansion failed; trying again")
                busy = False
            if not busy:
                await asyncio.sleep(self._settings.poll_seconds)

    async def expand_next(self, max_chunks: int | None = None) -> bool:
        """Claim one bulk and expand it (at most ``max_chunks`` chunks); False when there was none."""
        async with self._db.read() as conn:
            bulk_id = await store.claimable(conn, self.owner, self._clock())
        if bulk_id is None:
            return False
        at = self._clock()
        until = at + timedelta(seconds=self._settings.lease_seconds)

        async def take(conn: AsyncConnection) -> bool:
            return await store.claim(conn, bulk_id, self.owner, at, until)

        if not await self._db.write(take):
            return True  # another worker took it first: look again at once
        await self.expand(bulk_id, max_chunks)
        return True

    async def expand(self, bulk_id: str, max_chunks: int | None = None) -> None:
        """Expand the bulk this worker holds, chunk after chunk, until done, the lease is lost, or
        ``max_chunks`` chunks were stored."""
        async with self._db.read() as conn:
            bulk = await store.get(conn, bulk_id)
        if bulk is None:
            return
        request = json.loads(bulk.request)
        sources, problems = rules.expand_sources(request["sources"], self._refs)
        if problems or not sources:
            # Validated at acceptance; a partner removed from the configuration since leaves a source
            # that cannot be asked. Stopped for the operator (and not taken again and again), never
            # expanded further with fewer sources than the client was told.
            log.error("bulk %s: its sources no longer resolve (%s); expansion stopped", bulk_id, problems)
            at = self._clock()
            await self._db.write(lambda conn: store.stop(conn, bulk_id, self.owner, at))
            return
        done, chunks = int(bulk.expanded), 0
        while done < bulk.debtors and (max_chunks is None or chunks < max_chunks):
            to = min(done + self._settings.chunk_debtors, bulk.debtors)
            if not await self._chunk(bulk, request, sources, done, to):
                log.info("bulk %s: taken over by another worker at %d", bulk_id, done)
                return
            done, chunks = to, chunks + 1

    async def _chunk(
        self, bulk: Any, request: dict[str, Any], sources: list[rules.SourceRef], done: int, to: int
    ) -> bool:
        at = self._clock()
        until = at + timedelta(seconds=self._settings.lease_seconds)
        built = []
        for position in range(done, to):
            body = debtor_inquiry(request, position)
            inquiry_id = inquiry_id_of(bulk.bulk_id, position)
            digest = _sha256(body)
            rows = self._inquiries.rows_for(
                body,
                sources,
                inquiry_id,
                bulk.client_id,
                bulk.token_subject,
                None,
                digest,
                bulk.callback_base,
            )
            audit = dataclasses.replace(rows.audit, data={**(rows.audit.data or {}), "bulk_id": bulk.bulk_id})
            built.append((position, rows._replace(audit=audit)))
        claim = self._handover.claim()
        held: list[outbox.Pending] = []

        async def store_chunk(conn: AsyncConnection) -> bool:
            if not await store.advance(conn, bulk.bulk_id, self.owner, done, to, bulk.debtors, at, until):
                return False
            # The chunk in a handful of statements: its inquiries, sources and requests in one INSERT
            # each, its debtors' audit records in one chain step.
            chunk = [(rows.inquiry, rows.sources, rows.requests) for _, rows in built]
            held.extend(await inquiry_store.create_many(conn, chunk, claim))
            await append_many(conn, [rows.audit for _, rows in built])
            await store.link(conn, bulk.bulk_id, [(p, rows.inquiry["inquiry_id"]) for p, rows in built])
            return True

        stored = await self._db.write(store_chunk)
        if stored:
            self._handover.hand_over(held)
        return stored


def _sha256(body: dict[str, Any]) -> str:
    return hashlib.sha256(canonical_json(body)).hexdigest()
