"""Asset inquiries: one call fans out to every source asked; answers come back per source."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import uuid
from dataclasses import asdict, replace
from datetime import UTC, datetime, timedelta
from typing import Any, NamedTuple

from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection

from gateway.domain import inquiry as rules
from gateway.domain.calendar import WorkingCalendar, due_at
from gateway.domain.errors import Conflict, Forbidden, NotFound, Refused
from gateway.domain.identifiers import mask, pseudonym
from gateway.domain.lookup import LookupRequest, Subject, Title
from gateway.partners import Partner
from gateway.security.clients import Client
from gateway.security.outbound import OutboundPolicy
from gateway.security.signing import canonical_json
from gateway.security.tokens import Principal
from gateway.services.inquiry_results import representation
from gateway.services.inquiry_watch import InquiryWatch
from gateway.storage import inquiries as store
from gateway.storage import outbox
from gateway.storage.audit import AuditEntry, append, append_many
from gateway.storage.database import Database
from gateway.storage.timestamps import now
from gateway.validation import SchemaCatalog

SERVICE = "assets.inquire"
MESSAGE_TYPE = "asset.inquiry"
#: A waiting ``Prefer: wait`` call reads its inquiry again this often when no hint woke it (a hint lost,
#: or no broker connection in this process).
SAFETY_READ_SECONDS = 1.0
#: The type of one lookup request to one partner (an AMQP message's ``type`` on its work queue).
LOOKUP_TYPE = "asset.lookup"


class InquiryRows(NamedTuple):
    """What storing one inquiry writes (:meth:`InquiryService.rows_for`), in one transaction."""

    inquiry: dict[str, Any]
    sources: list[dict[str, Any]]
    requests: list[dict[str, Any]]
    audit: AuditEntry


class InquiryService:
    def __init__(
        self,
        db: Database,
        catalog: SchemaCatalog,
        partners: list[Partner],
        legal_bases: dict[str, str],
        calendar: WorkingCalendar,
        pepper: bytes,
        outbound: OutboundPolicy | None = None,
    ) -> None:
        self._db = db
        #: Who waits for which inquiry here (``Prefer: wait``); woken by answers and hints.
        self.watch = InquiryWatch()
        #: The relay of this process, when one runs: publishes the partner requests from the commit.
        self.relay: outbox.Handover = outbox.NoHandover()
        self._outbound = outbound or OutboundPolicy()
        self._catalog = catalog
        self._partners = {p.code: p for p in partners}
        self._refs = [rules.PartnerRef(code=p.code, kind=p.kind) for p in partners]
        self._legal_bases = legal_bases
        self._calendar = calendar
        self._pepper = pepper

    async def create(
        self,
        principal: Principal,
        body: object,
        idempotency_key: str | None,
        callback_base: str | None = None,
    ) -> tuple[dict[str, Any], bool]:
        """Validate, authorise, store the inquiry and its partner requests. Returns (view, created)."""
        client = principal.client
        require_lookup_grant(client)
        violations = self._catalog.violations(MESSAGE_TYPE, body)
        if violations:
            raise Refused(violations)
        assert isinstance(body, dict)
        sources = await checked_sources(body, self._refs, set(self._legal_bases), self._outbound, client)

        digest = hashlib.sha256(canonical_json(body)).hexdigest()
        if idempotency_key:
            async with self._db.read() as conn:
                earlier = await store.by_idempotency_key(conn, client.id, idempotency_key)
            if earlier is not None:
                if earlier.request_sha256 != digest:
                    raise Conflict("this Idempotency-Key was used for a different inquiry")
                return await self.view(principal, earlier.inquiry_id), False

        inquiry_id = str(uuid.uuid4())
        inquiry, source_rows, requests, audit = self.rows_for(
            body, sources, inquiry_id, client.id, principal.subject, idempotency_key, digest, callback_base
        )
        if principal.xroad is not None:  # how the request arrived joins its record
            audit = replace(audit, data={**(audit.data or {}), **principal.audit_data()})
        try:
            claim = self.relay.claim()
            held: list[outbox.Pending] = []

            async def create(conn: AsyncConnection) -> None:
                held[:] = await store.create(conn, inquiry, source_rows, requests, claim)
                await append(conn, audit)

            await self._db.write(create)
            self.relay.hand_over(held)
        except IntegrityError:
            if not idempotency_key:
                raise
            # The same Idempotency-Key arrived twice at once and the other request won: answer with its
            # inquiry (or 409 if the bodies differ), as if this one had come second.
            async with self._db.read() as conn:
                earlier = await store.by_idempotency_key(conn, client.id, idempotency_key)
            if earlier is None:
                raise
            if earlier.request_sha256 != digest:
                raise Conflict("this Idempotency-Key was used for a different inquiry") from None
            return await self.view(principal, earlier.inquiry_id), False
        return await self._view(principal, inquiry_id), True

    # -- the rows of one inquiry (shared with bulk lookups, gateway/services/bulk.py) ---------------

    def rows_for(
        self,
        body: dict[str, Any],
        sources: list[rules.SourceRef],
        inquiry_id: str,
        client_id: str,
        token_subject: str | None,
        idempotency_key: str | None,
        digest: str,
        callback_base: str | None,
        at: datetime | None = None,
    ) -> InquiryRows:
        """What storing one validated, authorised inquiry writes: the inquiry, a pending row and an outbox
        request per source, and its ``assets.inquire`` audit entry. No I/O."""
        at = at or now()
        urgent = rules.is_urgent(body)
        debtor = body["debtor"]
        subject = Subject(
            id_number=debtor.get("id_number"),
            enterprise_code=debtor.get("enterprise_code"),
            full_name=debtor.get("full_name"),
            date_of_birth=debtor.get("date_of_birth"),
        )
        identity = subject.id_number or subject.enterprise_code or ""
        title = Title.from_dict(body["title"])
        source_rows: list[dict[str, Any]] = []
        requests: list[dict[str, Any]] = []
        deadlines = []
        for ref in sources:
            partner = self._partners[ref.partner_code]
            request_ref = str(uuid.uuid4())
            # The partner is told its deadline in Vietnamese local time, as the calendar answers it.
            local_deadline = whole_second(due_at(at, partner.deadline, self._calendar, urgent))
            lookup = LookupRequest(
                request_ref=request_ref,
                inquiry_id=inquiry_id,
                source_id=ref.source_id,
                partner_code=ref.partner_code,
                kind=ref.kind,
                subject=subject,
                case_ref=body["case_ref"],
                purpose=body["purpose"],
                callback_url=callback_base,
                officer_id=body["officer_id"],
                legal_basis=body["legal_basis"],
                title=title,
                due_at=local_deadline.isoformat(),
            )
            payload = request_payload(lookup)
            # Stored in UTC: SQLite keeps no offset.
            deadline = local_deadline.astimezone(UTC)
            deadlines.append(deadline)
            source_rows.append(
                {
                    "inquiry_id": inquiry_id,
                    "source_id": ref.source_id,
                    "partner_code": ref.partner_code,
                    "kind": ref.kind,
                    "request_ref": request_ref,
                    "request_sha256": hashlib.sha256(canonical_json(payload)).hexdigest(),
                    "status": rules.SourceStatus.PENDING.value,
                    "attempts": 0,
                    "due_at": deadline,
                }
            )
            requests.append(
                {
                    "message_id": request_ref,
                    "exchange": outbox.REQUESTS,
                    "routing_key": ref.partner_code,
                    "priority": 5 if urgent else 0,
                    "headers": {
                        "message_type": LOOKUP_TYPE,
                        "priority": "urgent" if urgent else "normal",
                        "correlation_id": inquiry_id,
                        "source_id": ref.source_id,
                    },
                    "body": json.dumps(payload, ensure_ascii=False),
                    "at": at,
                }
            )
        inquiry = {
            "inquiry_id": inquiry_id,
            "client_id": client_id,
            "idempotency_key": idempotency_key,
            "request_sha256": digest,
            "case_ref": body["case_ref"],
            "officer_id": body["officer_id"],
            "legal_basis": body["legal_basis"],
            "purpose": body["purpose"],
            "priority": body.get("priority", "normal"),
            "debtor_ref": mask(identity) if subject.id_number else identity,
            "debtor_pseudonym": pseudonym(identity, self._pepper),
            "callback_url": body.get("callback_url"),
            "status": rules.InquiryStatus.PENDING.value,
            "due_at": max(deadlines),
            "created_at": at,
            "updated_at": at,
        }
        audit = AuditEntry(
            actor=client_id,
            subject=token_subject,
            action=SERVICE,
            outcome="accepted",
            status_code=202,
            object_ref=inquiry_id,
            data={
                "officer_id": mask(body["officer_id"]),
                "case_ref": body["case_ref"],
                "legal_basis": body["legal_basis"],
                "purpose": body["purpose"],
                "debtor": inquiry["debtor_pseudonym"],
                "sources": [r.source_id for r in sources],
            },
        )
        return InquiryRows(inquiry, source_rows, requests, audit)

    async def view(self, principal: Principal, inquiry_id: str) -> dict[str, Any]:
        """The inquiry and its results, for the client that created it (others get 404). The read is
        audited before it is answered."""
        view = await self._view(principal, inquiry_id)
        await self._audit_reads(principal, [view])
        return view

    async def _view(self, principal: Principal, inquiry_id: str) -> dict[str, Any]:
        async with self._db.read() as conn:
            inquiry = await store.get(conn, inquiry_id)
            if inquiry is None or inquiry.client_id != principal.client.id:
                raise NotFound()
            return representation(inquiry, await store.sources_of(conn, inquiry_id))

    async def wait(self, principal: Principal, inquiry_id: str, seconds: float) -> dict[str, Any]:
        """Wait until the inquiry is final or ``seconds`` pass (``Prefer: wait=N``); what is answered is
        audited as one read. Woken when it becomes final (by this process, or by a worker's hint over
        the broker); without a hint it is read again every ``SAFETY_READ_SECONDS`` all the same."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + seconds
        with self.watch.watching(inquiry_id) as changed:
            while True:
                changed.clear()
                view = await self._view(principal, inquiry_id)
                left = deadline - loop.time()
                if view["status"] in ("complete", "expired") or left <= 0:
                    await self._audit_reads(principal, [view])
                    return view
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(changed.wait(), min(SAFETY_READ_SECONDS, left))

    async def for_case(self, principal: Principal, case_ref: str) -> list[dict[str, Any]]:
        """The client's inquiries for a case; each one listed is audited as read."""
        async with self._db.read() as conn:
            rows = await store.by_case(conn, principal.client.id, case_ref)
            views = [representation(r, await store.sources_of(conn, r.inquiry_id)) for r in rows]
        await self._audit_reads(principal, views)
        return views

    async def _audit_reads(self, principal: Principal, views: list[dict[str, Any]]) -> None:
        """One ``assets.read`` record per inquiry shown (:func:`read_entry`)."""
        if not views:
            return
        async with self._db.transaction() as conn:
            await append_many(conn, [read_entry(principal, view) for view in views])


def read_entry(principal: Principal, view: dict[str, Any], **more: Any) -> AuditEntry:
    """The ``assets.read`` record of an inquiry shown to a client: who, for which officer or user, which
    inquiry, and which sources' rows were shown (never the rows); ``more`` (a bulk's id) joins its data."""
    return AuditEntry(
        actor=principal.client.id,
        subject=principal.subject,
        action="assets.read",
        outcome="read",
        status_code=200,
        object_ref=view["inquiry_id"],
        data={
            **more,
            "case_ref": view["case_ref"],
            "status": view["status"],
            "sources_shown": [s["source"] for s in view["sources"] if "rows" in s],
            **principal.audit_data(),
        },
    )


def require_lookup_grant(client: Client) -> None:
    """``Forbidden`` unless ``client`` may look up some source (``assets.inquire`` or one of its kinds);
    which sources it may ask is checked once they are known (:func:`checked_sources`)."""
    if not any(client.allows(g) for g in (SERVICE, *(f"{SERVICE}:{k}" for k in rules.SOURCE_KINDS))):
        raise Forbidden(f"client {client.id} is not granted {SERVICE}")


async def checked_sources(
    body: dict[str, Any],
    refs: list[rules.PartnerRef],
    legal_bases: set[str],
    outbound: OutboundPolicy,
    client: Client,
    *,
    case_per_debtor: bool = False,
) -> list[rules.SourceRef]:
    """The rules an inquiry's body must meet beyond its schema — sources that exist, the preconditions
    and legal basis, a callback the outbound policy allows (``422`` listing every violation) — then the
    grants of each source asked (``403``); returns the sources. A bulk states a case per debtor
    (``case_per_debtor``), so the body's own ``case_ref`` is not required of it."""
    sources, problems = rules.expand_sources(body["sources"], refs)
    preconditions = rules.precondition_violations(body, legal_bases)
    problems += [v for v in preconditions if not (case_per_debtor and v.path == "$.case_ref")]
    if body.get("callback_url"):
        # The outbound policy (gateway/security/outbound.py): checked here and again at each send.
        problems += await outbound.violations(body["callback_url"], "$.callback_url", client.outbound_hosts)
    if problems:
        raise Refused(problems)
    denied = sorted(g for g in rules.required_grants(sources) if not client.allows(g))
    if denied:
        raise Forbidden(f"client {client.id} is not granted {', '.join(denied)}")
    return sources


def whole_second(at: datetime) -> datetime:
    """``at`` rounded up to a whole second: what partners are told and what is stored are the same instant,
    and never earlier than the deadline computed."""
    if at.microsecond == 0:
        return at
    return at.replace(microsecond=0) + timedelta(seconds=1)


def request_payload(lookup: LookupRequest) -> dict[str, Any]:
    """The canonical request as queued for the partner's worker (its hash is kept as evidence)."""
    data = asdict(lookup)
    data["subject"] = lookup.subject.as_dict()
    if lookup.title is not None:
        data["title"] = lookup.title.as_dict()
    return {k: v for k, v in data.items() if v is not None}


def parse_request(body: bytes) -> LookupRequest:
    """A queued request. One queued before ``officer_id``, ``legal_basis``, ``title`` and ``due_at`` existed
    lacks them and is still read (they stay ``None``); anything else malformed raises ``ValueError``,
    ``TypeError`` or ``KeyError``."""
    data = json.loads(body)
    if not isinstance(data, dict):
        raise TypeError("a lookup request is a JSON object")
    data["subject"] = Subject(**data["subject"])
    if data.get("title") is not None:
        data["title"] = Title.from_dict(data["title"])
    return LookupRequest(**data)
