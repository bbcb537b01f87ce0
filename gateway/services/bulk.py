"""Bulk lookups: one request naming many debtors (an enforcement office's campaign), validated and
authorised as a whole, accepted in one small transaction, and expanded later by the workers into one
ordinary inquiry per debtor (:mod:`gateway.services.bulk_expansion`). Reading a bulk shows its progress
and its debtors' results, page by page."""

from __future__ import annotations

import hashlib
import json
import uuid
from typing import Any, Final

from sqlalchemy.exc import IntegrityError

from gateway.domain import inquiry as rules
from gateway.domain.errors import Conflict, NotFound, Refused, TooComplex
from gateway.domain.identifiers import mask
from gateway.domain.violations import Violation
from gateway.partners import Partner
from gateway.security.outbound import OutboundPolicy
from gateway.security.signing import canonical_json
from gateway.security.tokens import Principal
from gateway.services.inquiries import checked_sources, read_entry, require_lookup_grant
from gateway.services.inquiry_results import representation
from gateway.settings import BulkSettings
from gateway.storage import bulk as store
from gateway.storage.audit import AuditEntry, append, append_many
from gateway.storage.database import Database
from gateway.storage.timestamps import iso, now
from gateway.validation import SchemaCatalog

MESSAGE_TYPE: Final = "asset.inquiry.bulk"
#: What a debtor of a bulk carries besides whose it is: its own case and title.
DEBTOR_FIELDS: Final = ("id_number", "enterprise_code", "full_name", "date_of_birth")
FINAL: Final = ("complete", "expired")


def inquiry_id_of(bulk_id: str, position: int) -> str:
    """The inquiry the debtor at ``position`` becomes: the same on every attempt, so an expansion resumed
    after a crash can never make a second one."""
    return str(uuid.uuid5(uuid.UUID(bulk_id), f"debtor/{position}"))


def debtor_inquiry(request: dict[str, Any], position: int) -> dict[str, Any]:
    """The single inquiry the bulk asks for its debtor at ``position``: the common part, that debtor, its
    case and its title (exactly what ``POST /v1/asset-inquiries`` would take for it)."""
    item = request["debtors"][position]
    common = {k: v for k, v in request.items() if k != "debtors"}
    debtor = {k: item[k] for k in DEBTOR_FIELDS if k in item}
    return common | {"debtor": debtor, "case_ref": item["case_ref"], "title": item["title"]}


def too_many(body: object, limit: int) -> TooComplex | None:
    """The refusal of a body naming more than ``limit`` debtors (checked before schema validation, which
    would otherwise walk all of them), or None."""
    debtors = body.get("debtors") if isinstance(body, dict) else None
    if isinstance(debtors, list) and len(debtors) > limit:
        return TooComplex("bulk.max_debtors", limit, f"the request names {len(debtors)} debtors")
    return None


class BulkService:
    def __init__(
        self,
        db: Database,
        catalog: SchemaCatalog,
        partners: list[Partner],
        legal_bases: dict[str, str],
        settings: BulkSettings,
        outbound: OutboundPolicy | None = None,
    ) -> None:
        self._db = db
        self._catalog = catalog
        self._refs = [rules.PartnerRef(code=p.code, kind=p.kind) for p in partners if p.is_lookup_source]
        self._legal_bases = set(legal_bases)
        self._settings = settings
        self._outbound = outbound or OutboundPolicy()

    async def create(
        self,
        principal: Principal,
        body: object,
        idempotency_key: str | None,
        callback_base: str | None = None,
    ) -> tuple[dict[str, Any], bool]:
        """Validate and authorise the whole bulk, store it as accepted. Returns (view, created)."""
        client = principal.client
        require_lookup_grant(client)
        refusal = too_many(body, self._settings.max_debtors)
        if refusal is not None:
            raise refusal
        violations = self._catalog.violations(MESSAGE_TYPE, body)
        if violations:
            raise Refused(violations)
        assert isinstance(body, dict)
        # The rules of one inquiry, once for all: each debtor's case is required by the schema instead.
        sources = await checked_sources(
            body, self._refs, self._legal_bases, self._outbound, client, case_per_debtor=True
        )

        digest = hashlib.sha256(canonical_json(body)).hexdigest()
        if idempotency_key:
            earlier = await self._earlier(client.id, idempotency_key, digest)
            if earlier is not None:
                return await self.view(principal, earlier, limit=0), False
        bulk_id = str(uuid.uuid4())
        at = now()
        row = {
            "bulk_id": bulk_id,
            "client_id": client.id,
            "token_subject": principal.subject,
            "idempotency_key": idempotency_key,
            "request_sha256": digest,
            "request": json.dumps(body, ensure_ascii=False),
            "callback_base": callback_base,
            "debtors": len(body["debtors"]),
            "expanded": 0,
            "status": store.EXPANDING,
            "created_at": at,
            "updated_at": at,
        }
        # The acceptance of the whole; each debtor's lookup is audited as its own access when its
        # inquiry is stored (assets.inquire, one per debtor).
        accepted = AuditEntry(
            actor=client.id,
            subject=principal.subject,
            action="assets.bulk",
            outcome="accepted",
            status_code=202,
            object_ref=bulk_id,
            data={
                "officer_id": mask(body["officer_id"]),
                "legal_basis": body["legal_basis"],
                "purpose": body["purpose"],
                "debtors": len(body["debtors"]),
                "sources": [r.source_id for r in sources],
                **principal.audit_data(),
            },
        )
        try:
            async with self._db.transaction() as conn:
                await store.create(conn, row)
                await append(conn, accepted)
        except IntegrityError:
            if not idempotency_key:
                raise
            # The same key arrived twice at once and the other request won.
            earlier = await self._earlier(client.id, idempotency_key, digest)
            if earlier is None:
                raise
            return await self.view(principal, earlier, limit=0), False
        return await self.view(principal, bulk_id, limit=0), True

    async def _earlier(self, client_id: str, key: str, digest: str) -> str | None:
        async with self._db.read() as conn:
            earlier = await store.by_idempotency_key(conn, client_id, key)
        if earlier is None:
            return None
        if earlier.request_sha256 != digest:
            raise Conflict("this Idempotency-Key was used for a different bulk lookup")
        return str(earlier.bulk_id)

    async def view(
        self, principal: Principal, bulk_id: str, limit: int = 20, cursor: str | None = None
    ) -> dict[str, Any]:
        """The bulk's progress and up to ``limit`` of its debtors' inquiries after ``cursor``, for the client
        that created it (anyone else: 404). Each inquiry shown is audited as read before it is answered."""
        limit = max(0, min(limit, self._settings.max_page))
        after = parse_cursor(cursor)
        async with self._db.read() as conn:
            bulk = await store.get(conn, bulk_id)
            if bulk is None or bulk.client_id != principal.client.id:
                raise NotFound()
            inquiries = await store.inquiry_counts(conn, bulk_id)
            sources = await store.source_counts(conn, bulk_id)
            rows = await store.page(conn, bulk_id, after, limit) if limit else []
            by_inquiry = await store.sources_of(conn, [r.inquiry_id for r in rows])
        results = [{"position": r.position} | representation(r, by_inquiry[r.inquiry_id]) for r in rows]
        view = summary(bulk, inquiries, sources)
        view["results"] = results
        if results and results[-1]["position"] + 1 < bulk.expanded:
            view["next_cursor"] = str(results[-1]["position"])
        if results:
            await self._audit_reads(principal, bulk_id, results)
        return view

    async def _audit_reads(self, principal: Principal, bulk_id: str, shown: list[dict[str, Any]]) -> None:
        """One ``assets.read`` per inquiry shown, as a single inquiry's read is audited."""
        async with self._db.transaction() as conn:
            await append_many(conn, [read_entry(principal, view, bulk_id=bulk_id) for view in shown])


def parse_cursor(cursor: str | None) -> int:
    """The position a page starts after; ``Refused`` for anything but a cursor this API handed out."""
    if cursor is None:
        return -1
    if not cursor.isdigit() or len(cursor) > 9:
        raise Refused([Violation("cursor", "not a cursor of this bulk (use next_cursor as given)", "format")])
    return int(cursor)


def summary(bulk: Any, inquiries: dict[str, int], sources: dict[str, int]) -> dict[str, Any]:
    """The bulk's status and progress (without results)."""
    done = sum(inquiries.get(s, 0) for s in FINAL)
    if bulk.status == store.STOPPED:
        status = "stopped"
    elif bulk.expanded < bulk.debtors:
        status = "expanding"
    elif done < bulk.debtors:
        status = "in_progress"
    else:
        status = "complete"
    request = json.loads(bulk.request)
    pending_sources = sources.get(rules.SourceStatus.PENDING.value, 0)
    total_sources = sum(sources.values())
    return {
        "bulk_id": bulk.bulk_id,
        "status": status,
        "officer_id": request["officer_id"],
        "legal_basis": request["legal_basis"],
        "purpose": request["purpose"],
        "created_at": iso(bulk.created_at),
        **({"expanded_at": iso(bulk.expanded_at)} if bulk.expanded_at else {}),
        "debtors": bulk.debtors,
        "progress": {
            "expanded": bulk.expanded,
            "inquiries": {s.value: inquiries.get(s.value, 0) for s in rules.InquiryStatus},
            "sources": {
                "total": total_sources,
                "answered": total_sources - pending_sources,
                "pending": pending_sources,
            },
        },
    }
