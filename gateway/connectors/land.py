"""Land registry (SOAP 1.1, document/literal, ``config/wsdl/land-registry.wsdl``).

Lookups are ``QueryLandRights``: the subject, and what the law requires a request to state (case,
officer, legal basis, the title it rests on, purpose, due date). Documents: ``order.land_transfer_suspension``
is ``SuspendTransfer``, ``order.land_suspension_lifting`` is ``LiftSuspension`` (both answered at once,
mapped to the canonical report body of docs/orders.md) and ``document.revocation`` is ``RevokeOrder``
(acknowledged, no report). Every operation's failures are classified alike (:meth:`LandConnector._invoke`).
"""

from __future__ import annotations

import asyncio
import contextvars
import datetime as dt
from collections.abc import Mapping
from decimal import Decimal
from typing import Any, Final

import aiohttp
from lxml import etree
from zeep import AsyncClient, Settings
from zeep.exceptions import Error as ZeepError
from zeep.exceptions import Fault, TransportError, ValidationError
from zeep.helpers import serialize_object
from zeep.proxy import AsyncServiceProxy

from gateway.connectors.base import (
    ConnectorError,
    LookupAnswer,
    LookupRequest,
    PartnerReceipt,
    Subject,
    document_id,
)
from gateway.connectors.rest import (
    PartnerTimeout,
    canonical_answer,
    connection_failure,
    default_transport,
    headers,
    status_error,
)
from gateway.connectors.zeep_transport import AiohttpTransport
from gateway.domain.doctypes import PartnerKind
from gateway.domain.issued import REVOCATION
from gateway.domain.lookup import Title
from gateway.domain.orders import LAND_SUSPENSION_LIFTING, LAND_TRANSFER_SUSPENSION
from gateway.partners import Partner
from gateway.transports.base import Transport

KIND: Final = PartnerKind.LAND_REGISTRY
OPERATION: Final = "QueryLandRights"
SUSPEND: Final = "SuspendTransfer"
LIFT: Final = "LiftSuspension"
REVOKE: Final = "RevokeOrder"
# Document type -> the operation that carries it.
OPERATIONS: Final = {
    LAND_TRANSFER_SUSPENSION: SUSPEND,
    LAND_SUSPENSION_LIFTING: LIFT,
    REVOCATION: REVOKE,
}
# SOAP 1.1 and 1.2 names of "the service failed, the request may be fine".
SERVER_FAULTS: Final = frozenset({"Server", "Receiver"})

# zeep builds the HTTP request deep inside its binding; the connector hands the request's headers
# to the transport through this variable, which is private to each task.
_request_ref: contextvars.ContextVar[str] = contextvars.ContextVar("land_request_ref")


class LandConnector:
    def __init__(self, partner: Partner, client: Any, service: Any) -> None:
        self.partner = partner
        self._client = client
        self._service = service

    @classmethod
    async def create(
        cls, partner: Partner, session: aiohttp.ClientSession, transport: Transport | None = None
    ) -> LandConnector:
        """Load the WSDL (a vendored file, parsed synchronously: in a thread) and bind the service."""
        if not partner.wsdl:
            raise ValueError(f"partner {partner.code}: a SOAP partner needs a wsdl path")
        zeep_transport = AiohttpTransport(
            transport or default_transport(partner, session),
            partner.timeout_seconds,
            lambda: headers(_request_ref.get("")),
        )
        client = await asyncio.to_thread(_load_client, partner.wsdl, zeep_transport)
        # create_service on AsyncClient returns a synchronous proxy; build the async one directly.
        service = AsyncServiceProxy(  # type: ignore[no-untyped-call]
            client, _binding(client), address=partner.endpoint
        )
        return cls(partner, client, service)

    async def lookup(self, request: LookupRequest) -> LookupAnswer:
        response = await self._invoke(
            OPERATION,
            request.request_ref,
            RequestRef=request.request_ref,
            Subject=_subject(request.subject),
            CaseRef=request.case_ref,
            Purpose=request.purpose,
            # Optional in the WSDL for older callers; None (a request queued before they existed) omits them.
            OfficerId=request.officer_id,
            LegalBasis=request.legal_basis,
            Title=_title(request.title),
            DueAt=request.due_at,
        )
        return to_answer(response)

    async def deliver(self, document: Mapping[str, Any]) -> PartnerReceipt:
        message_id = document_id(document)
        message_type = document.get("message_type")
        operation = OPERATIONS.get(message_type) if isinstance(message_type, str) else None
        if operation is None:
            raise ConnectorError(
                f"the land registry does not take {str(message_type)[:60]!r} documents", retryable=False
            )
        response = await self._invoke(operation, message_id, **order_fields(operation, document))
        if not isinstance(response, Mapping):
            raise ConnectorError("unusable SOAP answer (no response element)", retryable=False)
        reference = response.get("Reference")
        if operation == REVOKE:
            return PartnerReceipt(report=None, reference=reference)
        return PartnerReceipt(report=to_report(operation, response), reference=reference)

    async def _invoke(self, operation: str, request_ref: str, **fields: Any) -> Any:
        """Call one operation; its answer as plain dicts, or ``ConnectorError`` classified as lookups are."""
        token = _request_ref.set(request_ref)
        try:
            result = await self._service[operation](**fields)
        except ConnectorError:
            raise
        except Fault as exc:
            raise _fault_error(exc) from None
        except TransportError as exc:
            # zeep's message quotes the body; the status is all that may travel.
            if (exc.status_code or 0) >= 400:
                raise status_error(exc.status_code) from None
            raise ConnectorError("unusable SOAP answer (not XML)", retryable=False) from None
        except ValidationError as exc:
            # Raised while building the request as well as while reading the answer.
            raise ConnectorError(
                f"request or answer does not fit the WSDL ({type(exc).__name__})", retryable=False
            ) from None
        except (ZeepError, etree.XMLSyntaxError) as exc:
            raise ConnectorError(f"unusable SOAP answer ({type(exc).__name__})", retryable=False) from None
        except TimeoutError as exc:
            raise PartnerTimeout(f"no answer within {self.partner.timeout_seconds:g} s") from exc
        except aiohttp.ClientError as exc:
            raise connection_failure(exc) from exc
        finally:
            _request_ref.reset(token)
        return serialize_object(result, dict)  # type: ignore[no-untyped-call]

    async def close(self) -> None:
        await self._client.transport.aclose()


def _load_client(wsdl: str, transport: AiohttpTransport) -> Any:
    # A plain path: zeep's async client cannot read file:// URLs. No network fetches while parsing.
    settings = Settings(strict=True, forbid_external=True)
    return AsyncClient(wsdl, transport=transport, settings=settings)  # type: ignore[no-untyped-call]


def _binding(client: Any) -> Any:
    for binding in client.wsdl.bindings.values():
        if OPERATION in binding.all():
            return binding
    raise ValueError(f"the WSDL has no binding with the {OPERATION} operation")


def _subject(subject: Subject) -> dict[str, str]:
    fields = {
        "IdNumber": subject.id_number,
        "EnterpriseCode": subject.enterprise_code,
        "FullName": subject.full_name,
        "DateOfBirth": subject.date_of_birth,
    }
    return {name: value for name, value in fields.items() if value is not None}


def _title(title: Title | None) -> dict[str, dict[str, str]] | None:
    if title is None:
        return None
    judgment, decision = title.judgment, title.enforcement_decision
    return {
        "Judgment": {"CourtCode": judgment.court_code, "Number": judgment.number, "Date": judgment.date},
        "EnforcementDecision": {"Number": decision.number, "Date": decision.date},
    }


def _fault_error(fault: Fault) -> ConnectorError:
    # "soap:Server", "soapenv:Server.Busy" -> "Server". The fault string may quote the subject: dropped.
    code = str(fault.code or "").rpartition(":")[2].partition(".")[0]
    if not code:
        return ConnectorError("unexpected SOAP answer (no fault code)", retryable=False)
    return ConnectorError(f"SOAP fault {code}", retryable=code in SERVER_FAULTS)


def _items(container: object, key: str) -> list[Any]:
    """``<Parcels><Parcel/>...</Parcels>`` as a list; a missing container or child means none."""
    if not isinstance(container, Mapping):
        return []
    value = container.get(key)
    if value is None:
        return []
    return list(value) if isinstance(value, list) else [value]


def _plain(value: Any) -> Any:
    if isinstance(value, Decimal):
        return float(value)
    if isinstance(value, dt.datetime | dt.date):
        return value.isoformat()
    return value


def _parcel(parcel: Mapping[str, Any]) -> dict[str, Any]:
    row = {
        "parcel_id": parcel.get("ParcelId"),
        "map_sheet": parcel.get("MapSheet"),
        "address": parcel.get("Address"),
        "area_m2": _plain(parcel.get("AreaM2")),
        "certificate_number": parcel.get("CertificateNumber"),
    }
    mapped: dict[str, Any] = {key: value for key, value in row.items() if value is not None}
    mapped["co_owners"] = _items(parcel.get("CoOwners"), "CoOwner")
    mapped["encumbrances"] = _items(parcel.get("Encumbrances"), "Encumbrance")
    mapped["pending_transactions"] = _items(parcel.get("PendingTransactions"), "Transaction")
    return mapped


def to_answer(response: Any) -> LookupAnswer:
    """``QueryLandRightsResponse`` (as plain dicts) -> the canonical, validated answer."""
    if not isinstance(response, Mapping):
        raise ConnectorError("unusable SOAP answer (no response element)", retryable=False)
    common = {
        "match_status": response.get("MatchStatus"),
        "as_of": _plain(response.get("AsOf")),
        "reference": response.get("Reference"),
    }
    rows = [_parcel(p) for p in _items(response.get("Parcels"), "Parcel") if isinstance(p, Mapping)]
    return canonical_answer(KIND, common, rows)


# -- orders ---------------------------------------------------------------------------------------


def _mapping(value: object) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def _debtor(debtor: Mapping[str, Any]) -> dict[str, str]:
    """The order's debtor as the WSDL's Subject: a person, or an organisation (its name as FullName)."""
    return _subject(
        Subject(
            id_number=debtor.get("id_number"),
            enterprise_code=debtor.get("enterprise_code"),
            full_name=debtor.get("full_name") or debtor.get("name"),
            date_of_birth=debtor.get("date_of_birth"),
        )
    )


def _order_parcels(parcels: object) -> dict[str, list[dict[str, Any]]]:
    rows = parcels if isinstance(parcels, list) else []
    return {
        "Parcel": [
            {
                name: value
                for name, value in (
                    ("MapSheet", parcel.get("map_sheet")),
                    ("ParcelNumber", parcel.get("parcel_number")),
                    ("CertificateNumber", parcel.get("certificate_number")),
                )
                if value is not None
            }
            for parcel in rows
            if isinstance(parcel, Mapping)
        ]
    }


def order_fields(operation: str, document: Mapping[str, Any]) -> dict[str, Any]:
    """The operation's request fields from the canonical document. Whatever is missing is left out, and
    zeep refuses to build the request (a non-retryable error): the document was validated upstream."""
    body = _mapping(document.get("body"))
    if operation == REVOKE:
        fields = {"MessageId": document.get("message_id"), "Revokes": body.get("revokes")}
        return fields | ({"Reason": body["reason"]} if body.get("reason") is not None else {})
    decision = _mapping(body.get("decision"))
    fields = {
        "MessageId": document.get("message_id"),
        "CaseRef": document.get("case_ref"),
        "OfficerId": document.get("officer_id"),
        "LegalBasis": document.get("legal_basis"),
        "Decision": {
            "Number": decision.get("number"),
            "Date": decision.get("date"),
            "IssuingOffice": decision.get("issuing_office"),
        },
        "Subject": _debtor(_mapping(body.get("debtor"))),
    }
    title = _mapping(body.get("title"))
    if title:
        judgment, enforcement = _mapping(title.get("judgment")), _mapping(title.get("enforcement_decision"))
        fields["Title"] = {
            "Judgment": {
                k.title().replace("_", ""): judgment.get(k) for k in ("court_code", "number", "date")
            },
            "EnforcementDecision": {"Number": enforcement.get("number"), "Date": enforcement.get("date")},
        }
    if document.get("due_at") is not None:
        fields["DueAt"] = document["due_at"]
    if operation == SUSPEND:
        if document.get("replaces") is not None:
            fields["Replaces"] = document["replaces"]
        fields["Parcels"] = _order_parcels(body.get("parcels"))
        if body.get("reason") is not None:
            fields["Reason"] = body["reason"]
    else:
        fields["SuspensionOrder"] = body.get("suspension_order")
        if body.get("parcels"):
            fields["Parcels"] = _order_parcels(body["parcels"])
    return fields


def to_report(operation: str, response: Mapping[str, Any]) -> dict[str, Any]:
    """``SuspendTransferResponse`` / ``LiftSuspensionResponse`` -> the canonical report body of
    docs/orders.md (a lifting report has no ``registration_ref``)."""
    parcels = []
    for parcel in _items(response.get("Parcels"), "Parcel"):
        if not isinstance(parcel, Mapping):
            continue
        row = {
            "map_sheet": parcel.get("MapSheet"),
            "parcel_number": parcel.get("ParcelNumber"),
            "status": parcel.get("Status"),
            "reason": parcel.get("Reason"),
        }
        if operation == SUSPEND:
            row["registration_ref"] = parcel.get("RegistrationRef")
        parcels.append({key: value for key, value in row.items() if value is not None})
    return {
        "executed_at": _plain(response.get("ExecutedAt")),
        "outcome": response.get("Outcome"),
        "parcels": parcels,
    }
