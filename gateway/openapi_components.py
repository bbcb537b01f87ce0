"""The shared pieces of the OpenAPI document: problem responses, headers, path parameters, security."""

from __future__ import annotations

from typing import Final

from gateway.openapi_schemas import JSON, component_name, component_ref
from gateway.problems import PROBLEM_BASE
from gateway.security.tokens import ACCEPTED_ALGORITHMS, REQUIRED_CLAIMS
from gateway.settings import Settings
from gateway.web import routes_docs, routes_services

__all__ = ["PROBLEMS", "PROBLEM_JSON", "SECURITY_SCHEME", "shared_components"]

SECURITY_SCHEME: Final = "bearer"
PROBLEM_JSON: Final = "application/problem+json"

#: Problem responses by HTTP status: component name, problem type suffix, title, when it is answered.
PROBLEMS: Final[dict[int, tuple[str, str, str, str]]] = {
    400: (
        "BadRequest",
        "malformed-request",
        "The request could not be parsed",
        "The body is not JSON (or not UTF-8, or empty).",
    ),
    401: (
        "Unauthorized",
        "unauthorized",
        "Authentication required",
        "No token, a bad signature, an expired token, or an unknown or revoked client.",
    ),
    403: (
        "Forbidden",
        "forbidden",
        "Not allowed",
        "The client is not granted the service this operation needs.",
    ),
    404: ("NotFound", "not-found", "Not found", "No such resource, or not visible to this client."),
    409: ("Conflict", "conflict", "Conflicts with an earlier request", "Conflicts with an earlier request."),
    413: (
        "PayloadTooLarge",
        "payload-too-large",
        "Request body too large",
        "The body is larger than `api.max_body_bytes` (`payload-too-large`), or would cost more work "
        "than one request may (`too-complex`: XML elements, attributes or depth past `[limits]`, or a "
        "schema validation past `limits.validation_budget_seconds`; `limit` names the setting). Send a "
        "smaller message.",
    ),
    415: (
        "UnsupportedMediaType",
        "unsupported-media-type",
        "Unsupported media type",
        "The body is not `application/json`.",
    ),
    422: (
        "ValidationFailed",
        "validation-failed",
        "The message does not satisfy its schema",
        "Schema or rule violations: each is listed in `errors` with its JSON path (a missing member at its "
        "own path), up to `limits.max_errors`; `errors_omitted` counts the rest.",
    ),
    429: (
        "TooManyRequests",
        "rate-limited",
        "Too many requests",
        "Over the client's request rate (`api.rate_limit`, or `rate_limit` in its client file); wait "
        "`Retry-After` seconds and resend.",
    ),
    503: (
        "Unavailable",
        "unavailable",
        "Temporarily unavailable",
        "Storage unavailable; retry after `Retry-After` seconds.",
    ),
}

_VALIDATION_EXAMPLE: Final[JSON] = {
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

_HEADERS: Final[dict[str, tuple[str, JSON]]] = {
    "Location": ("Where to follow the resource.", {"type": "string"}),
    "WWW-Authenticate": ('Always `Bearer realm="thads-gateway"`.', {"type": "string"}),
    "Retry-After": ("Seconds to wait before retrying.", {"type": "integer"}),
    "Gateway-Duplicate": (
        "`true`: the message (or the same judgment) was accepted before.",
        {"const": "true"},
    ),
    "Preference-Applied": (
        "The wait applied, e.g. `wait=10` (capped at `api.max_wait_seconds`).",
        {"type": "string"},
    ),
    "Cache-Control": ("Cacheable.", {"type": "string"}),
}

#: Path parameters, named ``component_name(<name in the path>)`` (``{message_id}`` -> ``MessageId``).
_PATH_PARAMETERS: Final[dict[str, tuple[str, JSON]]] = {
    "message_id": (
        "The `message_id` of a pushed message.",
        {"$ref": component_ref(component_name("common"), "/$defs/uuid")},
    ),
    "inquiry_id": ("As returned when the inquiry was created.", {"type": "string"}),
    "bulk_id": ("As returned when the bulk lookup was accepted.", {"type": "string"}),
    "asset": ("The name of the file.", {"enum": list(routes_docs.ASSETS)}),
    "schema": (
        "A schema file name, as `GET /v1/services` links it.",
        {"enum": sorted(routes_services.SCHEMA_FILES)},
    ),
    "subscription_id": ("As returned when the subscription was created.", {"type": "string"}),
}


def header_ref(name: str) -> JSON:
    return {"$ref": f"#/components/headers/{name}"}


def _problem_responses() -> JSON:
    responses: JSON = {}
    for status, (name, kind, title, when) in PROBLEMS.items():
        example = {"type": PROBLEM_BASE + kind, "title": title, "status": status}
        response: JSON = {
            "description": when,
            "content": {
                PROBLEM_JSON: {
                    "schema": {"$ref": component_ref(component_name("problem"))},
                    "example": _VALIDATION_EXAMPLE if status == 422 else example,
                }
            },
        }
        if status == 401:
            response["headers"] = {"WWW-Authenticate": header_ref("WWW-Authenticate")}
        if status in (429, 503):
            response["headers"] = {"Retry-After": header_ref("Retry-After")}
        responses[name] = response
    return responses


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


def _path_parameter(name: str, description: str, schema: JSON) -> JSON:
    return {"name": name, "in": "path", "required": True, "description": description, "schema": schema}


def shared_components(settings: Settings) -> JSON:
    """``components`` except ``schemas``: problem responses, headers, path parameters, the bearer scheme."""
    return {
        "responses": _problem_responses(),
        "parameters": {
            component_name(name): _path_parameter(name, description, schema)
            for name, (description, schema) in _PATH_PARAMETERS.items()
        },
        "headers": {
            name: {"description": description, "schema": schema}
            for name, (description, schema) in _HEADERS.items()
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
