"""The HTTP API as an OpenAPI 3.1 document, served at ``GET /openapi.json``.

Written by hand next to the routes it describes. Request bodies are the message schemas of
``gateway/schemas`` themselves (OpenAPI 3.1 schemas are JSON Schema Draft 2020-12, the dialect of
the files): every schema file, the shared ``common`` and ``envelope`` too, is copied into
``components.schemas`` under a component name (``judgment.delivery`` -> ``JudgmentDelivery``).
Their ``$ref``s between files are rewritten to the components they point to
(``common.schema.json#/$defs/uuid`` -> ``#/components/schemas/Common/$defs/uuid``) and their
``$id`` is kept as ``x-schema-id``: OpenAPI tools resolve ``$ref`` against the document and
mostly ignore embedded ``$id``s, so references that depend on no ``$id`` work the same everywhere.
Response shapes are written here.
"""

from __future__ import annotations

import copy
import json
import re
from importlib import metadata
from importlib.resources import files
from typing import Any, Final
from urllib.parse import urldefrag, urljoin

from gateway.domain.inquiry import InquiryStatus, SourceStatus
from gateway.domain.status import Status
from gateway.problems import PROBLEM_BASE
from gateway.security.tokens import ACCEPTED_ALGORITHMS, REQUIRED_CLAIMS
from gateway.services.documents import SIGNED_FIELDS
from gateway.settings import Settings
from gateway.validation import SCHEMA_SUFFIX

__all__ = [
    "OPENAPI_VERSION",
    "build_document",
    "component_name",
    "components_from_files",
    "message_schemas",
]

JSON = dict[str, Any]

OPENAPI_VERSION: Final = "3.1.0"
PACKAGE: Final = "thads-gateway"
FALLBACK_VERSION: Final = "0.1.0"
SECURITY_SCHEME: Final = "bearer"
PROBLEM_JSON: Final = "application/problem+json"
SOAP_PATH: Final = "/soap/courts"

BEARER: Final[list[dict[str, list[str]]]] = [{SECURITY_SCHEME: []}]
PUBLIC: Final[list[dict[str, list[str]]]] = []

AGENCY_CODE: Final[JSON] = {
    "type": "string",
    "pattern": "^[A-Z0-9][A-Z0-9-]{1,31}$",
    "description": "Agency code (courts, enforcement offices, banks, registries).",
}
CASE_REF: Final[JSON] = {
    "type": "string",
    "pattern": "^[A-Z0-9][A-Z0-9/-]{2,63}$",
    "description": "Enforcement case number.",
}
DATE_TIME: Final[JSON] = {"type": "string", "format": "date-time"}
UUID: Final[JSON] = {"type": "string", "format": "uuid"}
SHA256_HEX: Final[JSON] = {"type": "string", "pattern": "^[0-9a-f]{64}$"}
MATCH_STATUSES: Final = ("found", "not_found", "ambiguous_identity", "not_competent")

#: Problem responses by HTTP status: component name, problem type suffix, title.
PROBLEMS: Final[dict[int, tuple[str, str, str]]] = {
    400: ("BadRequest", "malformed-request", "The request could not be parsed"),
    401: ("Unauthorized", "unauthorized", "Authentication required"),
    403: ("Forbidden", "forbidden", "Not allowed"),
    404: ("NotFound", "not-found", "Not found"),
    409: ("Conflict", "conflict", "Conflicts with an earlier request"),
    413: ("PayloadTooLarge", "payload-too-large", "Request body too large"),
    415: ("UnsupportedMediaType", "unsupported-media-type", "Unsupported media type"),
    422: ("ValidationFailed", "validation-failed", "The message does not satisfy its schema"),
    429: ("TooManyRequests", "rate-limited", "Too many requests"),
    503: ("Unavailable", "unavailable", "Temporarily unavailable"),
}

PROBLEM_WHEN: Final[dict[int, str]] = {
    400: "The body is not JSON (or not UTF-8, or empty).",
    401: "No token, a bad signature, an expired token, or an unknown or revoked client.",
    403: "The client is not granted the service this operation needs.",
    404: "No such resource, or not visible to this client.",
    409: "Conflicts with an earlier request.",
    413: "The body is larger than `api.max_body_bytes`.",
    415: "The body is not `application/json`.",
    422: "Schema or rule violations: every one is listed in `errors` with its JSON path.",
    429: "Over the client's request rate (`api.rate_limit`, or `rate_limit` in its client file); "
    "wait `Retry-After` seconds and resend.",
    503: "Storage unavailable; retry after `Retry-After` seconds.",
}


def package_version() -> str:
    try:
        return metadata.version(PACKAGE)
    except metadata.PackageNotFoundError:
        return FALLBACK_VERSION


def component_name(stem: str) -> str:
    """``judgment.delivery`` -> ``JudgmentDelivery``; ``asset.result.bank`` -> ``AssetResultBank``."""
    return "".join(part[:1].upper() + part[1:] for part in re.split(r"[._-]+", stem) if part)


def message_schemas() -> dict[str, JSON]:
    """Every ``*.schema.json`` of the installed ``gateway/schemas``, by file stem, as written."""
    directory = files("gateway").joinpath("schemas")
    out: dict[str, JSON] = {}
    for entry in sorted(directory.iterdir(), key=lambda e: e.name):
        if entry.is_file() and entry.name.endswith(SCHEMA_SUFFIX):
            contents = json.loads(entry.read_text(encoding="utf-8"))
            if not isinstance(contents, dict) or not isinstance(contents.get("$id"), str):
                raise ValueError(f"{entry.name}: a schema needs a string $id")
            out[entry.name.removesuffix(SCHEMA_SUFFIX)] = contents
    return out


def _component_ref(name: str, fragment: str = "") -> str:
    return f"#/components/schemas/{name}{fragment}"


def components_from_files(schemas: dict[str, JSON]) -> dict[str, JSON]:
    """The schema files as components: ``$ref``s rewritten to components, ``$id`` kept as ``x-schema-id``.

    Raises ``ValueError`` for a reference to no known file or to an anchor, and for keywords that would
    need ``$id`` semantics (nested ``$id``, ``$anchor``, dynamic references).
    """
    names = {str(schema["$id"]): component_name(stem) for stem, schema in schemas.items()}

    def rewrite(node: Any, base: str) -> Any:
        if isinstance(node, list):
            return [rewrite(item, base) for item in node]
        if not isinstance(node, dict):
            return node
        out: JSON = {}
        for key, value in node.items():
            if key == "$ref" and isinstance(value, str):
                target, fragment = urldefrag(urljoin(base, value))
                if target not in names:
                    raise ValueError(f"{base}: $ref {value!r} points to no schema file")
                if fragment and not fragment.startswith("/"):
                    raise ValueError(f"{base}: $ref {value!r} names an anchor; use a JSON pointer")
                out[key] = _component_ref(names[target], fragment)
            elif key in ("$id", "$anchor", "$dynamicRef", "$dynamicAnchor") and isinstance(value, str):
                raise ValueError(f"{base}: {key} inside a schema file is not supported here")
            else:
                out[key] = rewrite(value, base)
        return out

    components: dict[str, JSON] = {}
    for schema in schemas.values():
        schema_id = str(schema["$id"])
        body = {k: v for k, v in schema.items() if k not in ("$id", "$schema")}
        components[names[schema_id]] = {"x-schema-id": schema_id, **rewrite(body, schema_id)}
    return components


def _example(message_type: str, name: str) -> Any:
    path = files("gateway").joinpath("schemas", "examples", message_type, name)
    return json.loads(path.read_text(encoding="utf-8"))


def _ref(name: str) -> JSON:
    return {"$ref": f"#/components/schemas/{name}"}


def _response_ref(name: str) -> JSON:
    return {"$ref": f"#/components/responses/{name}"}


def _header_ref(name: str) -> JSON:
    return {"$ref": f"#/components/headers/{name}"}


def _json(schema: JSON, description: str, headers: JSON | None = None) -> JSON:
    out: JSON = {"description": description, "content": {"application/json": {"schema": schema}}}
    if headers:
        out["headers"] = headers
    return out


def _problems(*statuses: int) -> JSON:
    return {str(status): _response_ref(PROBLEMS[status][0]) for status in statuses}


def _security_description(settings: Settings) -> str:
    algorithms = " or ".join(sorted(ACCEPTED_ALGORITHMS))
    return (
        "A JWT the client signs with **its own** registered key (registered clients only; the client id "
        f"is its agency code). Algorithms: {algorithms} only (ES256 = P-256, EdDSA = Ed25519); "
        "`alg: none`, HMAC algorithms and keys not registered for the issuer are refused.\n\n"
        f"Required claims ({', '.join(sorted(REQUIRED_CLAIMS))}):\n\n"
        "- `iss`: the client id\n"
        "- `sub`: the calling system or user\n"
        f"- `aud`: `{settings.auth.audience}`\n"
        "- `iat`: issued at (not in the future)\n"
        f"- `exp`: expiry, at most {settings.auth.max_token_lifetime_seconds} s after `iat`\n"
        "- `jti`: a unique token id\n\n"
        "A missing or refused token is `401` with `WWW-Authenticate: Bearer`; a valid token of a client "
        "not granted the operation's service is `403`."
    )


def _description() -> str:
    return (
        "Electronic exchange between the enforcement case system and its partner agencies. Courts push "
        "legally effective judgments (`POST /v1/judgments`, or SOAP at `POST /soap/courts`); the case "
        "system receives each one exactly once in effect and confirms it with its enforcement case number; "
        "senders and recipients follow a message's status and evidence. The case system looks up a "
        "debtor's assets in every register at once (`POST /v1/asset-inquiries`).\n\n"
        "Messages are validated against the JSON Schemas (Draft 2020-12) in `components.schemas`, stored "
        "before they are acknowledged, and answered with a receipt signed with the gateway's Ed25519 key "
        "(`GET /v1/keys`). Errors are RFC 9457 `application/problem+json` documents whose `errors` list "
        "every violation with its JSON path."
    )


def _response_schemas() -> dict[str, JSON]:
    return {
        "Violation": {
            "type": "object",
            "required": ["path", "message"],
            "properties": {
                "path": {
                    "type": "string",
                    "description": "RFC 9535 JSON path of the offending value (or the header or "
                    "parameter name).",
                    "examples": ["$.body.parties[1].person.id_number"],
                },
                "message": {"type": "string", "description": "What is wrong, in English."},
                "rule": {
                    "type": "string",
                    "description": "The JSON Schema keyword or business rule broken.",
                    "examples": ["format", "required"],
                },
            },
        },
        "Problem": {
            "type": "object",
            "description": "RFC 9457 problem details.",
            "required": ["type", "title", "status"],
            "properties": {
                "type": {
                    "type": "string",
                    "format": "uri",
                    "description": f"`{PROBLEM_BASE}<kind>`.",
                    "examples": [PROBLEM_BASE + "validation-failed"],
                },
                "title": {"type": "string"},
                "status": {"type": "integer", "minimum": 400, "maximum": 599},
                "detail": {"type": "string"},
                "instance": {"type": "string", "description": "The request path."},
                "errors": {
                    "type": "array",
                    "description": "Every violation found, not only the first.",
                    "items": _ref("Violation"),
                },
            },
        },
        "Receipt": {
            "type": "object",
            "description": (
                "Proof of acceptance, signed with the gateway's Ed25519 key: the signature (base64url) "
                "covers the RFC 8785 canonical JSON of the fields named in `signed_fields`. Verify it "
                "with the key of `GET /v1/keys` whose `kid` is `key_id`."
            ),
            "required": [
                "receipt_id",
                "message_id",
                "received_at",
                "sha256",
                "sender",
                "recipient",
                "key_id",
                "alg",
                "signed_fields",
                "signature",
            ],
            "properties": {
                "receipt_id": UUID,
                "message_id": UUID,
                "received_at": DATE_TIME,
                "sha256": SHA256_HEX
                | {"description": "SHA-256 (hex) of the RFC 8785 canonical form of the pushed JSON."},
                "sender": AGENCY_CODE,
                "recipient": AGENCY_CODE,
                "key_id": {"type": "string", "description": "`kid` of the signing key in `GET /v1/keys`."},
                "alg": {"const": "EdDSA"},
                "signed_fields": {
                    "type": "array",
                    "items": {"type": "string"},
                    "examples": [list(SIGNED_FIELDS)],
                },
                "signature": {"type": "string", "pattern": "^[A-Za-z0-9_-]+$", "description": "base64url."},
            },
        },
        "TimelineEvent": {
            "type": "object",
            "required": ["event", "at", "actor"],
            "properties": {
                "event": {
                    "type": "string",
                    "description": "What happened.",
                    "examples": [
                        "accepted",
                        "queued",
                        "delivered",
                        "confirmed",
                        "duplicate_push",
                        "delivery_failed",
                        "redelivered",
                    ],
                },
                "at": DATE_TIME,
                "actor": {"type": "string", "description": "Client id, or the gateway component."},
                "detail": {"type": "object", "description": "Event-specific facts."},
            },
        },
        "MessageStatus": {
            "type": "object",
            "description": "Where a message stands, with its receipt and its timeline of evidence.",
            "required": [
                "message_id",
                "message_type",
                "sender",
                "recipient",
                "priority",
                "status",
                "received_at",
                "updated_at",
                "sha256",
                "receipt",
                "timeline",
            ],
            "properties": {
                "message_id": UUID,
                "message_type": {"type": "string", "examples": ["judgment.delivery"]},
                "sender": AGENCY_CODE,
                "recipient": AGENCY_CODE,
                "priority": {"enum": ["normal", "urgent"]},
                "status": {
                    "enum": [s.value for s in Status],
                    "description": "`received → queued → delivered → confirmed`, or `failed`.",
                },
                "reason": {"type": "string", "description": "Why it failed."},
                "case_ref": CASE_REF | {"description": "The case number it was confirmed with."},
                "received_at": DATE_TIME,
                "updated_at": DATE_TIME,
                "sha256": SHA256_HEX,
                "receipt": _ref("Receipt"),
                "timeline": {"type": "array", "items": _ref("TimelineEvent")},
            },
        },
        "Confirmation": {
            "type": "object",
            "additionalProperties": False,
            "required": ["case_ref"],
            "properties": {
                "case_ref": CASE_REF,
                "note": {"type": "string", "maxLength": 1000},
            },
        },
        "InquirySource": {
            "type": "object",
            "description": "One partner asked, and its answer.",
            "required": ["source", "partner", "status", "due_at", "request_sha256"],
            "properties": {
                "source": {
                    "type": "string",
                    "pattern": "^(land|tax|vehicle|population|bank:[A-Z0-9][A-Z0-9-]{1,31})$",
                    "description": "`land`, `tax`, `vehicle`, `population`, or `bank:<agency code>`.",
                },
                "partner": AGENCY_CODE,
                "status": {"enum": [s.value for s in SourceStatus]},
                "due_at": DATE_TIME,
                "request_sha256": SHA256_HEX
                | {"description": "Hash of exactly what was asked: the answer is evidence about it."},
                "match_status": {"enum": list(MATCH_STATUSES)},
                "rows": {
                    "type": "array",
                    "description": "Rows of the canonical result of this source kind (`AssetResultLand`, "
                    "`AssetResultBank`, `AssetResultTax`, `AssetResultVehicle`, `AssetResultPopulation`).",
                    "items": {"type": "object"},
                },
                "answered_at": DATE_TIME,
                "as_of": {"type": "string", "description": "When the register's data was current."},
                "partner_reference": {"type": "string"},
                "reason": {"type": "string", "description": "Why the source failed."},
            },
        },
        "Inquiry": {
            "type": "object",
            "description": "An asset inquiry and one answer per source asked.",
            "required": [
                "inquiry_id",
                "status",
                "case_ref",
                "officer_id",
                "legal_basis",
                "purpose",
                "priority",
                "debtor",
                "created_at",
                "due_at",
                "sources",
            ],
            "properties": {
                "inquiry_id": {"type": "string"},
                "status": {"enum": [s.value for s in InquiryStatus]},
                "case_ref": CASE_REF,
                "officer_id": {"type": "string"},
                "legal_basis": {"type": "string"},
                "purpose": {"type": "string"},
                "priority": {"enum": ["normal", "urgent"]},
                "debtor": {
                    "type": "string",
                    "description": "The debtor's masked ID number, or its enterprise code.",
                },
                "created_at": DATE_TIME,
                "due_at": DATE_TIME,
                "completed_at": DATE_TIME,
                "sources": {"type": "array", "items": _ref("InquirySource")},
            },
        },
        "InquiryList": {
            "type": "object",
            "required": ["case_ref", "inquiries"],
            "properties": {
                "case_ref": {"type": "string"},
                "inquiries": {"type": "array", "items": _ref("Inquiry")},
            },
        },
        "PartnerAnswer": {
            "type": "object",
            "description": "A bank's late answer to a request it accepted earlier with `202 processing`.",
            "required": ["request_ref", "match_status", "reference", "as_of"],
            "properties": {
                "request_ref": {"type": "string", "minLength": 1, "description": "As sent in the request."},
                "match_status": {"enum": list(MATCH_STATUSES)},
                "reference": {"type": "string", "minLength": 1, "maxLength": 128},
                "as_of": DATE_TIME | {"description": "When the register's data was current."},
                "accounts": {
                    "type": "array",
                    "items": {"$ref": _component_ref(component_name("asset.result.bank"), "/$defs/row")},
                },
            },
        },
        "PartnerAnswerResult": {
            "type": "object",
            "required": ["recorded"],
            "properties": {
                "recorded": {
                    "type": "boolean",
                    "description": "False when the source was already answered (the first answer stands).",
                }
            },
        },
        "Jwk": {
            "type": "object",
            "required": ["kty", "kid"],
            "properties": {
                "kty": {"enum": ["OKP", "EC"]},
                "crv": {"enum": ["Ed25519", "P-256"]},
                "x": {"type": "string"},
                "y": {"type": "string"},
                "kid": {"type": "string", "description": "RFC 7638 thumbprint."},
                "alg": {"enum": ["EdDSA", "ES256"]},
                "use": {"const": "sig"},
            },
        },
        "Jwks": {
            "type": "object",
            "required": ["keys"],
            "properties": {"keys": {"type": "array", "items": _ref("Jwk")}},
        },
        "Health": {
            "type": "object",
            "required": ["status"],
            "properties": {"status": {"const": "ok"}},
        },
        "Readiness": {
            "type": "object",
            "required": ["status", "database"],
            "properties": {
                "status": {"enum": ["ready", "unavailable"]},
                "database": {"enum": ["up", "down"]},
            },
        },
    }


def _components(settings: Settings, schemas: dict[str, JSON]) -> JSON:
    responses: JSON = {}
    for status, (name, kind, title) in PROBLEMS.items():
        response: JSON = {
            "description": PROBLEM_WHEN[status],
            "content": {
                PROBLEM_JSON: {
                    "schema": _ref("Problem"),
                    "example": {"type": PROBLEM_BASE + kind, "title": title, "status": status},
                }
            },
        }
        if status == 401:
            response["headers"] = {"WWW-Authenticate": _header_ref("WWW-Authenticate")}
        if status in (429, 503):
            response["headers"] = {"Retry-After": _header_ref("Retry-After")}
        responses[name] = response
    responses["ValidationFailed"]["content"][PROBLEM_JSON]["example"] = {
        "type": PROBLEM_BASE + "validation-failed",
        "status": 422,
        "title": "The message does not satisfy its schema",
        "detail": "2 violation(s); fix all of them and send again.",
        "errors": [
            {
                "path": "$.body.parties[1].person.id_number",
                "message": "The value is not a valid 12-digit personal ID number",
                "rule": "format",
            },
            {
                "path": "$.created_at",
                "message": "'2026-03-02T09:15:00' is not a valid RFC 3339 date-time with a UTC offset",
                "rule": "format",
            },
        ],
    }
    from_files, written = components_from_files(schemas), _response_schemas()
    clashes = sorted(set(from_files) & set(written))
    if clashes:
        raise ValueError(f"schema files and response schemas share component names: {clashes}")
    return {
        "schemas": from_files | written,
        "responses": responses,
        "parameters": {
            "MessageId": {
                "name": "message_id",
                "in": "path",
                "required": True,
                "description": "The `message_id` of a pushed message.",
                "schema": UUID,
            },
            "InquiryId": {
                "name": "inquiry_id",
                "in": "path",
                "required": True,
                "description": "As returned when the inquiry was created.",
                "schema": {"type": "string"},
            },
        },
        "headers": {
            "Location": {"description": "Where to follow the resource.", "schema": {"type": "string"}},
            "WWW-Authenticate": {
                "description": 'Always `Bearer realm="thads-gateway"`.',
                "schema": {"type": "string"},
            },
            "Retry-After": {"description": "Seconds to wait before retrying.", "schema": {"type": "integer"}},
            "Gateway-Duplicate": {
                "description": "`true`: the message (or the same judgment) was accepted before.",
                "schema": {"const": "true"},
            },
            "Preference-Applied": {
                "description": "The wait applied, e.g. `wait=10` (capped at `api.max_wait_seconds`).",
                "schema": {"type": "string"},
            },
        },
        "securitySchemes": {
            SECURITY_SCHEME: {
                "type": "http",
                "scheme": "bearer",
                "bearerFormat": "JWT",
                "description": _security_description(settings),
            }
        },
    }


def _paths(settings: Settings) -> JSON:
    message_id = {"$ref": "#/components/parameters/MessageId"}
    inquiry_id = {"$ref": "#/components/parameters/InquiryId"}
    location = {"Location": _header_ref("Location")}
    wsdl_url = settings.api.public_url.rstrip("/") + SOAP_PATH + "?wsdl"
    soap_fault = {
        "description": "A SOAP 1.1 Fault whose detail (`GatewayFault`) gives the problem type, the HTTP "
        "status and every violation. The HTTP status is the one the REST API answers for the same "
        "error (400, 401, 403, 409, 413, 415, 422, 429, 503), never 500.",
        "content": {"text/xml": {"schema": {"type": "string"}}},
    }
    return {
        "/v1/judgments": {
            "post": {
                "operationId": "pushJudgment",
                "tags": ["Judgments"],
                "summary": "Push a legally effective judgment (courts)",
                "description": (
                    "Grant `judgments.push`; `sender` must be the authenticated client. The envelope fields "
                    "sit at the top level, the judgment in `body`. Accepted messages are stored with their "
                    "outgoing delivery before the answer is sent. The same `message_id` again, or the same "
                    "judgment (court code + number + date) under a new `message_id`, answers `200` with the "
                    "**original** receipt: nothing is delivered twice."
                ),
                "security": BEARER,
                "requestBody": {
                    "required": True,
                    "content": {
                        "application/json": {
                            "schema": _ref(component_name("judgment.delivery")),
                            "examples": {
                                "civil-judgment": {
                                    "summary": "A civil judgment between two persons",
                                    "value": _example(
                                        "judgment.delivery", "valid-civil-judgment-two-persons.json"
                                    ),
                                }
                            },
                        }
                    },
                },
                "responses": {
                    "202": _json(_ref("Receipt"), "Accepted: stored, to be delivered.", location),
                    "200": _json(
                        _ref("Receipt"),
                        "Already accepted: the original receipt.",
                        location | {"Gateway-Duplicate": _header_ref("Gateway-Duplicate")},
                    ),
                    **_problems(400, 401, 403),
                    "409": {
                        "$ref": "#/components/responses/Conflict",
                        "description": "The `message_id` was already used for a different message.",
                    },
                    **_problems(413, 415, 422, 503),
                },
            }
        },
        "/v1/documents": {
            "post": {
                "operationId": "sendDocument",
                "tags": ["Documents"],
                "summary": "Send any document the client is granted (orders, reports, judgments...)",
                "description": (
                    "Grant `documents.send:<message_type>` (or `documents.send` for every type); `sender` "
                    "must be the authenticated client. The envelope's `message_type` selects the schema. "
                    "Same duplicate and conflict rules as `POST /v1/judgments`."
                ),
                "security": BEARER,
                "requestBody": {
                    "required": True,
                    "content": {"application/json": {"schema": _ref("Envelope")}},
                },
                "responses": {
                    "202": _json(_ref("Receipt"), "Accepted: stored, to be delivered.", location),
                    "200": _json(
                        _ref("Receipt"),
                        "Already accepted: the original receipt.",
                        location | {"Gateway-Duplicate": _header_ref("Gateway-Duplicate")},
                    ),
                    **_problems(400, 401, 403, 409, 413, 415, 422, 503),
                },
            }
        },
        "/v1/messages/{message_id}/revocation": {
            "parameters": [message_id],
            "post": {
                "operationId": "revokeMessage",
                "tags": ["Messages"],
                "summary": "Withdraw a document (its sender only)",
                "security": BEARER,
                "requestBody": {
                    "required": True,
                    "content": {"application/json": {"schema": _ref("RevocationRequest")}},
                },
                "responses": {
                    "200": _json(_ref("MessageStatus"), "Revoked (or a revocation is on its way)."),
                    **_problems(400, 401, 403, 404, 409, 413, 415, 422, 503),
                },
            },
        },
        "/v1/messages/{message_id}": {
            "parameters": [message_id],
            "get": {
                "operationId": "getMessage",
                "tags": ["Messages"],
                "summary": "Follow a message: status, receipt and timeline",
                "description": "Grant `messages.read`; the sender and the recipient only (anyone else: 404).",
                "security": BEARER,
                "responses": {
                    "200": _json(_ref("MessageStatus"), "The message's status."),
                    **_problems(401, 403, 404, 503),
                },
            },
        },
        "/v1/messages/{message_id}/confirmation": {
            "parameters": [message_id],
            "post": {
                "operationId": "confirmMessage",
                "tags": ["Messages"],
                "summary": "Confirm processing with the enforcement case number (recipient)",
                "description": (
                    "Grant `messages.confirm`, recipient only. Repeating it with the same case number is "
                    "harmless; another number is `409`. Once confirmed, the gateway drops the payload and "
                    "keeps metadata and evidence."
                ),
                "security": BEARER,
                "requestBody": {
                    "required": True,
                    "content": {
                        "application/json": {
                            "schema": _ref("Confirmation"),
                            "example": {"case_ref": "THA-HN-2026-000123"},
                        }
                    },
                },
                "responses": {
                    "200": _json(_ref("MessageStatus"), "Confirmed: the message's status."),
                    **_problems(400, 401, 403, 404),
                    "409": {
                        "$ref": "#/components/responses/Conflict",
                        "description": "Confirmed earlier with another case number, or not delivered yet.",
                    },
                    **_problems(413, 415, 422, 503),
                },
            },
        },
        "/v1/keys": {
            "get": {
                "operationId": "getKeys",
                "tags": ["Keys"],
                "summary": "The gateway's public signing keys (JWKS)",
                "description": "To verify receipts and webhook signatures (`Gateway-Signature`).",
                "security": PUBLIC,
                "responses": {
                    "200": _json(
                        _ref("Jwks"),
                        "RFC 7517 JSON Web Key Set.",
                        {"Cache-Control": {"schema": {"type": "string"}, "description": "Cacheable."}},
                    )
                },
            }
        },
        "/v1/asset-inquiries": {
            "post": {
                "operationId": "createAssetInquiry",
                "tags": ["Asset inquiries"],
                "summary": "Look up a debtor's assets in every register at once (case system)",
                "description": (
                    "Grant `assets.inquire` (every source) or `assets.inquire:<kind>` for each source "
                    "asked; a missing grant is `403`, never a silent partial answer. Every lookup is "
                    "audited. The inquiry is answered with `Location: /v1/asset-inquiries/{inquiry_id}`."
                ),
                "security": BEARER,
                "parameters": [
                    {
                        "name": "Prefer",
                        "in": "header",
                        "required": False,
                        "description": (
                            "`wait=N`: wait up to N seconds (capped at `api.max_wait_seconds`) for every "
                            "source to answer: `200` with the complete result if they did, else `202`. "
                            "Without it, `202` at once."
                        ),
                        "schema": {"type": "string", "examples": ["wait=10"]},
                    },
                    {
                        "name": "Idempotency-Key",
                        "in": "header",
                        "required": False,
                        "description": (
                            "The same key returns the same inquiry; another body with it is `409`."
                        ),
                        "schema": {"type": "string", "pattern": "^[A-Za-z0-9._:-]{8,128}$"},
                    },
                ],
                "requestBody": {
                    "required": True,
                    "content": {
                        "application/json": {
                            "schema": _ref(component_name("asset.inquiry")),
                            "examples": {
                                "all-registers": {
                                    "summary": "A person, every register",
                                    "value": _example("asset-inquiry", "valid-all-registers.json"),
                                }
                            },
                        }
                    },
                },
                "responses": {
                    "200": _json(
                        _ref("Inquiry"),
                        "Complete (or expired) within the `Prefer: wait`.",
                        location | {"Preference-Applied": _header_ref("Preference-Applied")},
                    ),
                    "202": _json(
                        _ref("Inquiry"),
                        "Created (or found by its `Idempotency-Key`); sources still pending.",
                        location | {"Preference-Applied": _header_ref("Preference-Applied")},
                    ),
                    **_problems(400, 401),
                    "403": {
                        "$ref": "#/components/responses/Forbidden",
                        "description": "Not granted `assets.inquire` or `assets.inquire:<kind>` for a "
                        "source asked.",
                    },
                    "409": {
                        "$ref": "#/components/responses/Conflict",
                        "description": "The `Idempotency-Key` was used for a different inquiry.",
                    },
                    **_problems(413, 415),
                    "422": {
                        "$ref": "#/components/responses/ValidationFailed",
                        "description": "Schema violations, an unknown legal basis, a precondition not met, "
                        "or a malformed `Idempotency-Key`.",
                    },
                    **_problems(503),
                },
            },
            "get": {
                "operationId": "listAssetInquiries",
                "tags": ["Asset inquiries"],
                "summary": "The client's inquiries for one case",
                "security": BEARER,
                "parameters": [
                    {
                        "name": "case_ref",
                        "in": "query",
                        "required": True,
                        "description": "Enforcement case number (missing: `422`).",
                        "schema": {"type": "string"},
                    }
                ],
                "responses": {
                    "200": _json(_ref("InquiryList"), "The inquiries, oldest first."),
                    **_problems(401, 422, 503),
                },
            },
        },
        "/v1/asset-inquiries/{inquiry_id}": {
            "parameters": [inquiry_id],
            "get": {
                "operationId": "getAssetInquiry",
                "tags": ["Asset inquiries"],
                "summary": "An inquiry and its answers",
                "description": "The client that created it only (anyone else: 404).",
                "security": BEARER,
                "responses": {
                    "200": _json(_ref("Inquiry"), "The inquiry."),
                    **_problems(401, 404, 503),
                },
            },
        },
        "/v1/partner-answers": {
            "post": {
                "operationId": "postPartnerAnswer",
                "tags": ["Partners"],
                "summary": "A partner's late answer (banks that answered `202 processing`)",
                "description": (
                    "Grant `assets.answer`, with the partner's own token. A partner answers its own "
                    "requests only (anything else: 404). An answer after the source timed out or was "
                    "answered is not recorded: the first recorded answer stands."
                ),
                "security": BEARER,
                "requestBody": {
                    "required": True,
                    "content": {"application/json": {"schema": _ref("PartnerAnswer")}},
                },
                "responses": {
                    "200": _json(_ref("PartnerAnswerResult"), "Received."),
                    **_problems(400, 401, 403, 404, 413, 415, 422, 503),
                },
            }
        },
        SOAP_PATH: {
            "get": {
                "operationId": "describeSoapCourts",
                "tags": ["SOAP"],
                "summary": "The WSDL (`?wsdl`) or the XSD it imports (`?xsd=courts.xsd`)",
                "security": PUBLIC,
                "parameters": [
                    {
                        "name": "wsdl",
                        "in": "query",
                        "required": False,
                        "allowEmptyValue": True,
                        "description": "Present (any value): the WSDL.",
                        "schema": {"type": "string"},
                    },
                    {
                        "name": "xsd",
                        "in": "query",
                        "required": False,
                        "description": "`courts.xsd`: the XML Schema of the messages.",
                        "schema": {"const": "courts.xsd"},
                    },
                ],
                "responses": {
                    "200": {
                        "description": "WSDL 1.1 or XSD.",
                        "content": {"text/xml": {"schema": {"type": "string"}}},
                    },
                    **_problems(400),
                },
            },
            "post": {
                "operationId": "pushJudgmentSoap",
                "tags": ["SOAP"],
                "summary": "Push a judgment over SOAP 1.1 (legacy courts)",
                "description": (
                    "SOAP 1.1, document/literal, operation `PushJudgment`, described by the WSDL at "
                    f"`GET {SOAP_PATH}?wsdl`. The same token in `Authorization`, the same rules and the "
                    "same receipt as `POST /v1/judgments`; a new and a duplicate push both answer `200` "
                    "(`Duplicate` in the response tells them apart). Errors are SOAP Faults. DOCTYPEs and "
                    "entities are refused."
                ),
                "externalDocs": {"description": "WSDL", "url": wsdl_url},
                "security": BEARER,
                "parameters": [
                    {
                        "name": "SOAPAction",
                        "in": "header",
                        "required": True,
                        "description": "The operation's SOAPAction from the WSDL, or empty.",
                        "schema": {"type": "string"},
                    }
                ],
                "requestBody": {
                    "required": True,
                    "description": "A SOAP 1.1 envelope holding a `PushJudgmentRequest` (see the WSDL).",
                    "content": {"text/xml": {"schema": {"type": "string"}}},
                },
                "responses": {
                    "200": {
                        "description": "A SOAP envelope holding the receipt.",
                        "content": {"text/xml": {"schema": {"type": "string"}}},
                    },
                    **{str(status): soap_fault for status in (400, 401, 403, 409, 413, 415, 422, 429, 503)},
                },
            },
        },
        "/healthz": {
            "get": {
                "operationId": "healthz",
                "tags": ["Operations"],
                "summary": "Alive",
                "security": PUBLIC,
                "responses": {"200": _json(_ref("Health"), "The process serves.")},
            }
        },
        "/readyz": {
            "get": {
                "operationId": "readyz",
                "tags": ["Operations"],
                "summary": "Ready: the database answers",
                "security": PUBLIC,
                "responses": {
                    "200": _json(_ref("Readiness"), "Ready."),
                    "503": _json(_ref("Readiness"), "The database does not answer."),
                },
            }
        },
        "/metrics": {
            "get": {
                "operationId": "metrics",
                "tags": ["Operations"],
                "summary": "Prometheus metrics",
                "description": "Outbox backlog and publishes, deliveries, retries, redeliveries, parked "
                "messages, partner calls.",
                "security": PUBLIC,
                "responses": {
                    "200": {
                        "description": "Prometheus text exposition format.",
                        "content": {"text/plain": {"schema": {"type": "string"}}},
                    }
                },
            }
        },
        "/openapi.json": {
            "get": {
                "operationId": "openapi",
                "tags": ["Operations"],
                "summary": "This document",
                "security": PUBLIC,
                "responses": {"200": _json({"type": "object"}, "OpenAPI 3.1.")},
            }
        },
    }


def _rate_limited(paths: JSON) -> JSON:
    """Every authenticated request counts against its client's rate: each such operation may answer 429."""
    for item in paths.values():
        for operation in item.values():
            if not isinstance(operation, dict) or operation.get("security") != BEARER:
                continue
            responses = operation["responses"]
            responses.setdefault("429", _response_ref(PROBLEMS[429][0]))
            operation["responses"] = dict(sorted(responses.items()))
    return paths


def build_document(settings: Settings) -> JSON:
    """The OpenAPI 3.1 document of the gateway's HTTP API, as served to ``settings.api.public_url``."""
    schemas = message_schemas()
    document: JSON = {
        "openapi": OPENAPI_VERSION,
        "info": {
            "title": "Civil judgment enforcement data-exchange gateway",
            "version": package_version(),
            "description": _description(),
        },
        "servers": [{"url": settings.api.public_url.rstrip("/")}],
        "tags": [
            {"name": "Judgments", "description": "Courts push judgments."},
            {"name": "Messages", "description": "Follow and confirm pushed messages."},
            {"name": "Keys", "description": "The gateway's public keys."},
            {"name": "Asset inquiries", "description": "Look up a debtor's assets."},
            {"name": "Partners", "description": "Partner agencies answering later."},
            {"name": "SOAP", "description": "The courts' legacy SOAP 1.1 endpoint."},
            {"name": "Operations", "description": "Health, readiness, metrics."},
        ],
        "paths": _rate_limited(_paths(settings)),
        "components": _components(settings, schemas),
    }
    # Shared pieces (the constants above) are copied so a caller can change its document freely.
    return copy.deepcopy(document)
