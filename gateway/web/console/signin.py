"""What a console sign-in may cost: throttled per address and per account, and password checks on a
small bounded pool with a time budget.

argon2 is made to be expensive (about 50-100 ms of CPU and 64 MiB per check). Run on the default thread
pool with no bound, 24 parallel wrong sign-ins took intake's push latency from 6 ms to 2.3 s: every
core was busy hashing. Here checks run on a dedicated ``ThreadPoolExecutor`` of ``ops.signin_workers``
threads (argon2-cffi releases the GIL while it hashes), at most ``ops.signin_queue`` wait for one, and a
sign-in past that is answered 503 at once rather than queued; one that waits longer than
``ops.signin_budget_seconds`` is answered 503 too. Before any check, the `limits` library (already the
api's rate limiter, and Redis-backed the same way when ``api.rate_limit_storage`` says so) counts
attempts per remote address and failures per account: past either, 429 with ``Retry-After``, no hashing.
"""

from __future__ import annotations

import asyncio
import math
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from limits import RateLimitItem, parse, storage, strategies

from gateway.ops.operators import Operator, authenticate
from gateway.settings import OpsSettings


class Throttled(Exception):
    """Too many attempts: try again after ``retry_after`` seconds."""

    def __init__(self, retry_after: int, why: str) -> None:
        super().__init__(why)
        self.retry_after = retry_after
        self.why = why


class Busy(Exception):
    """The password checks are saturated or took too long: try again shortly (503)."""

    retry_after = 2


@dataclass(frozen=True, slots=True)
class _Limits:
    per_address: RateLimitItem
    per_account: RateLimitItem


class SignInGate:
    """One per api process: the throttles and the password-check pool of the console's sign-in."""

    def __init__(self, ops: OpsSettings, storage_uri: str = "memory://") -> None:
        self._limits = _Limits(parse(ops.signin_rate_per_address), parse(ops.signin_failures_per_account))
        self._limiter = strategies.MovingWindowRateLimiter(storage.storage_from_string(storage_uri))
        self._pool = ThreadPoolExecutor(max_workers=ops.signin_workers, thread_name_prefix="signin")
        self._capacity = ops.signin_workers + ops.signin_queue
        self._budget = ops.signin_budget_seconds
        self._in_pool = 0

    def admit(self, address: str, username: str) -> None:
        """Count one attempt from ``address``; raise :class:`Throttled` past the address's limit or while
        ``username`` is past its limit of failures."""
        if not self._limiter.hit(self._limits.per_address, "ops-signin-address", address):
            raise Throttled(
                self._retry_after(self._limits.per_address, "ops-signin-address", address),
                "too many sign-in attempts from this address",
            )
        if not self._limiter.test(self._limits.per_account, "ops-signin-account", username):
            raise Throttled(
                self._retry_after(self._limits.per_account, "ops-signin-account", username),
                "too many failed sign-ins for this account",
            )

    def failed(self, username: str) -> None:
        """Count a failed sign-in against ``username``."""
        self._limiter.hit(self._limits.per_account, "ops-signin-account", username)

    def _retry_after(self, item: RateLimitItem, *keys: str) -> int:
        reset = self._limiter.get_window_stats(item, *keys).reset_time
        return max(1, math.ceil(reset - time.time()))

    async def check(self, accounts: dict[str, Operator], username: str, password: str) -> Operator | None:
        """The account if the password is right, else None; :class:`Busy` when the pool is full or the
        check overruns its budget (the check itself still finishes on its thread, and still counts
        against the pool until it does)."""
        if self._in_pool >= self._capacity:
            raise Busy("password checks saturated")
        self._in_pool += 1
        future = asyncio.get_running_loop().run_in_executor(
            self._pool, authenticate, accounts, username, password
        )
        future.add_done_callback(self._release)
        try:
            async with asyncio.timeout(self._budget):
                return await asyncio.shield(future)
        except TimeoutError as exc:
            raise Busy("password check over its time budget") from exc

    def _release(self, _future: asyncio.Future[Operator | None]) -> None:
        self._in_pool -= 1

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)
