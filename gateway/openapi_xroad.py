"""The REST operations offered over X-Road, as the OpenAPI 3.1 description a security server registers
the gateway's REST service from: served at ``GET /openapi-xroad.json``.

It is the gateway's own document (:func:`gateway.openapi.build_document`) of the operations a client
calls with its identity, every authenticated REST operation, and ``GET /v1/keys`` to check receipts,
with what X-Road adds: the request headers the provider-side security server forwards (``X-Road-Client``
and the optional ``X-Road-Id``, ``X-Road-UserId``, ``X-Road-Issue``, ``X-Road-Service``) and the
response headers it sets. SOAP is described by its own WSDL (``GET /soap/courts?wsdl=xroad``); the
operators' endpoints (health, metrics, documents about the API) are not offered over X-Road.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Final

from gateway.openapi import build_document
from gateway.openapi_schemas import JSON
from gateway.settings import Settings
from gateway.web.operation import Operation

__all__ = ["PUBLIC_OPERATIONS", "REQUEST_HEADERS", "RESPONSE_HEADERS", "build_xroad_document", "offered"]

#: Public operations offered too: receipts are checked with the gateway's keys.
PUBLIC_OPERATIONS: Final = frozenset({"keys"})

#: Request headers, as the provider-side security server forwards them: component name, header,
#: whether required, description.
REQUEST_HEADERS: Final[tuple[tuple[str, str, bool, str], ...]] = (
    (
        "XRoadClient",
        "X-Road-Client",
        True,
        "The calling X-Road member or subsystem, `INSTANCE/CLASS/MEMBER[/SUBSYSTEM]` (parts "
        "percent-encoded). Believed only as forwarded by a security server the gateway trusts "
        "(`config/xroad.toml`), and taken for the registered client it is mapped to: that client's grants "
        "apply. From any other source, any `X-Road-*` header is `401`; an X-Road client mapped to no "
        "registered client is `403`.",
    ),
    (
        "XRoadId",
        "X-Road-Id",
        False,
        "The message's unique id (a UUID; the consumer's security server makes one when the client does "
        "not). Required by the gateway; each id is accepted once per X-Road client (`401` when sent again).",
    ),
    (
        "XRoadUserId",
        "X-Road-UserId",
        False,
        "The officer whose action caused the call, with a two-letter country prefix (`VN…`). Recorded in "
        "the audit log as the request's subject, masked like every personal ID.",
    ),
    (
        "XRoadIssue",
        "X-Road-Issue",
        False,
        "The case or document the call is made for; recorded in the audit log.",
    ),
    (
        "XRoadService",
        "X-Road-Service",
        False,
        "The service called, `INSTANCE/CLASS/MEMBER/SUBSYSTEM/SERVICECODE`; recorded in the audit log.",
    ),
)

#: Response headers the provider-side security server sets (the gateway itself sets none of them).
RESPONSE_HEADERS: Final[dict[str, str]] = {
    "X-Road-Id": "The message's id, as in the request.",
    "X-Road-Client": "The calling client, as in the request.",
    "X-Road-Service": "The service called.",
    "X-Road-Request-Id": "The security servers' id of the request.",
    "X-Road-Request-Hash": "Hash of the request, made by the provider's security server and checked by the "
    "consumer's: ties the answer to the request.",
}

DESCRIPTION: Final = (
    "The gateway's REST operations offered through X-Road. A client calls them through its own security "
    "server (`/r1/{serviceId}/…`); the gateway's security server forwards the call with the `X-Road-*` "
    "headers, and the gateway takes the X-Road client for the registered client `config/xroad.toml` maps "
    "it to: no bearer token is needed (one sent along must be that client's). Bodies, rules, receipts and "
    "problem answers are those of `/openapi.json`. Each `X-Road-Id` is accepted once."
)

HTTP_METHODS: Final = frozenset({"get", "put", "post", "delete", "patch"})


def offered(operations: Sequence[Operation]) -> tuple[Operation, ...]:
    """The operations offered over X-Road: every authenticated one answering problem+json (SOAP has its
    WSDL), and :data:`PUBLIC_OPERATIONS`."""
    return tuple(
        operation
        for operation in operations
        if (operation.grant is not None and operation.errors == "problem")
        or operation.name in PUBLIC_OPERATIONS
    )


def build_xroad_document(
    settings: Settings, operations: Sequence[Operation], service_url: str | None
) -> JSON:
    """The X-Road description of ``operations`` (those :func:`offered`), served at ``service_url``
    (default ``api.public_url``): the address the security server calls."""
    document = build_document(settings, offered(operations))
    document["info"]["title"] += " (X-Road service)"
    document["info"]["description"] = DESCRIPTION
    if service_url:
        document["servers"] = [{"url": service_url.rstrip("/")}]
    components = document["components"]
    for name, header, required, description in REQUEST_HEADERS:
        components["parameters"][name] = {
            "name": header,
            "in": "header",
            "required": required,
            "description": description,
            "schema": {"type": "string", "minLength": 1, "maxLength": 255},
        }
    for header, description in RESPONSE_HEADERS.items():
        components["headers"][header] = {"description": description, "schema": {"type": "string"}}
    references = [{"$ref": f"#/components/parameters/{name}"} for name, *_ in REQUEST_HEADERS]
    for item in document["paths"].values():
        for method, operation in item.items():
            if method not in HTTP_METHODS:
                continue
            operation["parameters"] = [*references, *operation.get("parameters", [])]
            # The security server authenticates the caller; a bearer token may still come along.
            if operation.get("security"):
                operation["security"] = [{}, *operation["security"]]
            for status, response in operation["responses"].items():
                if status.startswith("2") and "$ref" not in response:
                    headers = response.setdefault("headers", {})
                    for header in RESPONSE_HEADERS:
                        headers[header] = {"$ref": f"#/components/headers/{header}"}
    return document
