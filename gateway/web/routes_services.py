"""``GET /v1/services``: what the calling client may use (document types, lookup sources, operations),
each with a link to its schema; ``GET /v1/schemas/{schema}``: the schema files themselves.

The directory is computed from the same grants every operation checks (``Client.allows``), so it never
offers what would be refused, nor hides what would be accepted.
"""

from __future__ import annotations

import json
from importlib.resources import files
from pathlib import Path
from typing import Any, Final

from aiohttp import web

from gateway.domain.inquiry import GRANT as INQUIRE
from gateway.domain.inquiry import SOURCE_KINDS
from gateway.domain.registry import REGISTRY
from gateway.openapi_schemas import message_schemas
from gateway.partners import load_partners
from gateway.problems import Problem
from gateway.security.clients import Client
from gateway.validation import SCHEMA_SUFFIX
from gateway.web.auth import PRINCIPAL_KEY
from gateway.web.context import SERVICES
from gateway.web.operation import ANY_CLIENT, OPERATIONS_KEY, Operation, Response

__all__ = ["OPERATIONS", "SCHEMAS_PATH", "schema_link"]

SCHEMAS_PATH: Final = "/v1/schemas"
_INQUIRY_OPERATION: Final = "POST /v1/asset-inquiries"
_DOCUMENT_OPERATION: Final = "POST /v1/documents"


def _schema_files() -> frozenset[str]:
    return frozenset(stem + SCHEMA_SUFFIX for stem in message_schemas())


#: File names of the served schemas (fixed for the process: the package's files).
SCHEMA_FILES: Final = _schema_files()


def schema_link(stem: str) -> str | None:
    """``/v1/schemas/<stem>.schema.json``, or None when no such schema file exists."""
    name = stem + SCHEMA_SUFFIX
    return f"{SCHEMAS_PATH}/{name}" if name in SCHEMA_FILES else None


def _may_send(client: Client, message_type: str) -> bool:
    doc_type = REGISTRY[message_type]
    return client.allows(doc_type.grant) or any(client.allows(g) for g in doc_type.extra_grants)


def _documents(client: Client) -> list[dict[str, Any]]:
    out = []
    for message_type in sorted(REGISTRY):
        if not _may_send(client, message_type):
            continue
        doc_type = REGISTRY[message_type]
        entry: dict[str, Any] = {
            "message_type": message_type,
            "grant": doc_type.grant,
            "operation": _DOCUMENT_OPERATION,
            "schema": schema_link(message_type),
        }
        if doc_type.answer_type:
            entry["answered_by"] = doc_type.answer_type
        out.append(entry)
    return out


def _lookups(client: Client, config_dir: Path) -> list[dict[str, Any]]:
    out = []
    for partner in load_partners(config_dir):
        grant = f"{INQUIRE}:{partner.kind}"
        if not partner.is_lookup_source or not client.allows(grant):
            continue
        out.append(
            {
                "source": partner.source_id,
                "kind": partner.kind,
                "partner": partner.code,
                "name": partner.name or partner.code,
                "grant": grant,
                "deadline": partner.deadline,
                "operation": _INQUIRY_OPERATION,
                "schema": schema_link("asset.inquiry"),
                "result_schema": schema_link(f"asset.result.{partner.kind}"),
            }
        )
    return sorted(out, key=lambda e: (SOURCE_KINDS.index(e["kind"]), e["partner"]))


def _may_call(client: Client, operation: Operation) -> bool:
    grant = operation.grant
    if grant is None or grant == ANY_CLIENT:
        return True
    if grant == INQUIRE and operation.grant_check == "service":
        return any(client.allows(g) for g in (INQUIRE, *(f"{INQUIRE}:{k}" for k in SOURCE_KINDS)))
    if "<" in grant:  # documents.send:<message_type>: any type it may send
        return any(_may_send(client, t) for t in REGISTRY)
    return client.allows(grant)


def _operations(client: Client, operations: tuple[Operation, ...]) -> list[dict[str, Any]]:
    out = []
    for operation in operations:
        if not _may_call(client, operation):
            continue
        entry: dict[str, Any] = {
            "method": operation.method,
            "path": operation.path,
            "operation_id": operation.operation_id,
            "summary": operation.summary,
            "grant": operation.grant,
        }
        request = [link for stem in operation.request_schemas if (link := schema_link(stem))]
        if request:
            entry["request_schemas"] = request
        out.append(entry)
    return out


async def services(request: web.Request) -> web.Response:
    """The document types, lookup sources and operations the calling client is granted."""
    client = request[PRINCIPAL_KEY].client
    settings = request.app[SERVICES].settings
    body = {
        "client": client.id,
        "grants": sorted(client.grants),
        "documents": _documents(client),
        "lookups": _lookups(client, settings.config_dir),
        "operations": _operations(client, request.app[OPERATIONS_KEY]),
        "openapi": "/openapi.json",
    }
    return web.json_response(body, headers={"Cache-Control": "private, max-age=60"})


async def schema(request: web.Request) -> web.Response:
    """One JSON Schema file as the gateway validates with it (relative ``$ref``s resolve beside it)."""
    name = request.match_info["schema"]
    if name not in SCHEMA_FILES:
        raise Problem(404, "not-found", "No such schema", f"no schema {name!r}; see GET /v1/services")
    text = files("gateway").joinpath("schemas").joinpath(name).read_text(encoding="utf-8")
    json.loads(text)  # the package's own file: never served broken
    return web.Response(
        text=text,
        content_type="application/json",
        charset="utf-8",
        headers={"Cache-Control": "public, max-age=300"},
    )


OPERATIONS: Final = (
    Operation(
        "GET",
        "/v1/services",
        services,
        name="services.list",
        operation_id="listServices",
        tag="Directory",
        summary="What this client may use: document types, lookup sources, operations",
        description=(
            "Computed from the client's grants: a document type is listed when the client may send it "
            "(`documents.send:<message_type>`, or an older grant name such as `judgments.push`), a lookup "
            "source when it holds `assets.inquire` or `assets.inquire:<kind>`, an operation when its grant "
            "is held. Each entry links to its JSON Schema (`GET /v1/schemas/{schema}`)."
        ),
        grant=ANY_CLIENT,
        responses={200: Response("The client's directory.", "services", headers=("Cache-Control",))},
        problems=(503,),
    ),
    Operation(
        "GET",
        SCHEMAS_PATH + "/{schema}",
        schema,
        name="schemas.get",
        operation_id="getSchema",
        tag="Directory",
        summary="A JSON Schema file (Draft 2020-12), as the gateway validates with it",
        responses={
            200: Response(
                "The schema file.",
                "services.schema",
                headers=("Cache-Control",),
            )
        },
        problems=(404,),
    ),
)
