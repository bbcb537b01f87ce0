"""Console sessions: a signed, expiring cookie, and CSRF tokens tied to it.

Why a signed cookie and not a session table or process memory: several api processes run behind a
balancer and any of them must accept a session another one opened, without a shared store. The cookie
carries the operator, the role, a random session id and its expiry, MACed with HMAC-SHA256 under a key
derived from the receipt signing key (every api process has that key already; Ed25519 signatures are
deterministic, so each derives the same MAC key). Rotating the signing key signs everybody out.

The role in the cookie is not trusted on its own: every request checks the account still exists in the
operators file with that role, so removing an operator or changing a role takes effect at once.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
import time
from dataclasses import dataclass
from typing import Final

from gateway.security.signing import Signer

COOKIE: Final = "gw_ops_session"
LOGIN_COOKIE: Final = "gw_ops_login"  # pre-session nonce: the sign-in form is CSRF-protected too
#: However active, a session ends after this long (sign in again).
MAX_SESSION_SECONDS: Final = 12 * 3600


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def derive_key(signer: Signer) -> bytes:
    return hashlib.sha256(signer.sign_bytes(b"thads-gateway ops console session key v1").encode()).digest()


@dataclass(frozen=True, slots=True)
class Session:
    username: str
    role: str
    sid: str
    issued_at: int
    expires_at: int


class SessionCodec:
    def __init__(self, key: bytes, idle_seconds: float, max_seconds: float = MAX_SESSION_SECONDS) -> None:
        self._key = key
        self.idle_seconds = int(idle_seconds)
        self.max_seconds = int(max_seconds)

    def _mac(self, purpose: str, data: str) -> str:
        return _b64(hmac.new(self._key, f"{purpose}:{data}".encode(), hashlib.sha256).digest())

    def open(self, username: str, role: str, at: float | None = None) -> Session:
        at = int(at if at is not None else time.time())
        return Session(username, role, secrets.token_urlsafe(16), at, at + self.idle_seconds)

    def renew(self, session: Session, at: float | None = None) -> Session:
        """Slide the idle expiry, never past the session's maximum age."""
        at = int(at if at is not None else time.time())
        expires = min(at + self.idle_seconds, session.issued_at + self.max_seconds)
        return Session(session.username, session.role, session.sid, session.issued_at, expires)

    def encode(self, session: Session) -> str:
        fields = {
            "u": session.username,
            "r": session.role,
            "s": session.sid,
            "i": session.issued_at,
            "e": session.expires_at,
        }
        payload = _b64(json.dumps(fields, separators=(",", ":"), sort_keys=True).encode())
        return f"{payload}.{self._mac('session', payload)}"

    def decode(self, cookie: str | None, at: float | None = None) -> Session | None:
        """The session, or None if absent, forged, malformed or expired."""
        if not cookie or cookie.count(".") != 1:
            return None
        payload, mac = cookie.split(".")
        if not hmac.compare_digest(mac, self._mac("session", payload)):
            return None
        try:
            fields = json.loads(_unb64(payload))
            session = Session(
                str(fields["u"]), str(fields["r"]), str(fields["s"]), int(fields["i"]), int(fields["e"])
            )
        except (ValueError, KeyError, TypeError):
            return None
        now = at if at is not None else time.time()
        if now >= session.expires_at or now >= session.issued_at + self.max_seconds:
            return None
        return session

    def csrf(self, session: Session) -> str:
        return self._mac("csrf", session.sid)

    def csrf_ok(self, session: Session, token: str | None) -> bool:
        return bool(token) and hmac.compare_digest(str(token), self.csrf(session))

    def login_csrf(self, nonce: str) -> str:
        return self._mac("login", nonce)

    def login_csrf_ok(self, nonce: str | None, token: str | None) -> bool:
        return bool(nonce) and bool(token) and hmac.compare_digest(str(token), self.login_csrf(str(nonce)))
