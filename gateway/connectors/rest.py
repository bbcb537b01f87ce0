"""Plumbing shared by the connectors: JSON over HTTP to a partner, failures as ``ConnectorError``,
the check of a canonical answer against ``asset.result.<kind>``, and the hand-over of a document.

A REST connector states what is its own — its kind, where it answers lookups (``path``) and how its rows
become canonical, where it takes documents (``documents_path``) — and :class:`RestConnector` does the
rest. Every partner that takes documents over REST takes them the same way (:meth:`RestClient.deliver`):
``POST {endpoint}{documents_path}`` with the whole document as JSON and ``Idempotency-Key: <message_id>``
(the partner executes each message_id once), and answers

- ``200`` + the answer's body (a report body...): answered at once; the gateway builds the answer
  document around it. For a document nothing answers (a revocation), any ``2xx``: the partner has it.
- ``202 {"status": "processing", "reference"?}``: it pushes its answer document to ``POST /v1/documents``
  later (a partner that always answers later, ``answers_later``, may say ``200`` too);
- another ``4xx``: refused, not retried; ``5xx``, ``429``, timeouts, resets: unavailable, retried.

The partner's reference comes in the ``X-Reference`` header (or the 202 body).

Reasons never carry the partner's body or the subject: they end up in logs and in the inquiry.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from typing import Any, Final

import aiohttp

from gateway.connectors.base import ConnectorError, LookupAnswer, LookupRequest, PartnerReceipt, document_id
from gateway.domain.registry import REGISTRY, partner_kinds_receiving_documents
from gateway.domain.violations import Violation
from gateway.partners import Partner
from gateway.signatures.departure import DepartureSigning, Signed
from gateway.signatures.office import CertificateNotValid
from gateway.transports.base import Call, Transport
from gateway.transports.direct import DirectTransport
from gateway.validation import catalog

MAX_REASONS: Final = 3


class PartnerTimeout(ConnectorError):
    """No answer in time: worth another attempt, and reported as ``timeout`` rather than an outage."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason, retryable=True)


_SSL_REASON = re.compile(r"\[SSL: ([A-Z0-9_]+)\]")


def connection_failure(exc: aiohttp.ClientError) -> ConnectorError:
    """A call that reached no answer: retryable, with a reason an operator can act on — a TLS refusal
    says which side refused and why (the OpenSSL reason code; no addresses, no bodies)."""
    if isinstance(exc, aiohttp.ClientConnectorCertificateError):
        verify = getattr(exc.certificate_error, "verify_message", "") or "verification failed"
        return ConnectorError(f"TLS: the partner's certificate is not trusted ({verify})", retryable=True)
    found = _SSL_REASON.search(str(exc))
    if isinstance(exc, aiohttp.ClientSSLError) or found:
        code = found.group(1) if found else type(exc).__name__
        return ConnectorError(f"TLS handshake refused ({code})", retryable=True)
    return ConnectorError(f"connection failed ({type(exc).__name__})", retryable=True)


def status_error(status: int) -> ConnectorError:
    """The error for a status that carries no answer: 5xx and 429 are worth retrying, others are not."""
    retryable = status >= 500 or status == 429
    return ConnectorError(f"partner answered HTTP {status}", retryable=retryable)


def headers(request_ref: str) -> dict[str, str]:
    """What every partner call carries: our request reference. Credentials are the transport's."""
    return {"X-Request-Ref": request_ref}


@dataclass(frozen=True, slots=True)
class RestReply:
    """A 2xx answer as received: status, the one header the contracts use, and the raw body."""

    status: int
    body: bytes
    reference: str | None = None  # the X-Reference header, when the partner sets one


def default_transport(partner: Partner, session: aiohttp.ClientSession) -> Transport:
    """A partner called directly at its endpoint with its bearer token (no TLS client certificate)."""
    return DirectTransport(partner.endpoint, session, token=partner.token)


class RestClient:
    """POSTs JSON to one partner through its transport (direct, X-Road, LGSP: gateway/transports/)."""

    def __init__(
        self,
        partner: Partner,
        session: aiohttp.ClientSession,
        transport: Transport | None = None,
        signing: DepartureSigning | None = None,
    ) -> None:
        self.partner = partner
        self.transport = transport or default_transport(partner, session)
        #: Signs the documents handed over (:meth:`deliver`) as their sending office; None: unsigned.
        self.signing = signing

    async def send(
        self,
        path: str,
        payload: Mapping[str, Any],
        request_ref: str,
        extra_headers: Mapping[str, str] | None = None,
    ) -> RestReply:
        """POST ``payload``; returns a 2xx answer unparsed and raises ``ConnectorError`` for anything else:
        retryable for 5xx, 429, timeouts and connection failures, not retryable for other statuses."""
        call = Call(
            "POST",
            path,
            json.dumps(payload, ensure_ascii=False, separators=(",", ":")).encode(),
            {
                **headers(request_ref),
                **(extra_headers or {}),
                "Content-Type": "application/json",
                "Accept": "application/json",
            },
        )
        try:
            reply = await self.transport.send(call, self.partner.timeout_seconds)
            if not 200 <= reply.status < 300:
                raise status_error(reply.status)
            return RestReply(reply.status, reply.body, reply.headers.get("X-Reference"))
        except TimeoutError as exc:
            raise PartnerTimeout(f"no answer within {self.partner.timeout_seconds:g} s") from exc
        except aiohttp.ClientError as exc:
            raise connection_failure(exc) from exc

    async def post(
        self, path: str, payload: Mapping[str, Any], request_ref: str
    ) -> tuple[int, dict[str, Any]]:
        """Returns the 2xx status and the JSON object answered; raises ``ConnectorError`` otherwise."""
        reply = await self.send(path, payload, request_ref)
        return reply.status, parse_object(reply.body)

    async def deliver(
        self, path: str, document: Mapping[str, Any], *, answers_later: bool = False
    ) -> PartnerReceipt:
        """Hand ``document`` to the partner at ``path`` (see the module's docstring): its answer at once,
        "accepted, answered later", or ``ConnectorError`` — retryable when the partner was unavailable,
        not when it refused. ``answers_later``: the partner answers every document later, whatever 2xx."""
        message_id = document_id(document)
        signed = await self._signed(document)
        extra = {"Idempotency-Key": message_id, **(signed.headers() if signed else {})}
        reply = await self.send(path, document, message_id, extra_headers=extra)
        receipt = self._receipt(document, reply, answers_later)
        return replace(receipt, signature=signed.evidence()) if signed else receipt

    async def _signed(self, document: Mapping[str, Any]) -> Signed | None:
        if self.signing is None:
            return None
        try:
            return await self.signing.sign(document)
        except CertificateNotValid as exc:
            # Sending it unsigned, or signed with a certificate no partner accepts, would only be refused.
            raise ConnectorError(f"the office cannot sign: {exc}", retryable=False) from None

    @staticmethod
    def _receipt(document: Mapping[str, Any], reply: RestReply, answers_later: bool) -> PartnerReceipt:
        if answers_later:
            data = parse_object(reply.body) if reply.body else {}
            return PartnerReceipt(reference=_reference(data) or reply.reference, accepted_later=True)
        doc_type = REGISTRY.get(str(document.get("message_type")))
        if doc_type is not None and doc_type.answer_type is None:
            # Nothing answers it (a revocation): any 2xx means the partner has it.
            return PartnerReceipt(report=None, reference=reply.reference)
        data = parse_object(reply.body)
        if reply.status == 202:
            return PartnerReceipt(reference=processing(data) or reply.reference, accepted_later=True)
        return PartnerReceipt(report=data, reference=reply.reference)


def processing(data: Mapping[str, Any]) -> str | None:
    """The reference of a ``202 {"status": "processing", "reference"?}`` answer."""
    if data.get("status") != "processing":
        raise ConnectorError("202 answer without status 'processing'", retryable=False)
    return _reference(data)


def _reference(data: Mapping[str, Any]) -> str | None:
    reference = data.get("reference")
    if reference is not None and not isinstance(reference, str):
        raise ConnectorError("answer with a non-string reference", retryable=False)
    return reference


def batch_answers(data: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    """The answers of a batch call (``{"answers": [{"request_ref": ..., ...}, ...]}``, docs/partners.md)
    by ``request_ref``. An answer without a string ``request_ref`` cannot be matched and is left out (its
    request then has none, which the caller reports); of two for one ref the first stands."""
    answers = data.get("answers")
    if not isinstance(answers, list):
        raise ConnectorError("batch answer without an 'answers' list", retryable=False)
    out: dict[str, dict[str, Any]] = {}
    for item in answers:
        ref = item.get("request_ref") if isinstance(item, dict) else None
        if isinstance(ref, str) and ref not in out:
            out[ref] = item
    return out


def parse_object(body: bytes) -> dict[str, Any]:
    try:
        data = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        raise ConnectorError("answer is not JSON", retryable=False) from None
    if not isinstance(data, dict):
        raise ConnectorError("answer is not a JSON object", retryable=False)
    return data


def as_list(data: Mapping[str, Any], key: str) -> list[dict[str, Any]]:
    """The list of objects under ``key``; absent or null means none."""
    value = data.get(key)
    if value is None:
        return []
    if not isinstance(value, list) or not all(isinstance(item, dict) for item in value):
        raise ConnectorError(f"answer field '{key}' is not a list of objects", retryable=False)
    return value


def pick(item: Mapping[str, Any], fields: Iterable[str]) -> dict[str, Any]:
    """The contract's fields of one row, nulls dropped: extra partner fields never travel further."""
    return {name: item[name] for name in fields if item.get(name) is not None}


def _describe(violation: Violation) -> str:
    # A "required" message names schema properties only; other messages may quote the partner's
    # values (names, addresses), so those are reduced to path and rule.
    if violation.rule == "required":
        return f"{violation.path}: {violation.message}"
    return f"{violation.path} ({violation.rule})"


def canonical_answer(kind: str, data: Mapping[str, Any], rows: list[dict[str, Any]]) -> LookupAnswer:
    """Build the canonical answer from the partner's common fields and mapped rows, and validate it."""
    document: dict[str, Any] = {"match_status": data.get("match_status"), "rows": rows}
    for key in ("as_of", "reference"):
        if data.get(key) is not None:
            document[key] = data[key]
    violations = catalog().violations(f"asset.result.{kind}", document)
    if violations:
        shown = "; ".join(_describe(v) for v in violations[:MAX_REASONS])
        more = f" and {len(violations) - MAX_REASONS} more" if len(violations) > MAX_REASONS else ""
        raise ConnectorError(f"answer does not match asset.result.{kind}: {shown}{more}", retryable=False)
    return LookupAnswer(
        match_status=document["match_status"],
        rows=rows,
        as_of=document.get("as_of"),
        reference=document.get("reference"),
    )


def lookup_payload(request: LookupRequest) -> dict[str, Any]:
    """What every REST lookup states, as the law requires of a request for information: whose data, for
    which case, by which officer, on which legal basis, resting on which judgment and enforcement
    decision (``title``), for what purpose, and by when the answer is due. Nothing more about the case.

    A request queued before ``officer_id``, ``legal_basis``, ``title`` and ``due_at`` existed goes without
    them rather than with nulls. The payload holds the officer's personal ID: it is never logged.
    """
    body: dict[str, Any] = {
        "request_ref": request.request_ref,
        "subject": request.subject.as_dict(),
        "case_ref": request.case_ref,
        "officer_id": request.officer_id,
        "legal_basis": request.legal_basis,
        "title": request.title.as_dict() if request.title is not None else None,
        "purpose": request.purpose,
        "due_at": request.due_at,
    }
    return {key: value for key, value in body.items() if value is not None}


#: Where a REST partner takes documents, unless its connector names another path.
DOCUMENTS_PATH: Final = "/api/v1/documents"


class RestConnector:
    """One REST partner kind: what to POST where, and how its answer becomes canonical rows."""

    kind: str = ""
    #: Where it answers lookups; empty: it answers none.
    path: str = ""
    #: Where it takes documents (:meth:`RestClient.deliver`): the documents protocol's one conventional
    #: path unless its API says otherwise; a partner kind takes documents only of the types the registry
    #: sends it (``partner_kinds``), so the first such type needs no connector change.
    documents_path: str = DOCUMENTS_PATH
    #: It answers every document later, by pushing its answer document (a ``200`` means the same).
    answers_later: bool = False

    def __init__(
        self,
        partner: Partner,
        session: aiohttp.ClientSession,
        transport: Transport | None = None,
        signing: DepartureSigning | None = None,
    ) -> None:
        self.partner = partner
        self.client = RestClient(partner, session, transport, signing)

    def payload(self, request: LookupRequest) -> dict[str, Any]:
        return lookup_payload(request)

    def rows(self, data: Mapping[str, Any]) -> list[dict[str, Any]]:
        raise NotImplementedError

    async def lookup(self, request: LookupRequest) -> LookupAnswer:
        if not self.path:
            raise ConnectorError(
                f"{self.kind} partner {self.partner.code} answers no asset lookup", retryable=False
            )
        _, data = await self.client.post(self.path, self.payload(request), request.request_ref)
        return canonical_answer(self.kind, data, self.rows(data))

    async def deliver(self, document: Mapping[str, Any]) -> PartnerReceipt:
        if self.kind not in partner_kinds_receiving_documents():
            raise ConnectorError(
                f"{self.kind} partner {self.partner.code} does not take documents", retryable=False
            )
        return await self.client.deliver(self.documents_path, document, answers_later=self.answers_later)

    async def close(self) -> None:
        await self.client.transport.close()
