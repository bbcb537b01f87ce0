"""What one HTTP operation declares. Routes (:mod:`gateway.web.operations`) and the OpenAPI paths
(:mod:`gateway.openapi_paths`) are both generated from these declarations, so neither is kept by hand.

Schemas are named by the stem of their file in ``gateway/schemas`` (``receipt`` for
``receipt.schema.json``); examples by their folder in ``gateway/schemas/examples`` and file name.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, Final, Literal

from aiohttp import web
from aiohttp.typedefs import Handler

__all__ = [
    "ANY_CLIENT",
    "JSON_MEDIA",
    "OPERATIONS_KEY",
    "Example",
    "Operation",
    "Parameter",
    "Response",
    "admitting_grants",
    "may_hold_one",
]

JSON_MEDIA: Final = "application/json"

#: A grant that any registered client holds: authenticated, and the service shows it its own resources only.
ANY_CLIENT: Final = "*"

#: ``problem``: errors are ``application/problem+json``; ``soap-fault``: SOAP 1.1 Faults in ``text/xml``.
ErrorFormat = Literal["problem", "soap-fault"]

#: Who checks the grant: ``route`` (before the handler runs) or ``service`` (once the body says which
#: per-type or per-source grant applies; the route then only authenticates).
GrantCheck = Literal["route", "service"]


@dataclass(frozen=True, slots=True)
class Response:
    """One answer of an operation: a JSON body of a schema file, or a text body of ``media_type``."""

    description: str
    schema: str | None = None
    media_type: str = JSON_MEDIA
    #: Names of ``components.headers`` the answer carries.
    headers: tuple[str, ...] = ()
    #: Further media types the answer may have, with the same (text) schema.
    other_media_types: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Parameter:
    """A query or header parameter (path parameters come from the path and ``components.parameters``)."""

    name: str
    location: Literal["query", "header"]
    description: str
    schema: Mapping[str, Any] = field(default_factory=lambda: MappingProxyType({"type": "string"}))
    required: bool = False
    allow_empty: bool = False
    #: ``form`` + ``explode`` with an object schema: each property is a query parameter of its own, so
    #: the schema can say how they depend on each other (the name then appears nowhere on the wire).
    style: Literal["form"] | None = None
    explode: bool | None = None


@dataclass(frozen=True, slots=True)
class Example:
    """A request example from ``gateway/schemas/examples/<directory>/<file>``; no file: its first
    ``valid-*.json``."""

    directory: str
    file: str | None = None
    summary: str = ""


@dataclass(frozen=True, slots=True)
class Operation:
    """One HTTP operation, declared once."""

    method: str
    path: str
    handler: Handler
    #: The aiohttp route name (audit actions and tests use it).
    name: str
    operation_id: str
    tag: str
    summary: str
    description: str = ""
    #: ``None``: public. Else the grant the caller needs (:data:`ANY_CLIENT`: any registered client).
    grant: str | None = None
    grant_check: GrantCheck = "route"
    #: With ``grant_check="service"``: grants of which the client must hold at least one (or one of their
    #: sub-grants, ``assets.inquire:bank`` for ``assets.inquire``) before its body is even read. Empty: the
    #: grants of the document types in ``request``, else ``grant`` itself (:func:`admitting_grants`).
    admitting: tuple[str, ...] = ()
    #: Schema file stem of the body; several: the body is one of them.
    request: str | tuple[str, ...] | None = None
    request_media: str = JSON_MEDIA
    request_description: str = ""
    responses: Mapping[int, Response] = field(default_factory=dict)
    problems: tuple[int, ...] = ()
    #: What a problem status means for this operation, where the generic description says too little.
    problem_notes: Mapping[int, str] = field(default_factory=dict)
    errors: ErrorFormat = "problem"
    parameters: tuple[Parameter, ...] = ()
    examples: tuple[Example, ...] = ()
    #: (description, URL); a URL starting with ``/`` is relative to the public URL.
    external_docs: tuple[str, str] | None = None
    #: Prepares application state the handler needs; run once when the route is added.
    setup: Callable[[web.Application], None] | None = None

    @property
    def request_schemas(self) -> tuple[str, ...]:
        """The request schema stems, whether one or several were declared."""
        if self.request is None:
            return ()
        return (self.request,) if isinstance(self.request, str) else self.request


def admitting_grants(operation: Operation, grants_of: Mapping[str, frozenset[str]]) -> frozenset[str]:
    """The grants one of which a client needs before ``operation`` reads its body. ``grants_of``: the
    grants that allow sending each document type (``documents.send:<type>`` and older names)."""
    if operation.admitting:
        return frozenset(operation.admitting)
    by_type = [grants_of[name] for name in operation.request_schemas if name in grants_of]
    if by_type:
        return frozenset().union(*by_type)
    return frozenset({operation.grant}) if operation.grant is not None else frozenset()


def may_hold_one(grants: frozenset[str], held: frozenset[str], revoked: bool = False) -> bool:
    """Whether a client holding ``held`` may be allowed one of ``grants``: one of them, its family
    (``documents.send`` for ``documents.send:x``), or a sub-grant of one (``assets.inquire:bank``)."""
    if revoked:
        return False
    return any(
        grant in held or grant.split(":", 1)[0] in held or any(h.startswith(grant + ":") for h in held)
        for grant in grants
    )


#: The operations an application routes, as registered (``GET /openapi.json`` describes exactly these).
OPERATIONS_KEY: Final[web.AppKey[tuple[Operation, ...]]] = web.AppKey("operations")
