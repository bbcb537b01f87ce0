"""Pull partners fetch their work: ``GET /v1/partner-inbox`` leases items of the calling partner's inbox,
``POST /v1/partner-inbox/acknowledgement`` acknowledges them (docs/partners.md, "Pull mode").

- **Deny by default.** The client needs the grant ``partner.pull`` and must be a partner configured with
  ``delivery = "pull"``; it only ever sees and acknowledges its own items (the inbox is the caller's, no
  path or parameter names another).
- **Leases.** Every item handed out is leased to that fetch for the partner's ``lease_seconds``, under a
  token the fetch answers with; an item not acknowledged under that token by then is handed out again by
  a later fetch. The partner executes each item once (its ``item_id`` is the lookup's ``request_ref`` or
  the document's ``message_id``, its idempotency key), so a repeat costs nothing.
- **Withdrawn, not handed out.** A document revoked (or delivered some other way) while it waited, or a
  lookup answered or timed out meanwhile, is withdrawn when a fetch comes across it.
- **Delivered on acknowledgement.** A document is ``delivered`` (status, evidence with ``channel: pull``,
  delivery count) in the transaction that records its acknowledgement; a lookup needs no record: its
  answer is the partner's ``POST /v1/partner-answers``.
- **Audited.** Every fetch that hands items out is audited in the transaction that leases them (who,
  which item ids and kinds, the lease; never a payload); an empty fetch hands nothing out and writes
  nothing. Every acknowledgement is audited with the delivery it records.
- **Bounded.** ``limit`` is capped at :data:`MAX_ITEMS`, ``wait`` at :data:`MAX_WAIT_SECONDS`, and a
  client has at most :data:`MAX_WAITERS` fetches waiting at once (one more is ``429``).

A waiting fetch polls its partner's inbox every :data:`POLL_SECONDS`: items are stored by the worker
processes, the fetch is served by an api process, and nothing signals across processes on SQLite (a
PostgreSQL ``LISTEN`` would serve one backend only). The poll is a read of one index entry, which on
SQLite's WAL never waits behind a writer; a quarter of a second is what an item may wait before a waiting
fetch sees it.
"""

from __future__ import annotations

import asyncio
import json
import secrets
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Final

from prometheus_client import Counter
from sqlalchemy.ext.asyncio import AsyncConnection

from gateway.domain.doctypes import DocumentType
from gateway.domain.errors import Forbidden, NotFound, Refused
from gateway.domain.status import Status, must_not_deliver
from gateway.partners import Partner
from gateway.security.tokens import Principal
from gateway.services.deliveries import (
    DELIVERED,
    Delivered,
    Issue,
    delivery_detail,
    follow_revoked,
    record_delivered,
)
from gateway.storage import messages as message_store
from gateway.storage import pulls as store
from gateway.storage.audit import AuditEntry, append
from gateway.storage.database import Database
from gateway.storage.inquiries import PENDING as SOURCE_PENDING
from gateway.storage.timestamps import iso, now
from gateway.validation.catalog import SchemaCatalog

__all__ = [
    "GRANT",
    "MAX_ITEMS",
    "MAX_WAITERS",
    "MAX_WAIT_SECONDS",
    "POLL_SECONDS",
    "PullService",
    "TooManyWaiting",
    "Waiters",
]

GRANT: Final = "partner.pull"
MAX_ITEMS: Final = 100
DEFAULT_ITEMS: Final = 10
MAX_WAIT_SECONDS: Final = 30.0
MAX_WAITERS: Final = 4
POLL_SECONDS: Final = 0.25
ACK_SCHEMA: Final = "partner.inbox.acknowledgement"
ACTOR_DELIVERY: Final = "gateway.pull"

FETCHED = Counter(
    "gateway_pull_items_fetched_total", "Items handed out to pull partners", ["partner", "kind"]
)
REFETCHED = Counter(
    "gateway_pull_items_refetched_total",
    "Items handed out again after a lease ran out unacknowledged",
    ["partner"],
)
ACKNOWLEDGED = Counter("gateway_pull_items_acknowledged_total", "Items acknowledged", ["partner", "kind"])
WITHDRAWN = Counter(
    "gateway_pull_items_withdrawn_total", "Items withdrawn before they were handed out", ["partner", "kind"]
)


class TooManyWaiting(Exception):
    """The client already has :data:`MAX_WAITERS` fetches waiting (answered ``429``)."""

    retry_after = 1


@dataclass(slots=True)
class Waiters:
    """Fetches waiting now, per client, in this process."""

    limit: int = MAX_WAITERS
    counts: dict[str, int] = field(default_factory=dict)

    def enter(self, client_id: str) -> None:
        if self.counts.get(client_id, 0) >= self.limit:
            raise TooManyWaiting(f"client {client_id} already has {self.limit} fetches waiting")
        self.counts[client_id] = self.counts.get(client_id, 0) + 1

    def leave(self, client_id: str) -> None:
        left = self.counts.get(client_id, 1) - 1
        if left > 0:
            self.counts[client_id] = left
        else:
            self.counts.pop(client_id, None)


@dataclass(frozen=True, slots=True)
class _Fetched:
    lease: str
    until: datetime  # when the lease ends
    items: list[store.Item]


class PullService:
    def __init__(
        self,
        db: Database,
        partners: Sequence[Partner],
        types: Mapping[str, DocumentType],
        catalog: SchemaCatalog,
        issue: Issue,
        waiters: Waiters | None = None,
        poll_seconds: float = POLL_SECONDS,
    ) -> None:
        self._db = db
        self._partners = {p.code: p for p in partners if p.pulls}
        self._types = types
        self._catalog = catalog
        self._issue = issue
        self._waiters = waiters if waiters is not None else Waiters()
        self._poll = poll_seconds

    def _partner(self, principal: Principal) -> Partner:
        client = principal.client
        if not client.allows(GRANT):
            raise Forbidden(f"client {client.id} is not granted {GRANT}")
        partner = self._partners.get(client.id)
        if partner is None:
            # Same words whether the client is another kind of party or a partner that is called.
            raise NotFound(f'client {client.id} has no inbox: it is no partner with delivery = "pull"')
        return partner

    # -- fetch ------------------------------------------------------------------------------------

    async def fetch(
        self, principal: Principal, wait: float = 0.0, limit: int = DEFAULT_ITEMS
    ) -> dict[str, Any]:
        """Lease up to ``limit`` of the caller's items, waiting up to ``wait`` seconds for one to come
        (both capped); the answer lists them with their lease, or none."""
        partner = self._partner(principal)
        limit = max(1, min(int(limit), MAX_ITEMS))
        wait = max(0.0, min(float(wait), MAX_WAIT_SECONDS))
        fetched = await self._lease(principal, partner, limit)
        if not fetched.items and wait > 0:
            client_id = principal.client.id
            self._waiters.enter(client_id)
            try:
                fetched = await self._wait_and_lease(principal, partner, limit, wait)
            finally:
                self._waiters.leave(client_id)
        return _view(fetched, wait)

    async def _wait_and_lease(
        self, principal: Principal, partner: Partner, limit: int, wait: float
    ) -> _Fetched:
        loop = asyncio.get_running_loop()
        give_up = loop.time() + wait
        while True:
            await asyncio.sleep(min(self._poll, max(0.0, give_up - loop.time())))
            async with self._db.read() as conn:
                ready = await store.available(conn, partner.code)
            if ready:
                fetched = await self._lease(principal, partner, limit)
                if fetched.items:
                    return fetched
            if loop.time() >= give_up:
                return _Fetched("", now(), [])

    async def _lease(self, principal: Principal, partner: Partner, limit: int) -> _Fetched:
        token = secrets.token_urlsafe(24)
        code = partner.code

        async def body(conn: AsyncConnection) -> _Fetched:
            at = now()
            found = await store.candidates(conn, code, limit, at)
            stale = [item for item in found if not _wanted(item)]
            await store.withdraw(conn, [item.item_id for item in stale], at)
            for item in stale:
                WITHDRAWN.labels(code, item.kind).inc()
                if item.kind == store.DOCUMENT and item.status == Status.REVOKED:
                    await message_store.add_evidence(
                        conn, item.item_id, "not_delivered_revoked", ACTOR_DELIVERY
                    )
            wanted = [item for item in found if _wanted(item)]
            taken = set(await store.take(conn, [i.item_id for i in wanted], token, partner.lease_seconds, at))
            items = [item for item in wanted if item.item_id in taken]
            if items:
                await append(conn, _fetch_audit(principal, items, token, partner.lease_seconds))
            return _Fetched(token, at + timedelta(seconds=partner.lease_seconds), items)

        fetched = await self._db.write(body)
        for item in fetched.items:
            FETCHED.labels(code, item.kind).inc()
            if item.fetches > 0:
                REFETCHED.labels(code).inc()
        return fetched

    # -- acknowledge --------------------------------------------------------------------------------

    async def acknowledge(self, principal: Principal, document: object) -> dict[str, Any]:
        """The partner has these items of one fetch: each acknowledged once, a document recorded as
        delivered with it. Items it cannot acknowledge (unknown, another partner's, taken again by a
        later fetch after its lease ran out, withdrawn) are listed as not acknowledged."""
        partner = self._partner(principal)
        violations = self._catalog.violations(ACK_SCHEMA, document)
        if violations:
            raise Refused(violations)
        assert isinstance(document, dict)
        lease, ids = str(document["lease"]), [str(i) for i in document["items"]]
        recorded: list[Delivered] = []

        async def body(conn: AsyncConnection) -> tuple[list[store.Item], list[store.Item]]:
            recorded.clear()  # a rolled-back run of this body may have left some
            at = now()
            acked, again = await store.acknowledge(conn, partner.code, lease, ids, at)
            for item in acked:
                if item.kind == store.DOCUMENT:
                    recorded.append(await self._record_delivery(conn, item, at))
            await append(conn, _ack_audit(principal, acked, again, lease))
            return acked, again

        acked, again = await self._db.write(body)
        for item in acked:
            ACKNOWLEDGED.labels(partner.code, item.kind).inc()
            if item.kind == store.DOCUMENT:
                DELIVERED.labels(partner.code, "pull").inc()
        await follow_revoked(self._db.read, self._issue, recorded)
        done = {item.item_id for item in (*acked, *again)}
        return {
            "acknowledged": [i for i in dict.fromkeys(ids) if i in done],
            "not_acknowledged": [i for i in dict.fromkeys(ids) if i not in done],
        }

    async def _record_delivery(self, conn: AsyncConnection, item: store.Item, at: datetime) -> Delivered:
        document = json.loads(item.payload) if item.payload else {}
        doc_type = self._types.get(str(document.get("message_type")))
        detail = delivery_detail("pull", item.fetches)
        detail |= {"answer": "later", "fetches": item.fetches}
        outcome = await record_delivered(
            conn, doc_type, item.item_id, document.get("body"), detail, at, ACTOR_DELIVERY
        )
        return Delivered(outcome.message_id, outcome.moved, outcome.status, item.partner)


def _wanted(item: store.Item) -> bool:
    """Whether an item is still to be handed out: a lookup still waiting for its answer; a document not
    revoked (nor delivered some other way) before anyone fetched it. A document handed out before stays
    wanted whatever happened since: the partner may hold it, so only its acknowledgement settles it (and
    records the delivery, after which a revocation follows it, or the evidence its early answer lacked)."""
    if item.kind == store.LOOKUP:
        return item.status == SOURCE_PENDING
    if item.status is None:
        return False
    return item.fetches > 0 or not must_not_deliver(Status(item.status))


def _view(fetched: _Fetched, wait: float) -> dict[str, Any]:
    if not fetched.items:
        return {"lease": None, "leased_until": None, "items": [], "waited_up_to": wait}
    return {
        "lease": fetched.lease,
        "leased_until": iso(fetched.until),
        "items": [
            {
                "item_id": item.item_id,
                "kind": item.kind,
                "priority": "urgent" if item.priority > 0 else "normal",
                "fetches": item.fetches + 1,
                "body": json.loads(item.payload or "{}"),
            }
            for item in fetched.items
        ],
        "waited_up_to": wait,
    }


def _fetch_audit(principal: Principal, items: list[store.Item], lease: str, seconds: float) -> AuditEntry:
    return AuditEntry(
        actor=principal.client.id,
        subject=principal.subject,
        action="partner.pull",
        outcome="read",
        object_ref=f"lease:{lease[:12]}",
        data={
            "items": [item.item_id for item in items],
            "kinds": sorted({item.kind for item in items}),
            "again": [item.item_id for item in items if item.fetches > 0],
            "lease_seconds": seconds,
            **principal.audit_data(),
        },
    )


def _ack_audit(
    principal: Principal, acked: list[store.Item], again: list[store.Item], lease: str
) -> AuditEntry:
    return AuditEntry(
        actor=principal.client.id,
        subject=principal.subject,
        action="partner.acknowledge",
        outcome="confirmed",
        object_ref=f"lease:{lease[:12]}",
        data={
            "items": [item.item_id for item in acked],
            "repeated": [item.item_id for item in again],
            **principal.audit_data(),
        },
    )
