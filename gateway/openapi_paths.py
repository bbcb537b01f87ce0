"""``paths`` of the OpenAPI document, generated from the operation declarations."""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import PurePosixPath

from gateway.openapi_components import PROBLEMS, SECURITY_SCHEME, header_ref
from gateway.openapi_schemas import JSON, component_name, component_ref, example
from gateway.web.operation import ANY_CLIENT, JSON_MEDIA, Example, Operation, Parameter, Response

__all__ = ["paths"]

_PATH_PARAMETER = re.compile(r"{([A-Za-z_][A-Za-z0-9_]*)}")


def paths(operations: Sequence[Operation], public_url: str) -> tuple[JSON, JSON]:
    """The ``paths`` object, and the schema components it adds (bodies that are one of several schemas).

    ``ValueError`` when two operations share a method and path, or a JSON body names no schema.
    """
    out: JSON = {}
    unions: JSON = {}
    for operation in operations:
        item = out.setdefault(operation.path, {})
        method = operation.method.lower()
        if method in item:
            raise ValueError(f"{operation.method} {operation.path} is declared twice")
        names = _PATH_PARAMETER.findall(operation.path)
        if names:
            item["parameters"] = [{"$ref": f"#/components/parameters/{component_name(n)}"} for n in names]
        item[method] = _operation(operation, public_url, unions)
    return out, unions


def _operation(operation: Operation, public_url: str, unions: JSON) -> JSON:
    out: JSON = {"operationId": operation.operation_id, "tags": [operation.tag], "summary": operation.summary}
    if operation.description:
        out["description"] = operation.description
    if operation.external_docs is not None:
        description, url = operation.external_docs
        out["externalDocs"] = {"description": description, "url": public_url + url if url[:1] == "/" else url}
    out["security"] = [] if operation.grant is None else [{SECURITY_SCHEME: []}]
    if operation.parameters:
        out["parameters"] = [_parameter(p) for p in operation.parameters]
    body = _request_body(operation, unions)
    if body is not None:
        out["requestBody"] = body
    out["responses"] = _responses(operation)
    return out


def _parameter(parameter: Parameter) -> JSON:
    out: JSON = {"name": parameter.name, "in": parameter.location, "required": parameter.required}
    if parameter.allow_empty:
        out["allowEmptyValue"] = True
    if parameter.style is not None:
        out["style"] = parameter.style
    if parameter.explode is not None:
        out["explode"] = parameter.explode
    return out | {"description": parameter.description, "schema": dict(parameter.schema)}


def _request_body(operation: Operation, unions: JSON) -> JSON | None:
    stems = operation.request_schemas
    if not stems and operation.request_media == JSON_MEDIA:
        return None
    if len(stems) > 1:
        name = component_name(operation.operation_id) + "Body"
        unions[name] = {
            "description": "One of: "
            + ", ".join(f"`{s}`" for s in stems)
            + ". Its `message_type` says which "
            "(each of these schemas pins it), and selects the schema the gateway validates it against.",
            "oneOf": [{"$ref": component_ref(component_name(s))} for s in stems],
        }
        schema: JSON = {"$ref": component_ref(name)}
    else:
        schema = _schema(stems[0] if stems else None, operation.request_media)
    content: JSON = {"schema": schema}
    if operation.examples:
        content["examples"] = dict(_example(e) for e in operation.examples)
    body: JSON = {"required": True, "content": {operation.request_media: content}}
    if operation.request_description:
        body["description"] = operation.request_description
    return body


def _example(declared: Example) -> tuple[str, JSON]:
    file, value = example(declared.directory, declared.file)
    stem = PurePosixPath(file).stem.removeprefix("valid-")
    key = stem if declared.file else declared.directory
    summary = declared.summary or f"{declared.directory}: {stem.replace('-', ' ')}"
    return key, {"summary": summary, "value": value}


def _schema(stem: str | None, media_type: str) -> JSON:
    if stem is not None:
        return {"$ref": component_ref(component_name(stem))}
    if media_type == JSON_MEDIA:
        raise ValueError("a JSON body needs its schema file in gateway/schemas")
    return {"type": "string"}


def _response(response: Response) -> JSON:
    media_types = (response.media_type, *response.other_media_types)
    out: JSON = {
        "description": response.description,
        "content": {media: {"schema": _schema(response.schema, media)} for media in media_types},
    }
    if response.headers:
        out["headers"] = {name: header_ref(name) for name in response.headers}
    return out


def _problem_statuses(operation: Operation) -> list[int]:
    """The declared problems, and those the route's guard answers: 401 and 429 (every authenticated
    request counts against its client's rate), 403 for a grant checked before the handler."""
    statuses = set(operation.problems)
    if operation.grant is not None:
        statuses |= {401, 429}
        if operation.grant != ANY_CLIENT and operation.grant_check == "route":
            statuses.add(403)
    return sorted(statuses)


def _with_problem_headers(response: JSON, status: int) -> JSON:
    """``response`` with the headers the problem of ``status`` carries (as its problem+json form does)."""
    names = {401: ("WWW-Authenticate",), 429: ("Retry-After",), 503: ("Retry-After",)}.get(status, ())
    if not names:
        return response
    return response | {"headers": {name: header_ref(name) for name in names}}


def _responses(operation: Operation) -> JSON:
    out = {str(status): _response(r) for status, r in operation.responses.items()}
    statuses = _problem_statuses(operation)
    fault: JSON = {
        "description": "A SOAP 1.1 Fault whose detail (`GatewayFault`) gives the problem type, the HTTP "
        "status and every violation. The HTTP status is the one the REST API answers for the same error "
        f"({', '.join(map(str, statuses))}), never 500.",
        "content": {operation.request_media: {"schema": {"type": "string"}}},
    }
    for status in statuses:
        if str(status) in out:
            raise ValueError(f"{operation.name}: {status} is declared both as a response and a problem")
        if operation.errors == "soap-fault":
            out[str(status)] = _with_problem_headers(fault, status)
            continue
        out[str(status)] = {"$ref": f"#/components/responses/{PROBLEMS[status][0]}"}
        if status in operation.problem_notes:
            out[str(status)]["description"] = operation.problem_notes[status]
    return dict(sorted(out.items()))
