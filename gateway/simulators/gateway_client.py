"""What a simulated client of the gateway does over HTTP: push documents, confirm what it received, and
take deliveries on a webhook of its own (de-duplicated on ``Gateway-Message-Id``, like a real one)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Coroutine
from datetime import datetime
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp import web

from gateway.domain.calendar import LOCAL_TZ
from gateway.security.keys import load_private_key
from gateway.security.tokens import issue_token

log = logging.getLogger(__name__)

Handler = Callable[[dict[str, Any]], Coroutine[Any, Any, None]]


def local_now() -> datetime:
    """Now, in Vietnam, to the second: what a partner's system stamps on ``created_at``."""
    return datetime.now(LOCAL_TZ).replace(microsecond=0)


class GatewayClient:
    """Signs in as one client (a token per request) and retries like a real client would."""

    def __init__(self, gateway_url: str, client_id: str, key_file: Path, audience: str) -> None:
        self.gateway_url = gateway_url.rstrip("/")
        self.client_id = client_id
        self._key = load_private_key(key_file.read_bytes())
        self._audience = audience

    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {issue_token(self.client_id, self._key, self._audience, ttl=300)}"}

    async def send(
        self, http: aiohttp.ClientSession, document: dict[str, Any], path: str = "/v1/documents"
    ) -> int:
        """Push ``document``; resent with the same ``message_id`` while the gateway is unreachable."""
        for attempt in range(1, 6):
            try:
                async with http.post(
                    self.gateway_url + path,
                    json=document,
                    headers=self.headers(),
                    timeout=aiohttp.ClientTimeout(total=10),
                ) as resp:
                    body = await resp.text()
                    if resp.status < 500 and resp.status != 429:
                        if resp.status not in (200, 202):
                            log.error(
                                "%s: %s refused: %s %s",
                                self.client_id,
                                document["message_type"],
                                resp.status,
                                body,
                            )
                        return resp.status
            except (aiohttp.ClientError, TimeoutError) as exc:
                log.warning("%s: push attempt %d failed: %s", self.client_id, attempt, exc)
            await asyncio.sleep(min(2**attempt, 30))
        return 0

    async def confirm(
        self,
        http: aiohttp.ClientSession,
        message_id: str,
        note: str,
        patience: float = 60,
        case_ref: str | None = None,
    ) -> int:
        """Confirm processing once the gateway has recorded the delivery (a webhook's 2xx is recorded
        just after it is answered, so the first try may find the document still ``queued``: 409)."""
        deadline = asyncio.get_running_loop().time() + patience
        status = 0
        while asyncio.get_running_loop().time() < deadline:
            try:
                async with http.post(
                    f"{self.gateway_url}/v1/messages/{message_id}/confirmation",
                    json={"note": note} | ({"case_ref": case_ref} if case_ref else {}),
                    headers=self.headers(),
                ) as resp:
                    status = resp.status
                    if status != 409 and status < 500:
                        return status
            except (aiohttp.ClientError, TimeoutError):
                pass
            await asyncio.sleep(0.2)
        return status


class WebhookInbox:
    """A webhook receiving the gateway's deliveries; each new ``message_id`` goes to ``handler`` in the
    background after the 200, so the handler may talk to the gateway about it."""

    def __init__(self, handler: Handler, path: str = "/inbox") -> None:
        self.path = path
        self.seen: dict[str, int] = {}
        self._handler = handler
        self._tasks: set[asyncio.Task[None]] = set()
        self._runner: web.AppRunner | None = None
        self.url = ""

    async def start(self, host: str = "127.0.0.1", port: int = 0) -> str:
        app = web.Application()
        app.router.add_post(self.path, self._receive)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, host, port)
        await site.start()
        real_port = int(self._runner.addresses[-1][1])
        self.url = f"http://{host}:{real_port}{self.path}"
        return self.url

    async def _receive(self, request: web.Request) -> web.Response:
        message_id = request.headers.get("Gateway-Message-Id", "")
        document = await request.json()
        self.seen[message_id] = self.seen.get(message_id, 0) + 1
        if self.seen[message_id] == 1:
            task = asyncio.create_task(self._handler(document))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
        return web.json_response({"stored": message_id})

    async def close(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        if self._runner is not None:
            await self._runner.cleanup()
