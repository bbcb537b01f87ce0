"""RFC 9457 problem details: the one error shape every endpoint answers with.

Handlers raise a :class:`Problem`; the error middleware turns it into
``application/problem+json``. Anything else escaping a handler becomes a 503
"try again" problem, never a bare 500 with a stack trace.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from gateway.domain.violations import Violation

__all__ = ["PROBLEM_BASE", "Problem", "Violation"]

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
        out.update(self.extra)
        return out


def invalid(violations: list[Violation], detail: str = "") -> Problem:
    """422: the document is well-formed but breaks the schema or a business rule."""
    ordered = sorted(violations, key=lambda v: (v.path, v.message))
    return Problem(
        422,
        "validation-failed",
        "The message does not satisfy its schema",
        detail or f"{len(ordered)} violation(s); fix all of them and send again.",
        ordered,
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
