"""Per-client request limits (429 with Retry-After), using the `limits` library's moving window.

Limits are per api process with the default in-memory storage; `limits` also speaks Redis
(``storage_uri``), which makes them shared across processes without changing this code.
"""

from __future__ import annotations

import math
import time

from limits import RateLimitItem, parse, storage, strategies

from gateway.problems import Problem


class ClientRateLimiter:
    def __init__(self, default: str, storage_uri: str = "memory://") -> None:
        self._default = parse(default)
        self._limiter = strategies.MovingWindowRateLimiter(storage.storage_from_string(storage_uri))
        self._items: dict[str, RateLimitItem] = {}

    def check(self, client_id: str, limit: str | None = None) -> None:
        """Count one request for ``client_id``; raise a 429 problem when over its limit."""
        item = self._items.setdefault(limit, parse(limit)) if limit else self._default
        if self._limiter.hit(item, client_id):
            return
        reset = self._limiter.get_window_stats(item, client_id).reset_time
        retry_after = max(1, math.ceil(reset - time.time()))
        raise Problem(
            429,
            "rate-limited",
            "Too many requests",
            f"client {client_id} exceeded {item}; retry after {retry_after} s",
            headers={"Retry-After": str(retry_after)},
        )
