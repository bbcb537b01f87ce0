"""Loopback HTTP listeners that record what reached them: a receiver that answers 200, one that answers
302 to another listener (which must then see nothing), and a wait for a number of requests."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field

from aiohttp import web
from aiohttp.test_utils import TestServer


@dataclass
class Listener:
    """Records every request (method, path, body) to any path; answers 200, or 302 to ``redirect_to``."""

    redirect_to: str | None = None
    requests: list[tuple[str, str, bytes]] = field(default_factory=list)
    url: str = ""

    async def handle(self, request: web.Request) -> web.StreamResponse:
        self.requests.append((request.method, request.path, await request.read()))
        if self.redirect_to is not None:
            raise web.HTTPFound(self.redirect_to)
        return web.json_response({"stored": True})

    async def wait_for(self, count: int, timeout: float = 30) -> None:
        """Until ``count`` requests have arrived."""
        deadline = asyncio.get_running_loop().time() + timeout
        while len(self.requests) < count:
            assert asyncio.get_running_loop().time() < deadline, f"{len(self.requests)} of {count} requests"
            await asyncio.sleep(0.05)


@asynccontextmanager
async def listening(redirect_to: str | None = None) -> AsyncIterator[Listener]:
    """A :class:`Listener` on 127.0.0.1 (``listener.url`` is its base URL, without a trailing slash)."""
    listener = Listener(redirect_to)
    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", listener.handle)
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    listener.url = str(server.make_url("")).rstrip("/")
    try:
        yield listener
    finally:
        await server.close()
