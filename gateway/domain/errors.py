"""Why the gateway refuses or cannot do what it is asked, said by meaning, not by protocol.

Services raise these; each door says them in its own words: the REST API as problem+json with the status
its documentation gives (:func:`gateway.problems.problem_for`), the SOAP endpoint as a Fault carrying that
same status, the worker and the command line by what they log or print. Each error carries what the caller
must be told: a ``detail`` sentence, the problem ``slug`` the API names it by (the suffix of the problem
``type`` URI), and, for a refused document, the violations with their paths.

No I/O here, and nothing of HTTP.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from gateway.domain.violations import Violation

__all__ = [
    "DEFAULT_MAX_LISTED",
    "Conflict",
    "DomainError",
    "Forbidden",
    "NotFound",
    "Refused",
    "TooComplex",
    "Unavailable",
    "max_listed",
    "set_max_listed",
]

#: Violations a refusal lists by default; the rest are counted in ``omitted`` (``[limits] max_errors``).
DEFAULT_MAX_LISTED = 100
_max_listed = DEFAULT_MAX_LISTED


def set_max_listed(limit: int) -> None:
    """How many violations a refusal lists from now on, process-wide (``[limits] max_errors``)."""
    global _max_listed
    if limit <= 0:
        raise ValueError("the violation listing limit must be positive")
    _max_listed = limit


def max_listed() -> int:
    """How many violations a refusal lists (see :func:`set_max_listed`)."""
    return _max_listed


class DomainError(Exception):
    """What the gateway refuses, or cannot do now. ``detail``: what the caller is told."""

    #: The name the API gives this error (the problem ``type`` URI ends with it).
    slug: str = "error"
    #: The broken rules, each at its path (only a :class:`Refused` document has any).
    violations: Sequence[Violation] = ()
    #: Violations found but not listed in ``violations``.
    omitted: int = 0

    def __init__(self, detail: str) -> None:
        super().__init__(detail)
        self.detail = detail


class Refused(DomainError):
    """The document (or request) breaks its schema or a business rule: fix it and send again.

    At most :func:`max_listed` violations are listed, each once, in a stable order; the others are counted
    in ``omitted`` (plus any a capped list says it left out: its ``omitted`` attribute), so a hostile
    document cannot turn into a 60 MB answer.
    """

    slug = "validation-failed"

    def __init__(self, violations: Iterable[Violation], detail: str = "") -> None:
        ordered = sorted(set(violations), key=lambda v: (v.path, v.message, v.rule))
        limit = max_listed()
        omitted = max(0, len(ordered) - limit) + int(getattr(violations, "omitted", 0))
        listed = ordered[:limit]
        if not detail:
            detail = f"{len(listed) + omitted} violation(s)"
            if omitted:
                bound = "at least " if getattr(violations, "counted_all", True) is False else ""
                detail += f", the first {len(listed)} listed, {bound}{omitted} more"
            detail += "; fix all of them and send again."
        super().__init__(detail)
        self.violations = listed
        self.omitted = omitted


class TooComplex(DomainError):
    """The message would cost more work than one request may (a ``[limits]`` setting): too many XML
    elements or attributes, too deep, or its validation ran over the time budget. ``limit`` names the
    setting, so the caller (and the operator reading the audit) knows which."""

    slug = "too-complex"

    def __init__(self, limit: str, value: float, detail: str) -> None:
        super().__init__(f"{detail} (limit {limit} = {value:g}); send a smaller message.")
        self.limit = limit
        self.value = value


class Forbidden(DomainError):
    """The caller may not do this, whatever it sends (a grant it lacks, a role that does not send it)."""

    slug = "forbidden"

    def __init__(self, reason: str) -> None:
        super().__init__(reason)


class NotFound(DomainError):
    """No such thing, or not visible to this caller (the two are never told apart)."""

    slug = "not-found"

    def __init__(self, what: str = "No such resource, or not visible to this client.") -> None:
        super().__init__(what)


class Conflict(DomainError):
    """The request contradicts an earlier one, or the state it acts on (reused ids and keys, a status
    that no longer allows it)."""

    slug = "conflict"

    def __init__(self, reason: str) -> None:
        super().__init__(reason)


class Unavailable(DomainError):
    """Something the gateway depends on is down: nothing was changed; the same request may succeed after
    ``retry_after`` seconds. ``slug`` says what is down when the API names it (``broker-unavailable``)."""

    slug = "unavailable"

    def __init__(self, detail: str, retry_after: int = 5, slug: str | None = None) -> None:
        super().__init__(detail)
        self.retry_after = retry_after
        if slug is not None:
            self.slug = slug
