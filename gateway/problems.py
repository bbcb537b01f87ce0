"""RFC 9457 problem details: the one error shape every endpoint answers with.

Services raise the domain's errors (:mod:`gateway.domain.errors`); :func:`problem_for` is the one place
that says which problem, with which HTTP status, each of them is, for the REST API (the error middleware,
``gateway/web/middleware.py``) and the SOAP endpoint (whose Faults carry the same status) alike. What is
genuinely HTTP (parsing a request, authentication, rate limits) is raised as a :class:`Problem` directly.
The error middleware turns either into ``application/problem+json``. Anything else escaping a handler
becomes a 503 "try again" problem, never a bare 500 with a stack trace.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Final

from gateway.domain.errors import (
    DEFAULT_MAX_LISTED,
    Conflict,
    DomainError,
    Forbidden,
    NotFound,
    Refused,
    TooComplex,
    Unavailable,
    max_listed,
    set_max_listed,
)
from gateway.domain.violations import Violation

__all__ = [
    "DEFAULT_MAX_LISTED",
    "PROBLEM_BASE",
    "STATUS_OF",
    "Problem",
    "Violation",
    "max_listed",
    "problem_for",
    "set_max_listed",
]

PROBLEM_BASE = "https://gateway.thads.example/problems/"


@dataclass(slots=True)
class Problem(Exception):
    """An error answer. ``kind`` becomes the problem ``type`` URI suffix."""

    status: int
    kind: str
    title: str
    detail: str = ""
    violations: list[Violation] = field(default_factory=list)
    headers: dict[str, str] = field(default_factory=dict)
    extra: dict[str, Any] = field(default_factory=dict)
    #: Violations found but not listed in ``violations`` (a client fixes the listed ones and sends again).
    omitted: int = 0

    def __post_init__(self) -> None:
        Exception.__init__(self, f"{self.status} {self.kind}: {self.detail or self.title}")

    def body(self, instance: str | None = None) -> dict[str, Any]:
        out: dict[str, Any] = {
            "type": PROBLEM_BASE + self.kind,
            "title": self.title,
            "status": self.status,
        }
        if self.detail:
            out["detail"] = self.detail
        if instance:
            out["instance"] = instance
        if self.violations:
            out["errors"] = [v.as_dict() for v in self.violations]
        if self.omitted:
            out["errors_omitted"] = self.omitted
        out.update(self.extra)
        return out


#: The HTTP status of each domain error: what the API documents (422 for a refused document, ...).
STATUS_OF: Final[Mapping[type[DomainError], int]] = {
    Refused: 422,
    TooComplex: 413,
    Forbidden: 403,
    NotFound: 404,
    Conflict: 409,
    Unavailable: 503,
}

#: The problem ``title`` of each slug a domain error carries.
_TITLES: Final[Mapping[str, str]] = {
    Refused.slug: "The message does not satisfy its schema",
    TooComplex.slug: "Request too complex",
    Forbidden.slug: "Not allowed",
    NotFound.slug: "Not found",
    Conflict.slug: "Conflicts with an earlier request",
    Unavailable.slug: "Temporarily unavailable",
    "broker-unavailable": "The message broker is unavailable",
}


def problem_for(error: DomainError) -> Problem:
    """The problem a domain error is answered with: its status, type, title, detail and violations."""
    status = next((STATUS_OF[kind] for kind in type(error).__mro__ if kind in STATUS_OF), None)
    if status is None:
        raise TypeError(f"{type(error).__name__} has no HTTP status: add it to STATUS_OF")
    headers: dict[str, str] = {}
    extra: dict[str, Any] = {}
    if isinstance(error, Unavailable):
        headers["Retry-After"] = str(error.retry_after)
    if isinstance(error, TooComplex):
        extra = {"limit": error.limit, "limit_value": error.value}
    return Problem(
        status,
        error.slug,
        _TITLES.get(error.slug, "Request refused"),
        error.detail,
        list(error.violations),
        headers,
        extra,
        omitted=error.omitted,
    )


def invalid(violations: list[Violation], detail: str = "") -> Problem:
    """422: the request is well-formed but breaks the schema of what it must hold (for a web door's own
    checks; services raise :class:`~gateway.domain.errors.Refused`)."""
    return problem_for(Refused(violations, detail))


def too_complex(limit: str, value: float, detail: str) -> Problem:
    """413: the body is within the byte limit but would cost more work than one request may
    (:class:`~gateway.domain.errors.TooComplex`)."""
    return problem_for(TooComplex(limit, value, detail))


def bad_request(detail: str) -> Problem:
    return Problem(400, "malformed-request", "The request could not be parsed", detail)


def unauthorized(detail: str) -> Problem:
    return Problem(
        401,
        "unauthorized",
        "Authentication required",
        detail,
        headers={"WWW-Authenticate": 'Bearer realm="thads-gateway"'},
    )


def forbidden(detail: str) -> Problem:
    """403 for what the web door refuses itself (a token's grants); services raise ``Forbidden``."""
    return problem_for(Forbidden(detail))


def not_found(detail: str = "No such resource, or not visible to this client.") -> Problem:
    return problem_for(NotFound(detail))


def too_large(limit: int) -> Problem:
    return Problem(413, "payload-too-large", "Request body too large", f"The limit is {limit} bytes.")


def unsupported_media_type(expected: str) -> Problem:
    return Problem(415, "unsupported-media-type", "Unsupported media type", f"Send {expected}.")


def unavailable(detail: str, retry_after: int = 5) -> Problem:
    return problem_for(Unavailable(detail, retry_after))
