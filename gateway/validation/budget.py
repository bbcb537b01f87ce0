"""Validation under the ``[limits] validation_budget_seconds`` budget: a small body inline, a large one in a
validation thread so the event loop keeps answering; and the verdict reached there, remembered for the
service that asks again in the same request."""

from __future__ import annotations

import asyncio
import contextvars
import functools
import gc
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, TypeVar

from gateway.problems import too_complex
from gateway.validation.bounds import BudgetExceeded, Violations

if TYPE_CHECKING:
    from gateway.settings import LimitsSettings

T = TypeVar("T")

_PREJUDGED: contextvars.ContextVar[tuple[object, str, Violations] | None] = contextvars.ContextVar(
    "gateway_prejudged", default=None
)


def remember_verdict(document: object, message_type: str, violations: Violations) -> None:
    """Make :meth:`SchemaCatalog.violations` answer ``violations`` for this very ``document`` object (by
    identity) and type, for the rest of the current request's context: the verdict was reached off the event
    loop, and the service asking again must not walk the document a second time on it. Every service asks
    before it changes anything in the document (the web layer hands it over as parsed), which is what makes
    the verdict still hold."""
    _PREJUDGED.set((document, message_type, violations))


def remembered(document: object, message_type: str) -> Violations | None:
    """The verdict :func:`remember_verdict` holds for this very ``document`` object and type, if any."""
    held = _PREJUDGED.get()
    if held is not None and held[0] is document and held[1] == message_type:
        return held[2]
    return None


@functools.cache
def _executor(threads: int) -> ThreadPoolExecutor:
    # Threads rather than processes: the document is already a Python object here (a process would need it
    # pickled there and parsed again: 60% slower), and pure-Python validation gives the GIL up every switch
    # interval, so the event loop keeps answering (docs/architecture.md, "Bounded work per request").
    # What still paused the loop were full garbage collections walking every long-lived object (schemas,
    # modules, services) mid-validation, up to 600 ms; frozen, they are no longer walked (about 100 ms).
    gc.freeze()
    return ThreadPoolExecutor(max_workers=threads, thread_name_prefix="validation")


async def off_loop(work: Callable[[float], T], *, size: int, limits: LimitsSettings) -> T:
    """``work(deadline)`` within ``[limits] validation_budget_seconds``: inline for a body of at most
    ``inline_validation_bytes`` (a thread hop costs more than validating it), else in a validation thread.

    Over the budget: a 413 ``too-complex`` problem naming it. ``work`` should check the deadline itself
    (a thread cannot be stopped from outside): the 413 is answered at the deadline either way.
    """
    budget = limits.validation_budget_seconds
    deadline = time.monotonic() + budget
    try:
        if size <= limits.inline_validation_bytes:
            return work(deadline)
        loop = asyncio.get_running_loop()
        context = contextvars.copy_context()
        future = loop.run_in_executor(_executor(limits.validation_threads), context.run, work, deadline)
        async with asyncio.timeout(budget):
            return await future
    except (BudgetExceeded, TimeoutError) as exc:
        raise too_complex(
            "validation_budget_seconds", budget, "validating the message took longer than one request may"
        ) from exc
