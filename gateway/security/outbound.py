"""The one policy for every address the gateway calls on a client's behalf (inquiry callbacks, status-event
webhooks, and anything later a client can name).

Rules (pure, no I/O): https only; plain http only to a loopback host and only when
``[outbound] allow_http_loopback`` is on (development, tests, the demo); never an address that is
unspecified, loopback (unless that setting), private, link-local (the cloud metadata address
169.254.169.254 among them), shared (100.64.0.0/10), multicast, reserved or otherwise not global, nor the
IPv4-mapped, 6to4, Teredo or NAT64 forms of one; and, when the client's registration lists
``outbound_hosts``, only those hosts.

I/O: :meth:`OutboundPolicy.check` resolves the host (``loop.getaddrinfo``) and refuses it if *any*
address it resolves to is forbidden. It runs at registration and again before each send, and the session
that sends (:func:`client_session`) resolves through :class:`PolicyResolver`, which applies the same
address rule to the addresses it then connects to: a name that re-binds between the check and the
connection still cannot reach a forbidden address. Redirects are never followed (``allow_redirects=False``
in :mod:`gateway.worker.webhook`): a 3xx is a failed delivery.

A name that does not resolve at registration is accepted (DNS may be split or briefly down) and checked
again, authoritatively, at each send.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
import weakref
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Final
from urllib.parse import urlsplit

import aiohttp
from aiohttp.abc import AbstractResolver, ResolveResult
from aiohttp.resolver import ThreadedResolver

from gateway.domain.violations import Violation
from gateway.settings import OutboundSettings

__all__ = [
    "Outbound",
    "OutboundPolicy",
    "OutboundRefused",
    "PolicyResolver",
    "address_refusal",
    "client_session",
    "normalise_host",
]

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

_SHARED: Final = ipaddress.ip_network("100.64.0.0/10")  # carrier-grade NAT (RFC 6598)
_NAT64: Final = ipaddress.ip_network("64:ff9b::/96")  # well-known NAT64 prefix (RFC 6052)
#: Names that are loopback by definition (RFC 6761), whatever a resolver says.
_LOOPBACK_NAMES: Final = ("localhost",)
#: How long a registration waits for DNS before accepting the name (it is checked again at each send).
RESOLVE_TIMEOUT_SECONDS: Final = 2.0


class OutboundRefused(Exception):
    """The policy forbids this address: a delivery attempt must not be made (and retrying will not help)."""


def _embedded_v4(address: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    """The IPv4 address an IPv6 form carries (mapped, 6to4, Teredo client, NAT64), if any."""
    if address.ipv4_mapped is not None:
        return address.ipv4_mapped
    if address.sixtofour is not None:
        return address.sixtofour
    if address.teredo is not None:
        return address.teredo[1]
    if address in _NAT64:
        return ipaddress.IPv4Address(int(address) & 0xFFFF_FFFF)
    return None


def address_refusal(address: IPAddress, allow_loopback: bool = False) -> str | None:
    """Why the gateway must not connect to ``address`` on a client's behalf, or None when it may.

    A loopback address is allowed only with ``allow_loopback`` (the development setting).
    """
    if isinstance(address, ipaddress.IPv6Address):
        if address.scope_id:
            address = ipaddress.IPv6Address(str(address).split("%", 1)[0])
        embedded = _embedded_v4(address)
        if embedded is not None:
            refusal = address_refusal(embedded, allow_loopback)
            return f"{refusal} (in an IPv6 form)" if refusal else None
    if address.is_unspecified:
        return "an unspecified address"
    if address.is_loopback:
        return None if allow_loopback else "a loopback address"
    if address.is_link_local:
        return "a link-local address"
    if address.is_multicast:
        return "a multicast address"
    if isinstance(address, ipaddress.IPv4Address) and address in _SHARED:
        return "a shared (carrier-grade NAT) address"
    if address.is_reserved:
        return "a reserved address"
    if address.is_private:
        return "a private address"
    if not address.is_global:
        return "not a global address"
    return None


def normalise_host(host: str) -> str:
    """A host as it is compared with an allow-list: lower case, no trailing dot."""
    return host.lower().rstrip(".")


def _ip(host: str) -> IPAddress | None:
    try:
        return ipaddress.ip_address(host)
    except ValueError:
        return None


def _is_loopback_name(host: str) -> bool:
    return any(host == name or host.endswith("." + name) for name in _LOOPBACK_NAMES)


#: DNS lookups of client-named hosts at once, per event loop. ``getaddrinfo`` runs in the loop's default
#: thread pool and a slow resolver holds a thread past our timeout; a flood of slow names must not
#: starve the other users of that pool.
LOOKUPS_AT_ONCE: Final = 4
_lookups: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, asyncio.Semaphore] = (
    weakref.WeakKeyDictionary()
)


def _lookup_slot() -> asyncio.Semaphore:
    """This loop's semaphore (a semaphore belongs to the loop it first waited on)."""
    loop = asyncio.get_running_loop()
    slot = _lookups.get(loop)
    if slot is None:
        slot = _lookups[loop] = asyncio.Semaphore(LOOKUPS_AT_ONCE)
    return slot


@dataclass(frozen=True, slots=True)
class OutboundPolicy:
    """The outbound URL policy of one installation (``[outbound]`` in ``gateway.toml``)."""

    allow_http_loopback: bool = False
    resolve_timeout_seconds: float = RESOLVE_TIMEOUT_SECONDS

    @classmethod
    def from_settings(cls, settings: OutboundSettings) -> OutboundPolicy:
        """The policy ``[outbound]`` describes."""
        return cls(settings.allow_http_loopback, settings.resolve_timeout_seconds)

    # -- pure rules --------------------------------------------------------------------------------

    def url_violations(
        self, url: str, path: str, allowed_hosts: tuple[str, ...] | None = None
    ) -> list[Violation]:
        """What is wrong with ``url`` before any DNS: scheme, credentials, a forbidden address literal, a
        loopback name, a host outside the client's ``allowed_hosts``."""
        try:
            parts = urlsplit(url)
            host = parts.hostname
            parts.port  # noqa: B018 - raises ValueError for a port out of range
        except ValueError:
            return [Violation(path, "is not a valid URL", "format")]
        if not host:
            return [Violation(path, "must name a host", "format")]
        host = normalise_host(host)
        if parts.username is not None or parts.password is not None:
            return [Violation(path, "must not carry credentials", "format")]
        literal = _ip(host)
        loopback = (literal is not None and literal.is_loopback) or _is_loopback_name(host)
        if parts.scheme != "https" and not (parts.scheme == "http" and self.allow_http_loopback and loopback):
            return [Violation(path, "must be an https URL", "https")]
        if allowed_hosts is not None and host not in {normalise_host(h) for h in allowed_hosts}:
            return [Violation(path, f"host {host} is not among this client's outbound hosts", "allowed")]
        if literal is not None:
            refusal = address_refusal(literal, self.allow_http_loopback)
            if refusal:
                return [Violation(path, f"must not point at {refusal}", "address")]
        elif loopback and not self.allow_http_loopback:
            return [Violation(path, "must not point at a loopback address", "address")]
        return []

    def refusal(self, address: str) -> str | None:
        """:func:`address_refusal` for a resolved address as text (an unreadable one is refused)."""
        ip = _ip(address)
        if ip is None:
            return "an unreadable address"
        return address_refusal(ip, self.allow_http_loopback)

    # -- I/O ---------------------------------------------------------------------------------------

    async def violations(
        self, url: str, path: str, allowed_hosts: tuple[str, ...] | None = None
    ) -> list[Violation]:
        """:meth:`url_violations`, then every address the host resolves to (registration). A name that
        does not resolve, or not in time, is accepted here and checked again at each send."""
        found = self.url_violations(url, path, allowed_hosts)
        if found:
            return found
        try:
            await self._resolve_checked(urlsplit(url), unresolved_ok=True)
        except OutboundRefused as exc:
            return [Violation(path, str(exc), "address")]
        return []

    async def check(self, url: str, allowed_hosts: tuple[str, ...] | None = None) -> None:
        """Before a send: raise :class:`OutboundRefused` unless ``url`` passes every rule now. A name that
        does not resolve is not refused here: the send fails on it like any unreachable receiver."""
        found = self.url_violations(url, "url", allowed_hosts)
        if found:
            raise OutboundRefused(found[0].message)
        await self._resolve_checked(urlsplit(url), unresolved_ok=True)

    async def _resolve_checked(self, parts: Any, unresolved_ok: bool) -> None:
        host = parts.hostname
        if host is None or _ip(host) is not None:
            return  # a literal was judged by the pure rules; nothing to resolve
        port = parts.port or (443 if parts.scheme == "https" else 80)
        loop = asyncio.get_running_loop()
        try:
            # The wait for a free lookup counts against the budget: client-named hosts never hold more
            # than a few of the loop's default threads, which the storage layer's commits also use.
            async with asyncio.timeout(self.resolve_timeout_seconds), _lookup_slot():
                infos = await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM)
        except (OSError, TimeoutError):
            if unresolved_ok:
                return
            raise OutboundRefused(f"{host} does not resolve") from None
        for info in infos:
            refusal = self.refusal(str(info[4][0]))
            if refusal:
                raise OutboundRefused(f"must not point at {refusal} ({host} resolves to one)")


class PolicyResolver(AbstractResolver):
    """aiohttp's resolver, refusing a host when any address it resolves to is forbidden: the connection
    goes only to addresses this resolver returned, so it goes only where the policy allows."""

    def __init__(self, policy: OutboundPolicy) -> None:
        self._policy = policy
        self._resolver = ThreadedResolver()  # loop.getaddrinfo, as the registration check

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        """Resolve ``host`` and refuse (``OSError``, a failed connection) any forbidden answer."""
        results = await self._resolver.resolve(host, port, family)
        for result in results:
            refusal = self._policy.refusal(result["host"])
            if refusal:
                raise OSError(f"outbound policy: {host} resolves to {refusal}")
        return results

    async def close(self) -> None:
        await self._resolver.close()


def client_session(policy: OutboundPolicy) -> aiohttp.ClientSession:
    """The session for calls to client-named addresses: it connects only where ``policy`` allows (an
    address literal never reaches a resolver, so :meth:`OutboundPolicy.check` must run first)."""
    return aiohttp.ClientSession(connector=aiohttp.TCPConnector(resolver=PolicyResolver(policy)))


@dataclass(frozen=True, slots=True)
class Outbound:
    """What a worker needs to call an address a client named: the policy, the session that enforces it,
    and each client's ``outbound_hosts`` (read at send time: a changed registration applies at once)."""

    policy: OutboundPolicy
    session: aiohttp.ClientSession
    allowed_hosts: Callable[[str], tuple[str, ...] | None]

    async def check(self, url: str, client_id: str) -> None:
        """Raise :class:`OutboundRefused` unless ``client_id`` may be called at ``url`` now."""
        await self.policy.check(url, self.allowed_hosts(client_id))
