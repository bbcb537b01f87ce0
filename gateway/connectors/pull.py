"""The connector of a pull partner (``delivery = "pull"`` in config/partners.toml): a partner that will
not be called and fetches its work instead (``GET /v1/partner-inbox``, :mod:`gateway.services.pulls`).

Handing it a lookup or a document stores the item in its inbox (``partner_pulls``) and answers what an
asynchronous partner answers: the lookup stays pending until the partner posts its answer to ``POST
/v1/partner-answers``; the document is accepted, its answer pushed later to ``POST /v1/documents``.
Storing is idempotent on the item's id (``request_ref`` / ``message_id``): a redelivered queue message
finds its item and adds none.

A document handed over is not *delivered* yet: its receipt is a :class:`HeldForPull`, on which the
delivery worker records nothing; the delivery is recorded when the partner acknowledges the item.

:class:`PullGuard` stands where a :class:`GuardedConnector` stands for a partner that is called: a pull
partner is never called, so there is no breaker, no retry and no timeout to apply — its outage is a
lease running out. A database failure while storing is raised as it is, so that the queue message goes
back to the broker (never taken for a partner's fault, which would park a document or fail a lookup).
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from gateway.connectors.base import Connector, LookupAnswer, LookupRequest, PartnerReceipt, document_id
from gateway.connectors.resilience import (
    CALL_SECONDS,
    CALLS,
    DELIVERIES,
    DELIVERY_SECONDS,
    DeliveryOutcome,
    GuardedConnector,
    Outcome,
)
from gateway.connectors.rest import lookup_payload
from gateway.partners import Partner
from gateway.storage import pulls
from gateway.storage.database import Database

#: How a pulled lookup's answer status reads until the partner answers (as :data:`bank.ACCEPTED`).
ACCEPTED = "accepted"


@dataclass(frozen=True, slots=True)
class HeldForPull(PartnerReceipt):
    """The document waits in the partner's inbox: delivered only once the partner acknowledges it."""


class PullConnector:
    """Stores what the gateway has for one pull partner in its inbox."""

    def __init__(self, partner: Partner, db: Database) -> None:
        self.partner = partner
        self._db = db

    async def lookup(self, request: LookupRequest) -> LookupAnswer:
        payload = json.dumps(lookup_payload(request), ensure_ascii=False)
        await self._store(request.request_ref, pulls.LOOKUP, payload, 0)
        return LookupAnswer(match_status=ACCEPTED, accepted_later=True)

    async def deliver(self, document: Mapping[str, Any]) -> PartnerReceipt:
        message_id = document_id(document)
        urgent = 1 if document.get("priority") == "urgent" else 0
        await self._store(message_id, pulls.DOCUMENT, json.dumps(document, ensure_ascii=False), urgent)
        return HeldForPull(accepted_later=True)

    async def _store(self, item_id: str, kind: str, payload: str, priority: int) -> None:
        code = self.partner.code

        async def body(conn: Any) -> bool:
            return await pulls.store(
                conn, item_id=item_id, partner=code, kind=kind, payload=payload, priority=priority
            )

        await self._db.write(body)

    async def close(self) -> None:
        """Nothing to release: the database is the worker's."""


class PullGuard(GuardedConnector):
    """A pull partner's place among the guarded connectors: its connector called directly (see the
    module's docstring), counted under the same metrics as a call to a partner."""

    def __init__(self, partner: Partner, connector: Connector) -> None:
        super().__init__(partner, connector)

    async def call(self, request: LookupRequest) -> Outcome:
        started = time.perf_counter()
        answer = await self.connector.lookup(request)
        CALLS.labels(self.partner.code, "pending").inc()
        CALL_SECONDS.labels(self.partner.code).observe(time.perf_counter() - started)
        return Outcome("pending", answer, attempts=1)

    async def deliver(self, document: Mapping[str, Any], *, urgent: bool = False) -> DeliveryOutcome:
        started = time.perf_counter()
        receipt = await self.connector.deliver(document)
        DELIVERIES.labels(self.partner.code, "held_for_pull").inc()
        DELIVERY_SECONDS.labels(self.partner.code).observe(time.perf_counter() - started)
        return DeliveryOutcome("delivered", receipt, attempts=1)


def guard(partner: Partner, connector: Connector) -> GuardedConnector:
    """The guard a partner's connector is used through: :class:`PullGuard` for a pull partner."""
    return PullGuard(partner, connector) if partner.pulls else GuardedConnector(partner, connector)
