"""The gateway as an X-Road service provider: who may speak for an X-Road client, and as whom.

Courts and partners may call the gateway through their X-Road security servers instead of signing a
JWT each. The provider-side security server (the gateway operator's own) forwards their calls: a REST
call with the headers ``X-Road-Client`` (``INSTANCE/CLASS/MEMBER[/SUBSYSTEM]``), ``X-Road-Id``,
``X-Road-UserId``, ``X-Road-Issue`` and ``X-Road-Service``; a SOAP call with the same facts in the
envelope's X-Road header. Those headers are only claims, so they are believed from a *trusted*
security server only, and the X-Road client they name is then taken for the registered client
``config/xroad.toml`` maps it to (its grants, rate limit and revocation apply as for a token).

A security server is trusted when

* the TLS-terminating proxy in front of the gateway verified its client certificate and says so in
  headers (``X-Client-Cert-Verified: SUCCESS`` and the certificate's subject DN or fingerprint) *and*
  the connection comes from one of the proxy addresses listed in ``[provider.proxy]``: those headers
  from anyone else are no evidence at all; or
* the connection comes straight from one of the addresses listed for it (a security server on the
  same host, the demo): explicit, never implied by loopback.

Deny by default: no ``xroad.toml``, ``enabled = false``, no proxy address, no security server or no
client mapping each mean that X-Road headers are refused (401), never ignored.

The rules here take plain values (the peer's address, the request's headers) and do no I/O; the web
door (:mod:`gateway.web.auth`) applies them.
"""

from __future__ import annotations

import ipaddress
import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final
from urllib.parse import unquote

from cryptography import x509
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    IPvAnyNetwork,
    ValidationError,
    field_validator,
    model_validator,
)

from gateway.domain.identifiers import AGENCY_CODE

__all__ = [
    "CONFIG_FILE",
    "ClientMapping",
    "ProviderSettings",
    "ProxySettings",
    "SecurityServer",
    "XRoadCall",
    "XRoadClaim",
    "XRoadInbound",
    "XRoadRefused",
    "XRoadSettings",
    "claim_from_headers",
    "client_of_parts",
    "is_identifier_part",
    "is_xroad_request",
    "load_xroad_inbound",
    "parse_client_id",
]

CONFIG_FILE: Final = "xroad.toml"

#: The request headers a provider-side security server sets (X-Road message protocol for REST, 4.3).
CLIENT_HEADER: Final = "X-Road-Client"
ID_HEADER: Final = "X-Road-Id"
USER_ID_HEADER: Final = "X-Road-UserId"
ISSUE_HEADER: Final = "X-Road-Issue"
SERVICE_HEADER: Final = "X-Road-Service"
#: Any header of this prefix makes a request an X-Road request (refused unless from a trusted server).
PREFIX: Final = "x-road-"

#: Characters an X-Road identifier part may hold (X-Road message protocol for REST, 4.8).
_ID_PART = re.compile(r"^[A-Za-z0-9'()+,\-.=?]{1,255}$")
#: The other header values are free text: printable, bounded, on one line.
_FREE_TEXT = re.compile(r"^[\x20-\x7e\u00a0-\uffff]{1,255}$")
_HEX = re.compile(r"^[0-9a-f]{32,128}$")


class XRoadRefused(ValueError):
    """An X-Road claim the gateway does not accept. ``status``: 400 (malformed), 401 (not proven:
    untrusted source, replayed id, a client that is unknown or revoked) or 403 (proven, not allowed:
    an X-Road client mapped to no registered client). ``reason`` is what the refusal tally counts."""

    def __init__(self, status: int, reason: str, detail: str) -> None:
        super().__init__(detail)
        self.status = status
        self.reason = reason


def parse_client_id(text: str) -> tuple[str, ...]:
    """``INSTANCE/CLASS/MEMBER[/SUBSYSTEM]`` as its parts, each percent-decoded (the REST protocol
    encodes them) and held to the identifier characters. ``ValueError`` otherwise."""
    return client_of_parts([unquote(part, errors="strict") for part in text.strip().split("/")])


def is_identifier_part(part: str) -> bool:
    """Whether ``part`` may be one part of an X-Road identifier (instance, class, code, version)."""
    return bool(_ID_PART.match(part))


def client_of_parts(parts: list[str]) -> tuple[str, ...]:
    """An X-Road client from its parts (instance, class, member code, optional subsystem code), each held
    to the identifier characters: ``ValueError`` otherwise."""
    if len(parts) not in (3, 4):
        raise ValueError(
            f"an X-Road client is INSTANCE/CLASS/MEMBER[/SUBSYSTEM], not {'/'.join(parts)[:80]!r}"
        )
    for part in parts:
        if not is_identifier_part(part):
            raise ValueError(f"X-Road identifier part {part[:80]!r} holds characters X-Road does not allow")
    return tuple(parts)


def _free_text(name: str, value: str | None) -> str | None:
    if value is None:
        return None
    value = value.strip()
    if not _FREE_TEXT.match(value):
        raise XRoadRefused(400, "xroad-malformed", f"{name} must be 1-255 printable characters on one line")
    return value


@dataclass(frozen=True, slots=True)
class XRoadClaim:
    """What a request says about its X-Road origin, before anything is believed."""

    client: tuple[str, ...]
    message_id: str | None = None
    user_id: str | None = None
    issue: str | None = None
    service: str | None = None
    protocol_version: str | None = None

    @property
    def client_id(self) -> str:
        return "/".join(self.client)

    @classmethod
    def of(
        cls,
        client: tuple[str, ...],
        message_id: str | None,
        user_id: str | None = None,
        issue: str | None = None,
        service: str | None = None,
        protocol_version: str | None = None,
    ) -> XRoadClaim:
        """A claim with every free-text field checked (:class:`XRoadRefused` 400 otherwise)."""
        return cls(
            client,
            _free_text("the X-Road message id", message_id),
            _free_text("the X-Road user id", user_id),
            _free_text("the X-Road issue", issue),
            _free_text("the X-Road service", service),
            _free_text("the X-Road protocol version", protocol_version),
        )

    def agrees_with(self, other: XRoadClaim) -> bool:
        """Whether two statements of one call (HTTP headers and SOAP header) name the same client and,
        where both give one, the same message id."""
        same_id = self.message_id is None or other.message_id is None or self.message_id == other.message_id
        return self.client == other.client and same_id

    def merged(self, other: XRoadClaim) -> XRoadClaim:
        """This claim with what only ``other`` states filled in."""
        return XRoadClaim(
            self.client,
            self.message_id or other.message_id,
            self.user_id or other.user_id,
            self.issue or other.issue,
            self.service or other.service,
            self.protocol_version or other.protocol_version,
        )


def is_xroad_request(headers: Mapping[str, str]) -> bool:
    """Whether any ``X-Road-*`` header is present (names compared without regard to case)."""
    return any(name.lower().startswith(PREFIX) for name in headers)


def claim_from_headers(headers: Any) -> XRoadClaim | None:
    """The claim of a REST call's ``X-Road-*`` headers; None without any. ``headers``: a multidict
    (``getall``). :class:`XRoadRefused` (400) for a missing, repeated or malformed ``X-Road-Client``."""
    if not is_xroad_request(headers):
        return None
    clients = headers.getall(CLIENT_HEADER, [])
    if len(clients) != 1:
        detail = "X-Road headers without X-Road-Client" if not clients else "more than one X-Road-Client"
        raise XRoadRefused(400, "xroad-malformed", detail)
    try:
        client = parse_client_id(clients[0])
    except (ValueError, UnicodeDecodeError) as exc:
        raise XRoadRefused(400, "xroad-malformed", str(exc)) from None
    for name in (ID_HEADER, USER_ID_HEADER, ISSUE_HEADER, SERVICE_HEADER):
        if len(headers.getall(name, [])) > 1:
            raise XRoadRefused(400, "xroad-malformed", f"more than one {name}")
    return XRoadClaim.of(
        client,
        headers.get(ID_HEADER),
        headers.get(USER_ID_HEADER),
        headers.get(ISSUE_HEADER),
        headers.get(SERVICE_HEADER),
    )


@dataclass(frozen=True, slots=True)
class XRoadCall:
    """An X-Road call the gateway accepted: the claim, and the security server that vouched for it."""

    claim: XRoadClaim
    security_server: str

    def audit(self) -> dict[str, Any]:
        """What the audit record of the request keeps of it, under ``xroad``. The user id is an
        officer's personal ID: the audit log scrubs it like every string it stores (a token's ``sub``
        included), so it is never held in clear."""
        claim = self.claim
        fields = {
            "client": claim.client_id,
            "id": claim.message_id,
            "user_id": claim.user_id,
            "issue": claim.issue,
            "service": claim.service,
            "protocol_version": claim.protocol_version,
            "security_server": self.security_server,
        }
        return {"xroad": {key: value for key, value in fields.items() if value is not None}}


# -- configuration ---------------------------------------------------------------------------------


class ProxySettings(BaseModel):
    """The TLS-terminating proxy in front of the api: where it connects from, and the headers in which
    it states the client certificate it verified (deploy/nginx/xroad-mtls.conf sets these)."""

    model_config = ConfigDict(extra="forbid")

    #: Addresses (or networks) the proxy connects from. Certificate headers from anywhere else are
    #: ignored as evidence. Empty: no certificate is ever believed.
    addresses: list[IPvAnyNetwork] = Field(default_factory=list)
    verified_header: str = "X-Client-Cert-Verified"
    #: The value of ``verified_header`` for a certificate that verified (nginx's ``$ssl_client_verify``).
    verified_value: str = "SUCCESS"
    subject_header: str = "X-Client-Cert-Subject"
    fingerprint_header: str = "X-Client-Cert-Fingerprint"


class SecurityServer(BaseModel):
    """One security server whose forwarded calls are believed: by its TLS certificate (through the
    proxy) and/or by the address it connects from directly."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
    #: Subject DNs of its certificate, as RFC 4514 text (``CN=ss1.example.gov.vn,O=...,C=VN``).
    subjects: list[str] = Field(default_factory=list)
    #: Fingerprints of its certificate as the proxy computes them (nginx: SHA-1 of the DER), hex; colons
    #: and letter case do not matter.
    fingerprints: list[str] = Field(default_factory=list)
    #: Addresses it connects from without the proxy (a security server on this host, the demo). Loopback
    #: is never implied: list it to trust it.
    addresses: list[IPvAnyNetwork] = Field(default_factory=list)

    @field_validator("subjects")
    @classmethod
    def _subjects(cls, value: list[str]) -> list[str]:
        for subject in value:
            _parse_dn(subject)  # raises on text that is no distinguished name
        return value

    @field_validator("fingerprints")
    @classmethod
    def _fingerprints(cls, value: list[str]) -> list[str]:
        normal = [_normal_fingerprint(v) for v in value]
        for raw, fingerprint in zip(value, normal, strict=True):
            if not _HEX.match(fingerprint):
                raise ValueError(
                    f"fingerprint {raw!r} is not a hex digest (SHA-1 or SHA-256 of the certificate)"
                )
        return normal

    @model_validator(mode="after")
    def _identified(self) -> SecurityServer:
        if not (self.subjects or self.fingerprints or self.addresses):
            raise ValueError(f"security server {self.name}: give subjects, fingerprints or addresses")
        return self


class ClientMapping(BaseModel):
    """An X-Road client, and the registered client (``config/clients/<id>.toml``) it is taken for."""

    model_config = ConfigDict(extra="forbid")

    xroad_id: str
    client: str = Field(pattern=AGENCY_CODE.pattern)

    @field_validator("xroad_id")
    @classmethod
    def _xroad_id(cls, value: str) -> str:
        return "/".join(parse_client_id(value))


class ProviderSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    enabled: bool = False
    #: Each ``X-Road-Id`` is accepted once per X-Road client, remembered this long (the store of
    #: single-use tokens): a captured call cannot be sent again through a trusted server.
    single_use_ids: bool = True
    id_lifetime_seconds: int = Field(86_400, gt=0, le=30 * 86_400)
    #: The address the security server calls (the mTLS proxy's), stated in the X-Road WSDL and OpenAPI
    #: description; default: ``api.public_url``.
    service_url: str | None = None
    proxy: ProxySettings = Field(default_factory=ProxySettings)


class XRoadSettings(BaseModel):
    """``config/xroad.toml``."""

    model_config = ConfigDict(extra="forbid")

    provider: ProviderSettings = Field(default_factory=ProviderSettings)
    security_server: list[SecurityServer] = Field(default_factory=list)
    client: list[ClientMapping] = Field(default_factory=list)

    @model_validator(mode="after")
    def _consistent(self) -> XRoadSettings:
        names = [server.name for server in self.security_server]
        if len(set(names)) != len(names):
            raise ValueError("security_server: each name once")
        ids = [mapping.xroad_id for mapping in self.client]
        repeated = sorted({i for i in ids if ids.count(i) > 1})
        if repeated:
            raise ValueError(f"client: each xroad_id once ({', '.join(repeated)} repeated)")
        by_certificate = [s.name for s in self.security_server if s.subjects or s.fingerprints]
        if by_certificate and not self.provider.proxy.addresses:
            raise ValueError(
                f"security servers {by_certificate} are known by certificate, but [provider.proxy] lists "
                "no addresses: no proxy's certificate headers would ever be believed"
            )
        # Listing the proxy's own address for a security server would trust everyone the proxy lets in.
        for server in self.security_server:
            for network in server.addresses:
                for proxy in self.provider.proxy.addresses:
                    if network.version == proxy.version and network.overlaps(proxy):
                        raise ValueError(
                            f"security server {server.name}: address {network} is the proxy's ({proxy}); "
                            "through the proxy a security server is known by its certificate"
                        )
        return self


# -- the rules -------------------------------------------------------------------------------------


def _normal_fingerprint(value: str) -> str:
    return value.replace(":", "").replace(" ", "").strip().lower()


def _parse_dn(text: str) -> x509.Name:
    try:
        return x509.Name.from_rfc4514_string(text.strip())
    except ValueError as exc:
        raise ValueError(f"{text[:120]!r} is not an RFC 4514 distinguished name: {exc}") from None


def _address(peer: str | None) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    if not peer:
        return None
    try:
        address = ipaddress.ip_address(peer.split("%", 1)[0])
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


def _within(address: ipaddress.IPv4Address | ipaddress.IPv6Address, networks: list[IPvAnyNetwork]) -> bool:
    return any(address in network for network in networks)


class XRoadInbound:
    """The rules of ``xroad.toml`` as the web door asks them."""

    def __init__(self, settings: XRoadSettings | None = None) -> None:
        self.settings = settings or XRoadSettings()
        provider = self.settings.provider
        self.enabled = provider.enabled and bool(self.settings.security_server)
        self._mapped = {tuple(m.xroad_id.split("/")): m.client for m in self.settings.client}
        self._subjects = [
            (_parse_dn(subject), server.name)
            for server in self.settings.security_server
            for subject in server.subjects
        ]
        self._fingerprints = {
            fingerprint: server.name
            for server in self.settings.security_server
            for fingerprint in server.fingerprints
        }

    @property
    def provider(self) -> ProviderSettings:
        return self.settings.provider

    def security_server(self, peer: str | None, headers: Mapping[str, str]) -> str | None:
        """The name of the trusted security server a request comes from, or None. ``peer``: the address
        of the TCP peer (never a forwarded-for header); ``headers``: the request's."""
        if not self.enabled:
            return None
        address = _address(peer)
        if address is None:
            return None
        proxy = self.provider.proxy
        if _within(address, proxy.addresses):
            return self._by_certificate(headers)
        for server in self.settings.security_server:
            if _within(address, server.addresses):
                return server.name
        return None

    def _by_certificate(self, headers: Mapping[str, str]) -> str | None:
        proxy = self.provider.proxy
        if headers.get(proxy.verified_header, "").strip() != proxy.verified_value:
            return None
        fingerprint = headers.get(proxy.fingerprint_header)
        if fingerprint:
            name = self._fingerprints.get(_normal_fingerprint(fingerprint))
            if name is not None:
                return name
        subject = headers.get(proxy.subject_header)
        if subject:
            try:
                dn = _parse_dn(subject)
            except ValueError:
                return None
            for known, name in self._subjects:
                if dn == known:
                    return name
        return None

    def client_for(self, claim: XRoadClaim) -> str | None:
        """The registered client an X-Road client is taken for; None when it is mapped to none."""
        return self._mapped.get(claim.client)


def load_xroad_inbound(config_dir: Path) -> XRoadInbound:
    """The rules of ``<config_dir>/xroad.toml``; no file: X-Road inbound disabled. ``ValueError`` naming
    the file for one that is not valid, so the api does not start on a configuration it misreads."""
    path = config_dir / CONFIG_FILE
    if not path.exists():
        return XRoadInbound()
    try:
        raw = tomllib.loads(path.read_text("utf-8"))
        return XRoadInbound(XRoadSettings.model_validate(raw))
    except tomllib.TOMLDecodeError as exc:
        raise ValueError(f"{path}: not valid TOML: {exc}") from None
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(part) for part in error['loc']) or 'file'}: "
            f"{error['msg'].removeprefix('Value error, ')}"
            for error in exc.errors()
        )
        raise ValueError(f"{path}: {problems}") from None
