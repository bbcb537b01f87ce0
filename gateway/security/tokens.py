"""Bearer-token verification: each client signs its own JWTs; we check them against its keys only.

Where single-use tokens are off a client may send one token with every request until it expires, and
checking its signature was a seventh of the api's time per push (Ed25519 or ECDSA, plus parsing it
twice). A token that verified is
remembered until it expires (``cachetools.TLRUCache``), tied to the client as it was loaded: when the
client's file changes (a key rotated or removed, the client revoked) the store loads a new client, and
every token remembered for the old one is checked from scratch again.

The cache only spares the signature check. With single-use tokens (:mod:`gateway.security.replay`) every
request, cached or not, still claims its ``jti`` before it is served, so a remembered token is never let
through twice.
"""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import jwt
from cachetools import TLRUCache

from gateway.security.clients import Client, ClientStore
from gateway.security.keys import PrivateKey, algorithm_for

if TYPE_CHECKING:
    from gateway.security.xroad_inbound import XRoadCall

REQUIRED_CLAIMS = ["exp", "iat", "iss", "aud", "sub", "jti"]
ACCEPTED_ALGORITHMS = frozenset({"ES256", "EdDSA"})
#: A jti longer than this is refused (it is stored, per issuer, while single-use tokens are on).
MAX_TOKEN_ID = 128


class TokenRejected(Exception):
    """The token is missing, malformed, expired, or not signed by a key of its issuer."""


@dataclass(frozen=True, slots=True)
class Principal:
    client: Client
    subject: str
    token_id: str
    #: When the token stops being accepted (exp + leeway, Unix time): how long its jti is remembered.
    expires: float = 0.0
    #: The X-Road call this request arrived as, when a trusted security server forwarded it
    #: (gateway/security/xroad_inbound.py); None for a caller known by its token alone.
    xroad: XRoadCall | None = None

    def audit_data(self) -> dict[str, Any]:
        """What the audit record of a request keeps of how the caller arrived: ``{"xroad": {...}}`` for
        an X-Road call, nothing otherwise. Merged into the ``data`` of the request's audit entries."""
        return self.xroad.audit() if self.xroad is not None else {}


@dataclass(frozen=True, slots=True)
class _Verified:
    principal: Principal
    expires: float  # exp + leeway, on time.time()'s clock


#: Tokens remembered at once; past that the least recently used goes (and is verified again if it returns).
CACHED_TOKENS = 10_000


class TokenVerifier:
    def __init__(self, clients: ClientStore, audience: str, leeway: int, max_lifetime: int) -> None:
        self._clients = clients
        self._audience = audience
        self._leeway = leeway
        self._max_lifetime = max_lifetime
        self._verified: TLRUCache[str, _Verified] = TLRUCache(
            maxsize=CACHED_TOKENS, ttu=lambda _token, seen, _now: seen.expires, timer=time.time
        )

    def verify(self, token: str) -> Principal:
        seen = self._verified.get(token)
        if seen is not None:
            client = seen.principal.client
            if self._clients.get(client.id) is client and not client.revoked:
                return seen.principal
            del self._verified[token]
        principal, expires = self._verify(token)
        self._verified[token] = _Verified(principal, expires)
        return principal

    def _verify(self, token: str) -> tuple[Principal, float]:
        try:
            header = jwt.get_unverified_header(token)
            unverified = jwt.decode(token, options={"verify_signature": False})
        except jwt.PyJWTError as exc:
            raise TokenRejected(f"malformed token: {exc}") from exc
        alg = header.get("alg")
        if alg not in ACCEPTED_ALGORITHMS:
            raise TokenRejected(f"algorithm {alg!r} is not accepted; use ES256 or EdDSA")
        issuer = unverified.get("iss")
        client = self._clients.get(issuer) if isinstance(issuer, str) else None
        if client is None or client.revoked:
            raise TokenRejected("unknown or revoked issuer")
        # Only keys whose type matches the header's algorithm are tried, and each key dictates its own
        # algorithm: the header can never steer verification to another key type.
        candidates = [k for k in client.keys if algorithm_for(k) == alg]
        if not candidates:
            raise TokenRejected("no key of this client matches the token's algorithm")
        last_error: Exception | None = None
        for key in candidates:
            try:
                claims: dict[str, Any] = jwt.decode(
                    token,
                    key=key,
                    algorithms=[algorithm_for(key)],
                    audience=self._audience,
                    issuer=client.id,
                    leeway=self._leeway,
                    options={"require": REQUIRED_CLAIMS},
                )
            except jwt.InvalidSignatureError as exc:
                last_error = exc
                continue
            except jwt.PyJWTError as exc:
                raise TokenRejected(str(exc)) from exc
            lifetime = int(claims["exp"]) - int(claims["iat"])
            if lifetime > self._max_lifetime:
                raise TokenRejected(f"token lifetime {lifetime}s exceeds {self._max_lifetime}s")
            if int(claims["iat"]) > time.time() + self._leeway:
                raise TokenRejected("token issued in the future")
            token_id = str(claims["jti"])
            if not 1 <= len(token_id) <= MAX_TOKEN_ID:
                raise TokenRejected(f"jti must be 1-{MAX_TOKEN_ID} characters")
            expires = float(claims["exp"]) + self._leeway
            principal = Principal(client, str(claims["sub"]), token_id, expires)
            return principal, expires
        raise TokenRejected(f"signature does not verify with this client's keys ({last_error})")


def issue_token(
    client_id: str,
    private_key: PrivateKey,
    audience: str,
    ttl: int = 3600,
    subject: str | None = None,
) -> str:
    """A token as a client would make it (the ``token`` command, simulators, tests)."""
    now = int(time.time())
    claims = {
        "iss": client_id,
        "sub": subject or client_id,
        "aud": audience,
        "iat": now,
        "exp": now + ttl,
        "jti": str(uuid.uuid4()),
    }
    return jwt.encode(claims, private_key, algorithm=algorithm_for(private_key))
