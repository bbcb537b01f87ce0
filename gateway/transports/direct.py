"""``direct``: the call goes to the partner's own endpoint, with the partner's bearer token."""

from __future__ import annotations

import ssl
from collections.abc import Callable

import aiohttp

from gateway.transports.base import Call, Reply, TransportKind
from gateway.transports.http import exchange


class DirectTransport:
    kind: TransportKind = "direct"

    def __init__(
        self,
        endpoint: str,
        session: aiohttp.ClientSession,
        ssl_context: ssl.SSLContext | None = None,
        token: Callable[[], str | None] = lambda: None,
    ) -> None:
        self._base = endpoint.rstrip("/")
        self._session = session
        self._ssl = ssl_context
        self._token = token

    async def send(self, call: Call, timeout_seconds: float) -> Reply:
        headers = dict(call.headers)
        token = self._token()  # read per call: a rotated secret takes effect without a restart
        if token:
            headers["Authorization"] = f"Bearer {token}"
        url = self._base + call.path
        return await exchange(self._session, call.method, url, call.body, headers, timeout_seconds, self._ssl)

    async def close(self) -> None:
        """Nothing to release: the session is the application's."""
