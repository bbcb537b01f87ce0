"""RFC 9457 problem details: the one error shape every endpoint answers with.

Handlers raise a :class:`Problem`; the error middleware turns it into
``application/problem+json``. Anything else escaping a handler becomes a 503
"try again" problem, never a bare 500 with a stack trace.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from gateway.domain.violations import Violation

__all__ = ["DEFAULT_MAX_LISTED", "PROBLEM_BASE", "Problem", "Violation", "set_max_listed"]

PROBLEM_BASE = "https://gateway.thads.example/problems/"

#: Violations a problem lists by default; the rest are counted in ``errors_omitted`` (``[limits]``).
DEFAULT_MAX_LISTED = 100
_max_listed = DEFAULT_MAX_LISTED


def set_max_listed(limit: int) -> None:
    """How many violations a 422 lists from now on, process-wide (``[limits] max_errors``)."""
    global _max_listed
    if limit <= 0:
        raise ValueError("the violation listing limit must be positive")
    _max_listed = limit


def max_listed() -> int:
    """How many violations a 422 lists (see :func:`set_max_listed`)."""
    return _max_listed


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


def invalid(violations: list[Violation], detail: str = "") -> Problem:
    """422: the document is well-formed but breaks the schema or a business rule.

    At most :func:`max_listed` violations are listed, each once; the others are counted in
    ``errors_omitted`` (plus any a capped list says it left out: its ``omitted`` attribute), so a hostile
    document cannot turn into a 60 MB answer.
    """
    ordered = sorted(set(violations), key=lambda v: (v.path, v.message, v.rule))
    limit = max_listed()
    omitted = max(0, len(ordered) - limit) + int(getattr(violations, "omitted", 0))
    listed = ordered[:limit]
    counted = f"{len(listed) + omitted} violation(s)"
    if omitted:
        bound = "at least " if getattr(violations, "counted_all", True) is False else ""
        counted += f", the first {len(listed)} listed, {bound}{omitted} more"
    return Problem(
        422,
        "validation-failed",
        "The message does not satisfy its schema",
        detail or f"{counted}; fix all of them and send again.",
        listed,
        omitted=omitted,
    )


def too_complex(limit: str, value: float, detail: str) -> Problem:
    """413: the body is within the byte limit but would cost more work than one request may (a ``[limits]``
    setting): too many XML elements or attributes, too deep, or its validation ran over the time budget.
    ``limit`` names the setting, so the client (and the operator reading the audit) knows which."""
    return Problem(
        413,
        "too-complex",
        "Request too complex",
        f"{detail} (limit {limit} = {value:g}); send a smaller message.",
        extra={"limit": limit, "limit_value": value},
    )


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
    return Problem(403, "forbidden", "Not allowed", detail)


def not_found(detail: str = "No such resource, or not visible to this client.") -> Problem:
    return Problem(404, "not-found", "Not found", detail)


def conflict(detail: str) -> Problem:
    return Problem(409, "conflict", "Conflicts with an earlier request", detail)


def too_large(limit: int) -> Problem:
    return Problem(413, "payload-too-large", "Request body too large", f"The limit is {limit} bytes.")


def unsupported_media_type(expected: str) -> Problem:
    return Problem(415, "unsupported-media-type", "Unsupported media type", f"Send {expected}.")


def unavailable(detail: str, retry_after: int = 5) -> Problem:
    return Problem(
        503,
        "unavailable",
        "Temporarily unavailable",
        detail,
        headers={"Retry-After": str(retry_after)},
    )
