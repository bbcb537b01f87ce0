"""Bounded violation lists: at most ``limit`` listed (one per path and rule, the stricter of two kept), the
rest only counted, the counting bounded too, and a deadline checked between violations."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from typing import Final

from gateway.problems import Violation

#: Past the listed violations, at most this many times the limit are counted, then "at least N more".
#: Counting is not free: jsonschema still walks each bad item (about 1 ms each for a judgment's items).
COUNT_FACTOR: Final = 10


class BudgetExceeded(Exception):
    """The validation ran past its deadline (``[limits] validation_budget_seconds``)."""


class Violations(list[Violation]):
    """Violations, possibly cut short: ``omitted`` more were found; ``counted_all`` is ``False`` when the
    counting itself stopped, so ``omitted`` is a lower bound."""

    omitted: int = 0
    counted_all: bool = True


def bounded_violations(
    found: Iterable[tuple[str, str, Callable[[], str], object]], limit: int, deadline: float | None
) -> Violations:
    """Collect ``(path, rule, message, strictness)`` items, one per path and rule, at most ``limit`` listed.

    ``message`` is called only for a listed violation (composing is the costly part); further ones are
    counted up to ``limit * COUNT_FACTOR``. Raises :class:`BudgetExceeded` once ``time.monotonic()`` passes
    ``deadline``. ``strictness`` (comparable or ``None``) picks which of two at one path and rule is kept.
    """
    listed: dict[tuple[str, str], tuple[Callable[[], str], object]] = {}
    more: set[tuple[str, str]] = set()
    counted_all = True
    for path, rule, message, strictness in found:
        if deadline is not None and time.monotonic() > deadline:
            raise BudgetExceeded
        key = (path, rule)
        if key in listed:
            if _stricter(strictness, listed[key][1]):
                listed[key] = (message, strictness)
            continue
        if len(listed) < limit:
            listed[key] = (message, strictness)
        elif key not in more:
            more.add(key)
            if len(more) >= limit * COUNT_FACTOR:
                counted_all = False
                break
    out = Violations(
        sorted(
            (Violation(path, message(), rule) for (path, rule), (message, _) in listed.items()),
            key=lambda v: (v.path, v.message, v.rule),
        )
    )
    out.omitted = len(more)
    out.counted_all = counted_all
    return out


def _stricter(new: object, old: object) -> bool:
    if not isinstance(new, tuple) or not isinstance(old, tuple):
        return False
    try:
        return bool(new > old)
    except TypeError:
        return False
