"""A zeep transport over the application's aiohttp session.

zeep's own async transport needs httpx; this keeps one HTTP stack (pooling, limits, tracing) and lets
the connector add per-call headers. Only operation calls go through it: the WSDL is a vendored file
read synchronously at start-up.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import aiohttp
from multidict import CIMultiDict
from zeep.transports import Transport
from zeep.wsdl.utils import etree_to_string

from gateway.connectors.rest import read_limited, status_error


@dataclass(slots=True)
class Reply:
    """The part of ``requests.Response`` that zeep reads when it parses a reply."""

    status_code: int
    content: bytes
    headers: CIMultiDict[str]
    encoding: str | None


class AiohttpTransport(Transport):
    def __init__(
        self,
        session: aiohttp.ClientSession,
        timeout_seconds: float,
        extra_headers: Callable[[], Mapping[str, str]] = dict,
    ) -> None:
        super().__init__(operation_timeout=timeout_seconds)  # type: ignore[no-untyped-call]
        self._session = session
        self._timeout = aiohttp.ClientTimeout(total=timeout_seconds)
        self._extra_headers = extra_headers

    async def post(self, address: str, message: bytes, headers: Mapping[str, str]) -> Reply:
        async with self._session.post(
            address,
            data=message,
            headers={**headers, **self._extra_headers()},
            timeout=self._timeout,
            allow_redirects=False,
        ) as response:
            body = await read_limited(response)
            # Bodies that are not XML (a proxy's HTML 503 page) mean nothing to zeep: decide here.
            if response.status != 200 and "xml" not in response.content_type:
                raise status_error(response.status)
            return Reply(response.status, body, CIMultiDict(response.headers), response.charset)

    async def post_xml(self, address: str, envelope: Any, headers: Mapping[str, str]) -> Reply:
        message = etree_to_string(envelope)  # type: ignore[no-untyped-call]
        return await self.post(address, message, headers)

    async def get(self, address: str, params: Any, headers: Any) -> Reply:
        raise NotImplementedError("SOAP over HTTP GET is not used")

    async def aclose(self) -> None:
        """Nothing to close: the session is the application's."""
