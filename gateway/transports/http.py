"""The one HTTP exchange every transport makes: no redirects, a bounded body, the session's pool."""

from __future__ import annotations

import ssl
from collections.abc import Mapping
from typing import Final

import aiohttp
from multidict import CIMultiDict

from gateway.connectors.base import ConnectorError
from gateway.transports.base import Reply

# Partners answer a few kilobytes; a runaway body must not fill the worker's memory.
MAX_BODY_BYTES: Final = 4 * 1024 * 1024


async def read_limited(response: aiohttp.ClientResponse) -> bytes:
    body = bytearray()
    async for chunk in response.content.iter_chunked(64 * 1024):
        body += chunk
        if len(body) > MAX_BODY_BYTES:
            raise ConnectorError(f"answer larger than {MAX_BODY_BYTES} bytes", retryable=False)
    return bytes(body)


async def exchange(
    session: aiohttp.ClientSession,
    method: str,
    url: str,
    body: bytes,
    headers: Mapping[str, str],
    timeout_seconds: float,
    ssl_context: ssl.SSLContext | None = None,
) -> Reply:
    """Send and read the whole answer (any status). Timeouts and connection failures propagate, except a
    connection closed under mutual TLS, which is reported as what it most likely is."""
    try:
        async with session.request(
            method,
            url,
            data=body,
            headers=dict(headers),
            timeout=aiohttp.ClientTimeout(total=timeout_seconds),
            # A redirected call would resend the subject to a host nobody configured.
            allow_redirects=False,
            ssl=ssl_context if ssl_context is not None else True,
        ) as response:
            data = await read_limited(response)
            return Reply(
                response.status, CIMultiDict(response.headers), data, response.content_type, response.charset
            )
    except (aiohttp.ServerDisconnectedError, aiohttp.ClientOSError) as exc:
        if ssl_context is None or isinstance(exc, aiohttp.ClientConnectorError):
            raise
        # Under TLS 1.3 a server that refuses our client certificate says so in an alert that usually
        # arrives after the request was written: what the client sees is a reset or a closed connection.
        raise ConnectorError(
            "TLS: the connection was closed after the handshake"
            " (a refused client certificate looks like this)",
            retryable=True,
        ) from exc
