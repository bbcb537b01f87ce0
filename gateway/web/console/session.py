"""Console sessions: a signed, expiring cookie naming a session row, and CSRF tokens tied to it.

The cookie carries the operator, the role, a random session id and its idle expiry, MACed with
HMAC-SHA256 under a key derived from the receipt signing key (every api process has that key already;
Ed25519 signatures are deterministic, so each derives the same MAC key). Rotating the signing key signs
everybody out.

A signed cookie alone could not be taken back: a copy made before sign-out kept working, renewed, for
hours. So the session also lives in the database (``console_sessions``, :class:`SessionStore`), which
every api process reads on every console request: signing out revokes the row, and a copy of the cookie
is refused by all of them at once. The row holds the absolute end of the session (``ops.session_max_hours``
after sign-in); renewing the cookie only slides the idle expiry, never past it.

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
from datetime import UTC, datetime
from typing import Final

from sqlalchemy import delete, insert, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from gateway.security.signing import Signer
from gateway.storage.database import Database
from gateway.storage.tables import console_sessions

COOKIE: Final = "gw_ops_session"
LOGIN_COOKIE: Final = "gw_ops_login"  # pre-session nonce: the sign-in form is CSRF-protected too
#: However active, a session ends after this long (sign in again); ``ops.session_max_hours`` sets it.
MAX_SESSION_SECONDS: Final = 8 * 3600


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


#: Rows of ended sessions are deleted at most this often per process, at most this many at a time.
PRUNE_EVERY_SECONDS: Final = 300.0
PRUNE_BATCH: Final = 500


def _at(seconds: float) -> datetime:
    return datetime.fromtimestamp(seconds, UTC)


class SessionStore:
    """The server side of console sessions: opened at sign-in, revoked at sign-out, checked on every
    request by whichever api process serves it."""

    def __init__(self, db: Database, max_seconds: float) -> None:
        self._db = db
        self.max_seconds = int(max_seconds)
        self._next_prune = 0.0

    async def open(self, session: Session) -> None:
        """Record a new session; it ends ``max_seconds`` after it was issued, however active."""
        row = {
            "sid": session.sid,
            "username": session.username,
            "role": session.role,
            "issued_at": _at(session.issued_at),
            "expires_at": _at(session.issued_at + self.max_seconds),
        }

        async def write(conn: AsyncConnection) -> None:
            await conn.execute(insert(console_sessions).values(row))

        await self._db.write(write)
        if time.monotonic() >= self._next_prune:
            self._next_prune = time.monotonic() + PRUNE_EVERY_SECONDS
            await self.prune()

    async def live(self, session: Session, at: float | None = None) -> bool:
        """Whether the cookie's session is open here: recorded, for the same operator and role, not
        revoked and not past its absolute end."""
        now = _at(at if at is not None else time.time())
        async with self._db.read() as conn:
            row = (
                await conn.execute(
                    select(console_sessions.c.username, console_sessions.c.role).where(
                        console_sessions.c.sid == session.sid,
                        console_sessions.c.revoked_at.is_(None),
                        console_sessions.c.expires_at > now,
                    )
                )
            ).first()
        return row is not None and row.username == session.username and row.role == session.role

    async def revoke(self, sid: str) -> None:
        """Sign-out: the session is refused by every api process from now on."""

        async def write(conn: AsyncConnection) -> None:
            await conn.execute(
                update(console_sessions)
                .where(console_sessions.c.sid == sid, console_sessions.c.revoked_at.is_(None))
                .values(revoked_at=_at(time.time()))
            )

        await self._db.write(write)

    async def prune(self, at: float | None = None) -> int:
        """Delete up to :data:`PRUNE_BATCH` rows of sessions that ended (expired); how many went."""
        now = _at(at if at is not None else time.time())

        async def write(conn: AsyncConnection) -> int:
            ended = (
                select(console_sessions.c.sid).where(console_sessions.c.expires_at < now).limit(PRUNE_BATCH)
            )
            sids = list((await conn.execute(ended)).scalars())
            if not sids:
                return 0
            gone = await conn.execute(delete(console_sessions).where(console_sessions.c.sid.in_(sids)))
            return int(gone.rowcount)

        return await self._db.write(write)
