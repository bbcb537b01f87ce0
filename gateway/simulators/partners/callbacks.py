"""What a simulated partner sends the gateway on its own: late lookup answers (an asynchronous bank's
callback) and answer documents pushed to ``POST /v1/documents`` (a late report, a police answer, a
notice's delivery statuses).

Each call is signed as the partner's gateway client (a JWT with its own key) and retried the way a real
partner's outbound queue would: with back-off, doubling from :data:`FIRST_RETRY` up to
:data:`MAX_RETRY` or the gateway's ``Retry-After``, for up to :data:`GIVE_UP_AFTER` seconds. A gateway
that is throttling or briefly busy is a reason to wait, not to drop an answer.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncIterator, Callable, Sequence
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp import web

from gateway.security.keys import PrivateKey, generate_keypair, load_private_key
from gateway.security.tokens import issue_token

log = logging.getLogger(__name__)

FIRST_RETRY = 0.5
MAX_RETRY = 5.0
GIVE_UP_AFTER = 300.0
DEFAULT_GATEWAY_URL = "http://127.0.0.1:8080"


def signing_key(path: Path | None, who: str) -> PrivateKey:
    """The partner's private key (PEM) whose public half the gateway knows for its client; without one an
    ephemeral key: the calls are still made, but a gateway that checks tokens refuses them."""
    if path is not None:
        return load_private_key(path.read_bytes())
    log.warning("no key for %s: its calls to the gateway are signed with an ephemeral key", who)
    return generate_keypair()


class Callbacks:
    """Calls to the gateway in flight: one task each, cancelled if the server stops before they are made.

    Install :meth:`context` in the application's ``cleanup_ctx``: it holds the HTTP session.
    """

    def __init__(self, key: PrivateKey, audience: str, delay: float) -> None:
        self._key = key
        self._audience = audience
        self._delay = delay
        self._tasks: set[asyncio.Task[None]] = set()
        self._session: aiohttp.ClientSession | None = None
        self.delivered = 0

    def schedule(
        self, sender: str, url: str, ref: str, body: Callable[[], dict[str, Any]]
    ) -> asyncio.Task[None]:
        """POST ``body()`` (built afresh per attempt) to ``url`` after the delay, as client ``sender``;
        retry transient refusals."""
        return self._track(self._deliver(sender, url, ref, body))

    def push(self, sender: str, url: str, documents: Sequence[dict[str, Any]]) -> asyncio.Task[None]:
        """POST each of ``documents`` to ``url``, one after the other (each after the delay, once the one
        before is delivered or given up): a notice is read after it was delivered."""

        async def one_by_one() -> None:
            for document in documents:
                await self._deliver(sender, url, str(document["message_id"]), _constant(document))

        return self._track(one_by_one())

    def _track(self, work: Any) -> asyncio.Task[None]:
        task = asyncio.get_running_loop().create_task(work)
        self._tasks.add(task)  # the loop keeps only weak references to tasks
        task.add_done_callback(self._tasks.discard)
        return task

    async def _deliver(
        self, sender: str, url: str, ref: str, make_body: Callable[[], dict[str, Any]]
    ) -> None:
        await asyncio.sleep(self._delay)
        session = self._session
        if session is None:
            return
        loop = asyncio.get_running_loop()
        give_up_at = loop.time() + GIVE_UP_AFTER
        pause = FIRST_RETRY
        attempt = 0
        while True:
            attempt += 1
            token = issue_token(sender, self._key, self._audience, ttl=300)
            headers = {"Authorization": f"Bearer {token}", "X-Request-Ref": ref}
            body = make_body()
            wait = pause
            try:
                async with session.post(
                    url,
                    data=json.dumps(body, ensure_ascii=False),
                    headers=headers | {"Content-Type": "application/json"},
                ) as resp:
                    if resp.status < 300:
                        self.delivered += 1
                        return
                    if resp.status < 500 and resp.status not in (408, 429):
                        log.error("%s callback to %s refused: HTTP %s", sender, url, resp.status)
                        return
                    wait = _retry_after(resp.headers.get("Retry-After"), pause)
                    log.warning("%s callback attempt %d: HTTP %s", sender, attempt, resp.status)
            except (aiohttp.ClientError, TimeoutError) as exc:
                log.warning("%s callback attempt %d failed: %s", sender, attempt, exc or type(exc).__name__)
            if loop.time() + wait > give_up_at:
                log.error("%s gave up calling back %s for %s after %d attempts", sender, url, ref, attempt)
                return
            await asyncio.sleep(wait)
            pause = min(pause * 2, MAX_RETRY)

    async def context(self, _app: web.Application) -> AsyncIterator[None]:
        self._session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10))
        try:
            yield
        finally:
            for task in list(self._tasks):
                task.cancel()
            await asyncio.gather(*self._tasks, return_exceptions=True)
            await self._session.close()
            self._session = None


def _constant(body: dict[str, Any]) -> Callable[[], dict[str, Any]]:
    return lambda: body


def _retry_after(value: str | None, default: float) -> float:
    """The gateway's ``Retry-After`` in seconds (bounded), else ``default``."""
    try:
        seconds = float(value) if value else default
    except ValueError:
        return default
    return min(max(seconds, 0.1), 30.0)
