"""A simulated X-Road security server: the consumer's and the provider's in one process, no signatures.

The gateway reaches partners through it (``transport = "xroad"``), and a court can reach the gateway
through it: services are mapped to any HTTP base URL, so the forwarding is the same both ways.

- ``services``: service id (``INSTANCE/CLASS/MEMBER/SUBSYSTEM/SERVICECODE``) or a whole subsystem
  (``INSTANCE/CLASS/MEMBER/SUBSYSTEM``) → the backend's base URL. A REST call
  ``{method} /r1/{service id}{path}`` goes to ``{base}{path}`` (query kept); a SOAP envelope POSTed to
  ``/`` goes whole to the base URL of its ``service`` header (its service id, else its subsystem).
- ``access``: client id (``INSTANCE/CLASS/MEMBER/SUBSYSTEM``) → the service ids or subsystems it may
  call. Anything else is refused with ``Server.ServerProxy.AccessDenied`` — deny by default.
- ``backend_headers``: per service id or subsystem, headers added towards the backend. The provider side
  of X-Road authenticates to its backend by its own means (network, TLS); the partner simulators
  want a bearer token, which stands in for that here.

REST (PR-REST): the X-Road-Client, -Id (made up when missing), -UserId and -Issue headers and the other
user headers reach the backend with X-Road-Service and X-Road-Request-Id; the backend's status, headers
and body come back unchanged, with X-Road-Id, -Client, -Service, -Request-Id and -Request-Hash
(:func:`gateway.transports.xroad.rest_request_hash`, the form the gateway checks). The security
server's own failures are ``X-Road-Error: <type>`` with a JSON ``{type, message, detail}`` body,
``500`` for ``Server.*`` and ``400`` for ``Client.*`` (PR-REST 4.6: X-Road reports a refused access as
a server-side error, not with 403).

SOAP (PR-MESS 4.0): only Content-Type and SOAPAction reach the backend. The backend's answer gets the
request's X-Road headers copied into its Header, in order (a partner simulator does not know X-Road),
and ``requestHash`` (SHA-512 of the request bytes as received); the backend's own faults pass unchanged.
The security server's failures are faults with an unqualified code (``Server.ServerProxy.…``) and a
``faultDetail``.

Fault switches, at runtime as attributes or ``POST /_sim/faults {"error": true}`` (``GET`` shows them):
``error`` answers every call with ``Server.ServerProxy.ServiceFailed``; ``wrong_hash`` sends a request
hash of other bytes; ``no_echo`` leaves out the echoed X-Road-Id and X-Road-Client (SOAP: the echoed
headers).

``python -m gateway.simulators.xroad --service ID=URL --allow CLIENT=ID`` runs one on its own.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import copy
import json
import logging
import ssl
import uuid
from collections.abc import AsyncIterator, Iterable, Mapping, Sequence
from typing import Any, Final
from urllib.parse import unquote

import aiohttp
from aiohttp import web
from lxml import etree
from multidict import CIMultiDict

from gateway.soap import SOAP_ENV, XROAD_NS
from gateway.soap.xml_safety import XmlRejected, parse_untrusted
from gateway.soap.xroad_header import IDENTIFIERS_NS
from gateway.transports.xroad import (
    H_CLIENT,
    H_ERROR,
    H_ID,
    H_REQUEST_HASH,
    H_REQUEST_ID,
    H_SERVICE,
    REST_PREFIX,
    SHA512_URI,
    rest_request_hash,
    soap_request_hash,
)

log = logging.getLogger(__name__)

FAULTS_PATH: Final = "/_sim/faults"
#: Largest request or backend answer handled (a real security server has such a setting too).
MAX_BYTES: Final = 8 * 1024 * 1024
XML_TYPE: Final = "text/xml; charset=utf-8"
JSON_TYPE: Final = "application/json; charset=utf-8"
# Never passed on (PR-REST 4.3, "Filtered headers"), besides what aiohttp sets itself.
_HOP_BY_HOP: Final = frozenset(
    {
        "connection",
        "keep-alive",
        "proxy-authenticate",
        "proxy-authorization",
        "te",
        "trailer",
        "transfer-encoding",
        "upgrade",
        "host",
        "user-agent",
        "server",
        "content-length",
        "date",
        "expect",
    }
)
_IDENTIFIER_PARTS: Final = ("xRoadInstance", "memberClass", "memberCode", "subsystemCode")


class XRoadFailure(Exception):
    """The security server's own failure: ``error_type`` as X-Road names it."""

    def __init__(self, error_type: str, message: str) -> None:
        super().__init__(message)
        self.error_type = error_type


class SecurityServerSim:
    def __init__(
        self,
        services: Mapping[str, str],
        access: Mapping[str, Iterable[str]],
        *,
        backend_headers: Mapping[str, Mapping[str, str]] | None = None,
        timeout_seconds: float = 30.0,
    ) -> None:
        self.services = {key: url.rstrip("/") for key, url in services.items()}
        self.access = {client: frozenset(ids) for client, ids in access.items()}
        self.backend_headers = {key: dict(value) for key, value in (backend_headers or {}).items()}
        self.timeout_seconds = timeout_seconds
        #: Fault injection (see the module's docstring).
        self.error = False
        self.wrong_hash = False
        self.no_echo = False
        self._runner: web.AppRunner | None = None
        self.url = ""

    # -- life cycle -------------------------------------------------------------------------------------

    def app(self) -> web.Application:
        """The security server as an aiohttp application (its backend session lives with the app)."""
        app = web.Application(client_max_size=MAX_BYTES)
        session_key = web.AppKey("backend_session", aiohttp.ClientSession)

        async def backend_session(app: web.Application) -> AsyncIterator[None]:
            # Bodies pass verbatim: a compressed answer stays compressed, with its Content-Encoding.
            async with aiohttp.ClientSession(auto_decompress=False) as session:
                app[session_key] = session
                yield

        app.cleanup_ctx.append(backend_session)

        async def rest(request: web.Request) -> web.StreamResponse:
            return await self._rest(request, request.app[session_key])

        async def soap(request: web.Request) -> web.StreamResponse:
            return await self._soap(request, request.app[session_key])

        app.router.add_route("*", REST_PREFIX + "{tail:.*}", rest)
        app.router.add_post("/", soap)
        app.router.add_get(FAULTS_PATH, self._show_faults)
        app.router.add_post(FAULTS_PATH, self._set_faults)
        return app

    async def start(
        self, host: str = "127.0.0.1", port: int = 0, ssl_context: ssl.SSLContext | None = None
    ) -> str:
        """Listen on ``host:port`` (0: any free port); returns the URL to configure as security_server."""
        runner = web.AppRunner(self.app(), handler_cancellation=True, shutdown_timeout=1.0)
        await runner.setup()
        site = web.TCPSite(runner, host, port, ssl_context=ssl_context)
        try:
            await site.start()
        except BaseException:
            await runner.cleanup()
            raise
        self._runner = runner
        bound = int(runner.addresses[-1][1])
        self.url = f"{'https' if ssl_context else 'http'}://{host}:{bound}"
        log.info("X-Road security server simulator on %s", self.url)
        return self.url

    async def close(self) -> None:
        if self._runner is not None:
            runner, self._runner = self._runner, None
            await runner.cleanup()

    # -- routing and access -----------------------------------------------------------------------------

    def _lookup(self, table: Mapping[str, Any], service_id: str) -> Any:
        subsystem = service_id.rsplit("/", 1)[0]
        return table.get(service_id, table.get(subsystem))

    def allowed(self, client: str, service_id: str) -> bool:
        rights = self.access.get(client, frozenset())
        return service_id in rights or service_id.rsplit("/", 1)[0] in rights

    def _route(self, client: str, service_id: str) -> tuple[str, dict[str, str]]:
        """The backend base URL and extra headers for a call; raises :class:`XRoadFailure`."""
        if self.error:
            raise XRoadFailure("Server.ServerProxy.ServiceFailed", "the service failed (simulated)")
        base = self._lookup(self.services, service_id)
        if base is None:
            raise XRoadFailure("Server.ServerProxy.UnknownService", f"unknown service {service_id}")
        if not self.allowed(client, service_id):
            raise XRoadFailure(
                "Server.ServerProxy.AccessDenied",
                f"request not allowed: {client} has no access right to {service_id}",
            )
        return base, dict(self._lookup(self.backend_headers, service_id) or {})

    async def _forward(
        self,
        session: aiohttp.ClientSession,
        method: str,
        url: str,
        body: bytes,
        headers: Mapping[str, str],
    ) -> tuple[int, CIMultiDict[str], bytes]:
        try:
            async with session.request(
                method,
                url,
                data=body,
                headers=dict(headers),
                allow_redirects=False,  # PR-REST 4.4: redirects go back to the client as they are
                timeout=aiohttp.ClientTimeout(total=self.timeout_seconds),
            ) as response:
                data = bytearray()
                async for chunk in response.content.iter_chunked(64 * 1024):
                    data += chunk
                    if len(data) > MAX_BYTES:
                        raise XRoadFailure("Server.ServerProxy.ServiceFailed", "the answer is too large")
                return response.status, CIMultiDict(response.headers), bytes(data)
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise XRoadFailure(
                "Server.ServerProxy.NetworkError", f"the service did not answer ({type(exc).__name__})"
            ) from None

    # -- REST -------------------------------------------------------------------------------------------

    async def _rest(self, request: web.Request, session: aiohttp.ClientSession) -> web.StreamResponse:
        try:
            return await self._rest_call(request, session)
        except XRoadFailure as exc:
            return rest_error(exc.error_type, str(exc))

    async def _rest_call(self, request: web.Request, session: aiohttp.ClientSession) -> web.StreamResponse:
        target = request.raw_path.removeprefix(REST_PREFIX)
        path, mark, query = target.partition("?")
        segments = path.split("/")
        if len(segments) < 5 or not all(segments[:5]):
            raise XRoadFailure("Client.BadRequest", "the request target is not /r1/{serviceId}[/path]")
        service_id = "/".join(unquote(part) for part in segments[:5])
        rest_path = ("/" + "/".join(segments[5:]) if len(segments) > 5 else "") + (mark + query)
        client_header = request.headers.get(H_CLIENT, "")
        client_parts = client_header.split("/")
        if len(client_parts) not in (3, 4) or not all(client_parts):
            raise XRoadFailure("Client.BadRequest", "X-Road-Client must name the client")
        client = "/".join(unquote(part) for part in client_parts)
        base, extra = self._route(client, service_id)
        x_road_id = request.headers.get(H_ID) or str(uuid.uuid4())
        request_id = str(uuid.uuid4())
        body = await request.read()

        headers = CIMultiDict(
            (name, value)
            for name, value in request.headers.items()
            if name.lower() not in _HOP_BY_HOP and name.lower() != H_REQUEST_HASH.lower()
        )
        headers[H_ID] = x_road_id
        headers[H_SERVICE] = service_id
        headers[H_REQUEST_ID] = request_id
        headers.update(extra)
        status, answer_headers, answer = await self._forward(
            session, request.method, base + rest_path, body, headers
        )

        out = CIMultiDict(
            (name, value)
            for name, value in answer_headers.items()
            # The provider security server sets the X-Road headers; a backend's own are overwritten.
            if name.lower() not in _HOP_BY_HOP and not name.lower().startswith("x-road-")
        )
        out[H_SERVICE] = service_id
        out[H_REQUEST_ID] = request_id
        if not self.no_echo:
            out[H_ID] = x_road_id
            out[H_CLIENT] = client_header
        hashed = body + b"\0" if self.wrong_hash else body
        out[H_REQUEST_HASH] = rest_request_hash(request.method, target, x_road_id, client_header, hashed)
        return web.Response(status=status, body=answer, headers=out)

    # -- SOAP -------------------------------------------------------------------------------------------

    async def _soap(self, request: web.Request, session: aiohttp.ClientSession) -> web.StreamResponse:
        try:
            return await self._soap_call(request, session)
        except XRoadFailure as exc:
            return soap_fault(exc.error_type, str(exc))

    async def _soap_call(self, request: web.Request, session: aiohttp.ClientSession) -> web.StreamResponse:
        body = await request.read()
        try:
            root = parse_untrusted(body)
        except XmlRejected as exc:
            raise XRoadFailure(
                "Client.InvalidSoap", f"the request is not acceptable XML ({exc.reason})"
            ) from None
        header = _child(root, "Header")
        fields = [] if header is None else _xroad_fields(header)
        named = {etree.QName(field).localname: field for field in fields}
        missing = [name for name in ("client", "service", "id", "protocolVersion") if name not in named]
        if missing:
            raise XRoadFailure("Client.MissingHeaderField", f"missing header fields: {', '.join(missing)}")
        if not (named["protocolVersion"].text or "").strip().startswith("4."):
            raise XRoadFailure("Client.InvalidProtocolVersion", "protocolVersion must be 4.x")
        client = "/".join(_identifier_parts(named["client"]))
        service = named["service"]
        code = (service.findtext(f"{{{IDENTIFIERS_NS}}}serviceCode") or "").strip()
        service_id = "/".join([*_identifier_parts(service), code])
        base, extra = self._route(client, service_id)

        headers = {
            name: value
            for name, value in request.headers.items()
            # PR-MESS 2.2: only these two reach the service.
            if name.lower() in ("content-type", "soapaction")
        }
        headers.update(extra)
        status, answer_headers, answer = await self._forward(session, "POST", base, body, headers)
        content_type = answer_headers.get("Content-Type", XML_TYPE)
        try:
            response = parse_untrusted(answer)
        except XmlRejected:
            raise XRoadFailure(
                "Server.ServerProxy.ServiceFailed", "the service's answer is not XML"
            ) from None
        answer_body = _child(response, "Body")
        if answer_body is not None and _child(answer_body, "Fault") is not None:
            # The service's own fault goes back as it is.
            return web.Response(status=status, body=answer, headers={"Content-Type": content_type})
        out_header = _child(response, "Header")
        if out_header is None:
            out_header = etree.Element(f"{{{etree.QName(response).namespace or SOAP_ENV}}}Header")
            response.insert(0, out_header)
        for field in _xroad_fields(out_header):  # the service must not set them; ours replace its own
            out_header.remove(field)
        echoed = [] if self.no_echo else [copy.deepcopy(field) for field in fields]
        request_hash = etree.Element(f"{{{XROAD_NS}}}requestHash", algorithmId=SHA512_URI)
        request_hash.text = soap_request_hash(body + b"\0" if self.wrong_hash else body)
        for index, field in enumerate([*echoed, request_hash]):
            out_header.insert(index, field)
        serialised = etree.tostring(response, xml_declaration=True, encoding="UTF-8")
        return web.Response(status=status, body=serialised, headers={"Content-Type": content_type})

    # -- switches ---------------------------------------------------------------------------------------

    def faults(self) -> dict[str, bool]:
        return {"error": self.error, "wrong_hash": self.wrong_hash, "no_echo": self.no_echo}

    async def _show_faults(self, request: web.Request) -> web.Response:
        return web.json_response(self.faults())

    async def _set_faults(self, request: web.Request) -> web.Response:
        try:
            data = await request.json()
        except ValueError:
            data = None
        if not isinstance(data, dict) or not all(
            key in self.faults() and isinstance(value, bool) for key, value in data.items()
        ):
            return web.json_response(
                {"error": "a JSON object of booleans among " + ", ".join(self.faults())}, status=400
            )
        for key, value in data.items():
            setattr(self, key, value)
        log.info("X-Road simulator faults: %s", self.faults())
        return web.json_response(self.faults())


# -- the security server's own answers ------------------------------------------------------------------


def rest_error(error_type: str, message: str) -> web.Response:
    """PR-REST 4.6: ``X-Road-Error`` and ``{type, message, detail}``; 400 for the client's fault."""
    status = 400 if error_type.startswith("Client.") else 500
    body = {"type": error_type, "message": message, "detail": str(uuid.uuid4())}
    return web.Response(
        status=status,
        body=json.dumps(body).encode(),
        headers={"Content-Type": JSON_TYPE, H_ERROR: error_type},
    )


def soap_fault(error_type: str, message: str) -> web.Response:
    """An X-Road SOAP fault (PR-MESS annex D): an unqualified code and a ``faultDetail``."""
    root = etree.Element(f"{{{SOAP_ENV}}}Envelope", nsmap={"SOAP-ENV": SOAP_ENV})
    fault = etree.SubElement(etree.SubElement(root, f"{{{SOAP_ENV}}}Body"), f"{{{SOAP_ENV}}}Fault")
    etree.SubElement(fault, "faultcode").text = error_type
    etree.SubElement(fault, "faultstring").text = message
    etree.SubElement(fault, "faultactor").text = ""
    etree.SubElement(etree.SubElement(fault, "detail"), "faultDetail").text = str(uuid.uuid4())
    body = etree.tostring(root, xml_declaration=True, encoding="UTF-8")
    return web.Response(status=500, body=body, headers={"Content-Type": XML_TYPE})


def _elements(parent: Any) -> list[Any]:
    return [child for child in parent if isinstance(child.tag, str)]


def _child(parent: Any, name: str) -> Any:
    for child in _elements(parent):
        if child.tag == f"{{{SOAP_ENV}}}{name}":
            return child
    return None


def _xroad_fields(header: Any) -> list[Any]:
    return [
        field
        for field in _elements(header)
        if etree.QName(field).namespace == XROAD_NS and etree.QName(field).localname != "requestHash"
    ]


def _identifier_parts(element: Any) -> list[str]:
    return [
        (element.findtext(f"{{{IDENTIFIERS_NS}}}{part}") or "").strip()
        for part in _IDENTIFIER_PARTS
        if element.find(f"{{{IDENTIFIERS_NS}}}{part}") is not None
    ]


# -- on its own -----------------------------------------------------------------------------------------


def _pairs(values: Sequence[str] | None, what: str) -> list[tuple[str, str]]:
    pairs = []
    for value in values or ():
        key, sep, rest = value.partition("=")
        if not sep or not key or not rest:
            raise SystemExit(f"{what}: expected KEY=VALUE, not {value!r}")
        pairs.append((key, rest))
    return pairs


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description="A simulated X-Road security server.")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=9110)
    parser.add_argument("--service", action="append", help="SERVICE_ID_OR_SUBSYSTEM=BASE_URL (repeat)")
    parser.add_argument("--allow", action="append", help="CLIENT_ID=SERVICE_ID_OR_SUBSYSTEM (repeat)")
    parser.add_argument(
        "--backend-header", action="append", help="SERVICE_ID_OR_SUBSYSTEM=Name: value (repeat)"
    )
    return parser.parse_args(argv)


def from_args(args: argparse.Namespace) -> SecurityServerSim:
    access: dict[str, set[str]] = {}
    for client, service in _pairs(args.allow, "--allow"):
        access.setdefault(client, set()).add(service)
    backend_headers: dict[str, dict[str, str]] = {}
    for service, header in _pairs(args.backend_header, "--backend-header"):
        name, sep, value = header.partition(":")
        if not sep:
            raise SystemExit(f"--backend-header: expected Name: value, not {header!r}")
        backend_headers.setdefault(service, {})[name.strip()] = value.strip()
    return SecurityServerSim(dict(_pairs(args.service, "--service")), access, backend_headers=backend_headers)


async def serve(sim: SecurityServerSim, host: str, port: int) -> None:
    """Run ``sim`` until cancelled."""
    await sim.start(host, port)
    try:
        await asyncio.Event().wait()
    finally:
        await sim.close()


def main(argv: Sequence[str] | None = None) -> None:
    args = parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    with contextlib.suppress(KeyboardInterrupt):  # Ctrl-C is how it is stopped
        asyncio.run(serve(from_args(args), args.host, args.port))


if __name__ == "__main__":
    main()
