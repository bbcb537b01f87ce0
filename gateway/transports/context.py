"""Who a call is for and what the platform proved about it, carried beside the call.

:class:`~gateway.connectors.resilience.GuardedConnector` opens a :class:`CallContext` around each guarded
operation (its message or request id, the officer, the case); the transport reads it to say who the caller
is (X-Road's ``userId`` and ``issue``) and records what the platform gave back as evidence (the request hash
an X-Road answer carries). A context variable, because zeep builds the SOAP request deep inside its
binding where no argument reaches: each task sees its own.
"""

from __future__ import annotations

import contextvars
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any


@dataclass(slots=True)
class CallContext:
    #: The id the platform is told (X-Road-Id): the lookup's request_ref, the document's message_id,
    #: a batch's own id.
    message_id: str = ""
    #: The officer the call is made for (X-Road-UserId); a personal ID: never logged.
    user_id: str | None = field(default=None, repr=False)
    #: The enforcement case (X-Road-Issue).
    issue: str | None = None
    #: What the transport proved about the last attempt (kept beside the answer); ``None`` for direct.
    evidence: dict[str, Any] | None = None


_current: contextvars.ContextVar[CallContext | None] = contextvars.ContextVar("call_context", default=None)


def current() -> CallContext:
    """The context of the call under way; an empty one outside any (a direct call in a test)."""
    return _current.get() or CallContext()


@contextmanager
def calling(context: CallContext) -> Iterator[CallContext]:
    token = _current.set(context)
    try:
        yield context
    finally:
        _current.reset(token)


def record_evidence(evidence: dict[str, Any]) -> None:
    """Called by a transport once the platform's answer checked out."""
    ctx = _current.get()
    if ctx is not None:
        ctx.evidence = evidence
