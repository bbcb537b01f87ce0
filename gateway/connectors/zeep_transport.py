"""A zeep transport over the partner's transport (gateway/transports/: direct, X-Road, LGSP).

zeep's own async transport needs httpx; this keeps one HTTP stack (pooling, limits, tracing), lets the
connector add per-call headers, and lets the partner's transport decide where the envelope goes (the
address in the WSDL is not used). Only operation calls go through it: the WSDL is a vendored file read
synchronously at start-up.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from multidict import CIMultiDict
from zeep.transports import Transport
from zeep.wsdl.utils import etree_to_string

from gateway.connectors.rest import status_error
from gateway.transports.base import Call
from gateway.transports.base import Transport as PartnerTransport


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
        transport: PartnerTransport,
        timeout_seconds: float,
        extra_headers: Callable[[], Mapping[str, str]] = dict,
    ) -> None:
        super().__init__(operation_timeout=timeout_seconds)  # type: ignore[no-untyped-call]
        self.partner_transport = transport
        self._timeout_seconds = timeout_seconds
        self._extra_headers = extra_headers

    async def post(self, address: str, message: bytes, headers: Mapping[str, str]) -> Reply:
        action = str(headers.get("SOAPAction", "")).strip('"')
        call = Call(
            "POST",
            "",
            message,
            {**headers, **self._extra_headers()},
            soap=True,
            operation=re.split(r"[#/:]", action)[-1],  # urn:…#QueryLandRights
        )
        reply = await self.partner_transport.send(call, self._timeout_seconds)
        # Bodies that are not XML (a proxy's HTML 503 page) mean nothing to zeep: decide here.
        if reply.status != 200 and "xml" not in reply.content_type:
            raise status_error(reply.status)
        return Reply(reply.status, reply.body, CIMultiDict(reply.headers), reply.charset)

    async def post_xml(self, address: str, envelope: Any, headers: Mapping[str, str]) -> Reply:
        message = etree_to_string(envelope)  # type: ignore[no-untyped-call]
        return await self.post(address, message, headers)

    async def get(self, address: str, params: Any, headers: Any) -> Reply:
        raise NotImplementedError("SOAP over HTTP GET is not used")

    async def aclose(self) -> None:
        await self.partner_transport.close()
