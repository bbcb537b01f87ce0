"""``xroad``: the call goes through the gateway's own X-Road security server (VDXP) to the partner's
subsystem; the security server says who the caller is and brings back the request hash as evidence.

REST (X-Road Message Protocol for REST, r1)::

    {method} {security_server}/r1/{partner subsystem}/{service_code}{call.path}
    X-Road-Client: {platform.client}      X-Road-Id: {message id}
    X-Road-UserId: {officer} (if known)    X-Road-Issue: {case} (if known)

The answer must carry no ``X-Road-Error`` (else a :class:`PlatformError` naming the error type, never the
body), must echo ``X-Road-Id`` and ``X-Road-Client`` and name the service (``X-Road-Service``), and must
carry an ``X-Road-Request-Hash``. Real security servers compute that hash over the request as *they*
signed it (SHA-512 over their own serialisation of headers and body, PR-REST 4.3); the consumer security
server verifies it, and the gateway cannot recompute it from outside. So the platform setting
``rest_request_hash`` says what the gateway does with it:

- ``verify`` (default): recompute :func:`rest_request_hash` — the form the simulated security server
  (gateway/simulators/xroad.py) uses — and refuse an answer whose hash differs or is missing;
- ``record``: require it and keep it as evidence; its check is the consumer security server's.

SOAP (X-Road Message Protocol v4.0): the connector's envelope gets the ``client``, ``service``, ``id``,
``userId``, ``issue`` and ``protocolVersion`` headers and is POSTed to the security server's root. The
answer must echo them in order and carry ``requestHash``: base64 of the hash (``algorithmId``, SHA-512
when absent) of the exact bytes sent, which the gateway does recompute (the SOAP spec defines it over
those bytes). An X-Road fault is a :class:`PlatformError`; the partner's own faults reach the connector
unchanged. The X-Road headers are removed before zeep reads the answer.

Either way, once the answer checked out, :func:`~gateway.transports.context.record_evidence` keeps what
the platform proved (who asked, which service, the message id and the request hash).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import re
import ssl
import uuid
from collections.abc import Mapping
from typing import Any, Final
from urllib.parse import quote, unquote

import aiohttp
from lxml import etree
from multidict import CIMultiDict
from yarl import URL

from gateway.connectors.base import ConnectorError
from gateway.partners import Partner, XRoadPlatform
from gateway.soap import SOAP12_ENV, SOAP_ENV, XROAD_NS
from gateway.soap.xml_safety import XmlRejected, parse_untrusted
from gateway.soap.xroad_header import IDENTIFIERS_NS
from gateway.transports.base import Call, PlatformError, Reply, TransportKind
from gateway.transports.context import current, record_evidence
from gateway.transports.http import exchange

#: The protocol version prefix of every REST call.
REST_PREFIX: Final = "/r1/"

#: Headers the security servers set; a connector never chooses them.
H_CLIENT: Final = "X-Road-Client"
H_SERVICE: Final = "X-Road-Service"
H_ID: Final = "X-Road-Id"
H_USER: Final = "X-Road-UserId"
H_ISSUE: Final = "X-Road-Issue"
H_ERROR: Final = "X-Road-Error"
H_REQUEST_HASH: Final = "X-Road-Request-Hash"
H_REQUEST_ID: Final = "X-Road-Request-Id"

#: requestHash/@algorithmId (XML-DSIG URIs) -> hashlib name. SHA-1 is not accepted: a proof built on it
#: proves little.
HASH_ALGORITHMS: Final[dict[str, str]] = {
    "http://www.w3.org/2001/04/xmlenc#sha512": "sha512",
    "http://www.w3.org/2001/04/xmldsig-more#sha384": "sha384",
    "http://www.w3.org/2001/04/xmlenc#sha256": "sha256",
}
SHA512_URI: Final = "http://www.w3.org/2001/04/xmlenc#sha512"
_DISPLAY: Final = {"sha512": "SHA-512", "sha384": "SHA-384", "sha256": "SHA-256"}

#: The leading line of :func:`rest_request_hash`'s canonical form: a later form gets another.
REST_HASH_FORM: Final = "gateway-xroad-rest-request-hash/1"

NOT_ECHOED: Final = "X-Road: headers not echoed"
HASH_MISMATCH: Final = "X-Road: request hash does not match"
# An X-Road error type as the security servers spell them (Server.ServerProxy.AccessDenied): anything
# else is not repeated in a reason.
_ERROR_TYPE = re.compile(r"^[A-Za-z][A-Za-z0-9_]*(\.[A-Za-z0-9_]+)*$")
_PARTS = ("xRoadInstance", "memberClass", "memberCode", "subsystemCode")


def rest_request_hash(method: str, service_path: str, x_road_id: str, client: str, body: bytes) -> str:
    """The request hash the gateway and its simulated security server agree on for a REST call.

    base64(SHA-512(UTF-8 of these lines joined by ``\\n``)): :data:`REST_HASH_FORM`, the method in capitals,
    the request target after ``/r1/`` exactly as sent (service id, path, query; still percent-encoded),
    the ``X-Road-Id``, the ``X-Road-Client`` header as sent, and the lowercase hex SHA-512 of the body
    (of nothing when there is none). It ties an answer to this method, service, path, message, caller
    and body; it is not what a real security server computes (see the module's docstring)."""
    lines = (
        REST_HASH_FORM,
        method.upper(),
        service_path,
        x_road_id,
        client,
        hashlib.sha512(body).hexdigest(),
    )
    digest = hashlib.sha512("\n".join(lines).encode("utf-8")).digest()
    return base64.b64encode(digest).decode("ascii")


def soap_request_hash(message: bytes, algorithm: str = "sha512") -> str:
    """base64 of the hash of the SOAP request's bytes, as X-Road's ``requestHash`` carries it."""
    return base64.b64encode(hashlib.new(algorithm, message).digest()).decode("ascii")


def encoded_identifier(identifier: str) -> str:
    """``INSTANCE/CLASS/MEMBER/SUBSYSTEM[/SERVICE]`` with each part percent-encoded (PR-REST 4.2)."""
    return "/".join(quote(part, safe="") for part in identifier.split("/"))


def xroad_error(error_type: str) -> PlatformError:
    """The failure for an X-Road error type (REST ``X-Road-Error``, a SOAP fault's code).

    Access refused, an unknown service or member, and the client's own mistakes (``Client.*``) stay as
    they are however often the call is repeated; anything else (the provider's security server could not
    reach the service, a database or network error) is worth another attempt."""
    shown = error_type if _ERROR_TYPE.fullmatch(error_type) and len(error_type) <= 120 else "error"
    lasting = shown.startswith("Client.") or any(
        marker in shown for marker in (".AccessDenied", ".UnknownService", ".UnknownMember")
    )
    return PlatformError(f"X-Road: {shown}", retryable=not lasting)


class XRoadTransport:
    kind: TransportKind = "xroad"

    def __init__(
        self,
        partner: Partner,
        platform: XRoadPlatform,
        session: aiohttp.ClientSession,
        ssl_context: ssl.SSLContext | None = None,
    ) -> None:
        route = partner.xroad
        if route is None:
            raise ValueError('transport = "xroad" needs xroad = { subsystem = "…", service_code = "…" }')
        if partner.protocol == "rest":
            if not route.service_code:
                raise ValueError("a REST partner reached through X-Road needs xroad.service_code")
            if route.service_version:
                # PR-REST 4.1: a REST service id has no version part; an API's version is in its path.
                raise ValueError(
                    "xroad.service_version is for SOAP services; a REST service's version belongs in its path"
                )
        self._partner = partner
        self._route = route
        self._platform = platform
        self._session = session
        self._ssl = ssl_context
        self._root = platform.security_server.rstrip("/")
        self._verify_rest_hash = platform.rest_request_hash == "verify"

    # -- what the gateway says about the call ---------------------------------------------------------

    def _message(self) -> tuple[str, str | None, str | None]:
        ctx = current()
        return ctx.message_id or str(uuid.uuid4()), ctx.user_id or None, ctx.issue or None

    async def send(self, call: Call, timeout_seconds: float) -> Reply:
        if call.soap:
            return await self._send_soap(call, timeout_seconds)
        return await self._send_rest(call, timeout_seconds)

    async def close(self) -> None:
        """Nothing to release: the session is the application's."""

    # -- REST ---------------------------------------------------------------------------------------------

    def service_id(self) -> str:
        """The REST service id: the partner's subsystem and its service code."""
        return f"{self._route.subsystem}/{self._route.service_code}"

    async def _send_rest(self, call: Call, timeout_seconds: float) -> Reply:
        x_road_id, user_id, issue = self._message()
        client = encoded_identifier(self._platform.client)
        # The connector's own headers pass; any X-Road header is the transport's alone to set.
        headers = {name: value for name, value in call.headers.items() if not _is_xroad(name)}
        headers |= {H_CLIENT: client, H_ID: x_road_id}
        if user_id:
            headers[H_USER] = user_id
        if issue:
            headers[H_ISSUE] = issue
        url = f"{self._root}{REST_PREFIX}{encoded_identifier(self.service_id())}{call.path}"
        # The request target as aiohttp will put it on the wire (it requotes what it is given).
        sent_path = URL(url).raw_path_qs.removeprefix(REST_PREFIX)
        reply = await exchange(
            self._session, call.method, url, call.body, headers, timeout_seconds, self._ssl
        )

        error = reply.headers.get(H_ERROR)
        if error is not None:
            raise xroad_error(error.strip() or _error_type_of(reply.body))
        if (
            reply.headers.get(H_ID) != x_road_id
            or unquote(reply.headers.get(H_CLIENT, "")) != self._platform.client
            or unquote(reply.headers.get(H_SERVICE, "")) != self.service_id()
        ):
            raise PlatformError(NOT_ECHOED, retryable=False)
        received = reply.headers.get(H_REQUEST_HASH, "").strip()
        if not received:
            raise PlatformError(HASH_MISMATCH, retryable=False)
        if self._verify_rest_hash:
            expected = rest_request_hash(call.method, sent_path, x_road_id, client, call.body)
            if not _same_base64(received, expected):
                raise PlatformError(HASH_MISMATCH, retryable=False)
        evidence: dict[str, Any] = {
            "platform": "xroad",
            "protocol": "rest",
            "x_road_id": x_road_id,
            "client": self._platform.client,
            "service": self.service_id(),
            "request_hash": received,
            "hash_algorithm": "SHA-512",
            # ``record``: the consumer security server's check, not the gateway's own.
            "verified": self._verify_rest_hash,
        }
        request_id = reply.headers.get(H_REQUEST_ID)
        if request_id:
            evidence["request_id"] = request_id
        record_evidence(evidence)
        return reply

    # -- SOAP ---------------------------------------------------------------------------------------------

    def soap_service(self, operation: str) -> str:
        """The SOAP service id (``…/SUBSYSTEM/OPERATION[/VERSION]``), as evidence names it."""
        version = f"/{self._route.service_version}" if self._route.service_version else ""
        return f"{self._route.subsystem}/{operation}{version}"

    def _headers(self, operation: str, x_road_id: str, user_id: str | None, issue: str | None) -> list[Any]:
        client = _identifier("client", "SUBSYSTEM", self._platform.client.split("/"))
        service = _identifier("service", "SERVICE", self._route.subsystem.split("/"))
        _child(service, IDENTIFIERS_NS, "serviceCode", operation)
        if self._route.service_version:
            _child(service, IDENTIFIERS_NS, "serviceVersion", self._route.service_version)
        fields = [client, service, _field("id", x_road_id)]
        if user_id:
            fields.append(_field("userId", user_id))
        if issue:
            fields.append(_field("issue", issue))
        fields.append(_field("protocolVersion", self._platform.protocol_version))
        return fields

    async def _send_soap(self, call: Call, timeout_seconds: float) -> Reply:
        if not call.operation:
            raise ConnectorError("SOAP call without an operation (SOAPAction)", retryable=False)
        x_road_id, user_id, issue = self._message()
        try:
            request = parse_untrusted(call.body)
        except XmlRejected as exc:
            raise ConnectorError(
                f"the request envelope is unusable ({exc.reason})", retryable=False
            ) from None
        fields = self._headers(call.operation, x_road_id, user_id, issue)
        message = _with_headers(request, fields)
        headers = {name: value for name, value in call.headers.items() if not _is_xroad(name)}
        # X-Road takes SOAP at the security server's root.
        url = self._root + "/"
        reply = await exchange(self._session, "POST", url, message, headers, timeout_seconds, self._ssl)

        try:
            root = parse_untrusted(reply.body)
        except XmlRejected as exc:
            if exc.reason == "forbidden":
                raise ConnectorError("unusable SOAP answer (DTD)", retryable=False) from None
            # Not XML (a proxy's HTML 503, a truncated answer): no answer to accept, nothing to prove;
            # the connector classifies it by its status as for any partner.
            return reply
        body = _child_of(root, "Body")
        fault = _child_of(body, "Fault") if body is not None else None
        if fault is not None:
            code = _xroad_fault(fault)
            if code is not None:
                raise xroad_error(code)
            # The partner's own fault: the connector reads it (gateway/connectors/land.py).
            return reply
        header = _child_of(root, "Header")
        if header is None:
            raise PlatformError(NOT_ECHOED, retryable=False)
        echoed = [field for field in _xroad_fields(header) if _local(field) != "requestHash"]
        if [_shape(field) for field in echoed] != [_shape(field) for field in fields]:
            raise PlatformError(NOT_ECHOED, retryable=False)
        request_hash = header.find(f"{{{XROAD_NS}}}requestHash")
        if request_hash is None:
            raise PlatformError(HASH_MISMATCH, retryable=False)
        algorithm = HASH_ALGORITHMS.get((request_hash.get("algorithmId") or SHA512_URI).strip())
        if algorithm is None:
            raise PlatformError("X-Road: request hash algorithm not accepted", retryable=False)
        received = "".join((request_hash.text or "").split())
        if not _same_base64(received, soap_request_hash(message, algorithm)):
            raise PlatformError(HASH_MISMATCH, retryable=False)
        record_evidence(
            {
                "platform": "xroad",
                "protocol": "soap",
                "x_road_id": x_road_id,
                "client": self._platform.client,
                "service": self.soap_service(call.operation),
                "request_hash": received,
                "hash_algorithm": _DISPLAY[algorithm],
                "verified": True,
            }
        )
        # The X-Road headers are the platform's, not part of the partner's WSDL: the connector gets the
        # partner's message alone. (zeep 4.3 ignores undeclared reply headers today; a WSDL declaring
        # headers of its own, or a stricter parser, must never meet these.)
        for element in _xroad_fields(header):
            header.remove(element)
        if not _elements(header):
            root.remove(header)
        stripped = etree.tostring(root, xml_declaration=True, encoding="UTF-8")
        return Reply(reply.status, CIMultiDict(reply.headers), stripped, reply.content_type, reply.charset)


# -- helpers --------------------------------------------------------------------------------------------


def _is_xroad(name: str) -> bool:
    return name.lower().startswith("x-road-")


def _same_base64(received: str, expected: str) -> bool:
    try:
        got = base64.b64decode(received, validate=True)
    except ValueError:
        return False
    return hmac.compare_digest(got, base64.b64decode(expected))


def _error_type_of(body: bytes) -> str:
    """The ``type`` of a security server's JSON error body, when its X-Road-Error header is empty."""
    try:
        data = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        return "error"
    value = data.get("type") if isinstance(data, dict) else None
    return value if isinstance(value, str) else "error"


def _local(element: Any) -> str:
    return str(etree.QName(element).localname)


def _elements(parent: Any) -> list[Any]:
    return [child for child in parent if isinstance(child.tag, str)]


def _child_of(parent: Any, name: str) -> Any:
    """``parent``'s ``soap:<name>`` child (SOAP 1.1 or 1.2), or None."""
    for child in _elements(parent):
        if child.tag in (f"{{{SOAP_ENV}}}{name}", f"{{{SOAP12_ENV}}}{name}"):
            return child
    return None


def _xroad_fields(header: Any) -> list[Any]:
    return [element for element in _elements(header) if etree.QName(element).namespace == XROAD_NS]


def _shape(element: Any) -> tuple[str, str | None, tuple[tuple[str, str], ...], str]:
    """A header field as compared: name, object type, identifier parts, text (prefixes and whitespace
    around values do not matter, values and order do)."""
    parts = tuple((_local(child), (child.text or "").strip()) for child in _elements(element))
    text = "" if parts else (element.text or "").strip()
    return _local(element), element.get(f"{{{IDENTIFIERS_NS}}}objectType"), parts, text


def _child(parent: Any, namespace: str, name: str, text: str) -> Any:
    element = etree.SubElement(parent, f"{{{namespace}}}{name}")
    element.text = text
    return element


def _field(name: str, text: str) -> Any:
    element = etree.Element(f"{{{XROAD_NS}}}{name}")
    element.text = text
    return element


def _identifier(name: str, object_type: str, parts: list[str]) -> Any:
    element = etree.Element(f"{{{XROAD_NS}}}{name}")
    element.set(f"{{{IDENTIFIERS_NS}}}objectType", object_type)
    for part, value in zip(_PARTS, parts, strict=True):
        _child(element, IDENTIFIERS_NS, part, value)
    return element


def _with_headers(request: Any, fields: list[Any]) -> bytes:
    """The envelope with ``fields`` first in its Header (one is added when there is none), ``xrd`` and
    ``id`` declared on the Envelope as in the spec's examples; serialised as UTF-8."""
    namespace = etree.QName(request).namespace or SOAP_ENV
    nsmap = {prefix: uri for prefix, uri in request.nsmap.items() if uri not in (XROAD_NS, IDENTIFIERS_NS)}
    nsmap |= {_free(nsmap, "xrd"): XROAD_NS, _free(nsmap, "id"): IDENTIFIERS_NS}
    root = etree.Element(request.tag, attrib=dict(request.attrib), nsmap=nsmap)
    children = list(request)
    for child in children:
        root.append(child)  # moves it
    header = _child_of(root, "Header")
    if header is None:
        header = etree.Element(f"{{{namespace}}}Header")
        root.insert(0, header)
    for element in _xroad_fields(header):  # never two sets of X-Road headers
        header.remove(element)
    for index, element in enumerate(fields):
        header.insert(index, element)
    return bytes(etree.tostring(root, xml_declaration=True, encoding="UTF-8"))


def _free(nsmap: Mapping[str | None, str], prefix: str) -> str:
    """``prefix``, or ``prefix1``… when the envelope already uses it for another namespace."""
    candidate, n = prefix, 0
    while candidate in nsmap:
        n += 1
        candidate = f"{prefix}{n}"
    return candidate


def _xroad_fault(fault: Any) -> str | None:
    """The X-Road error type of a SOAP 1.1 fault, or None for the partner's own fault.

    Security servers write their codes unqualified (``Server.ServerProxy.AccessDenied``, PR-MESS
    annex D) and add a ``faultDetail`` element without namespace; a partner's faultcode is a QName of
    the SOAP namespace (``soap:Server``). A code naming a security server proxy counts whatever its
    prefix."""
    code = (fault.findtext("faultcode") or "").strip()
    prefix, _, local = code.rpartition(":")
    if local.startswith(("Server.ClientProxy", "Server.ServerProxy")):
        return local
    if not prefix and local.startswith(("Server.", "Client.")):
        return local
    detail = fault.find("detail")
    if detail is not None and detail.find("faultDetail") is not None:
        return local or "fault"
    return None
