"""Single-use bearer tokens: a token's ``jti`` is accepted once, by whichever api process sees it first.

Self-signed tokens were good until ``exp``: a token copied from a log, a proxy or a client's memory could be
sent again for up to an hour. With ``auth.single_use_tokens`` every id is remembered until its token
expires (after that the token is refused anyway), in a store all api processes share: the database
(``token_uses``), or Redis when the deployment already shares rate limits there
(``api.rate_limit_storage = "redis://…"``).

The database write is one ``INSERT … ON CONFLICT DO NOTHING``: the row counts say whether this request
was first. On SQLite it joins the group commit (:meth:`Database.write`), so it shares the fsync of the
intake writes arriving with it. Expired rows are deleted a bounded batch at a time, at most once per
:data:`PRUNE_EVERY_SECONDS` per process. Each process also remembers the ids it saw used, so a replay to
the same process is refused without a query.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import Protocol

from cachetools import TLRUCache
from sqlalchemy import delete, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncConnection

from gateway.storage.database import Database
from gateway.storage.engine import is_sqlite
from gateway.storage.tables import token_uses

#: Expired rows go at most this often per process, at most :data:`PRUNE_BATCH` at a time.
PRUNE_EVERY_SECONDS = 30.0
PRUNE_BATCH = 1000
#: Ids this process saw used, remembered so a replay to it needs no query.
REMEMBERED = 50_000


class TokenUses(Protocol):
    async def claim(self, issuer: str, jti: str, expires: float) -> bool:
        """True the first time ``(issuer, jti)`` is claimed before ``expires`` (Unix time), else False."""
        ...

    async def close(self) -> None:
        """Release what the store holds (connections)."""
        ...


class _Seen:
    """The ids this process saw used, each until its token expires."""

    def __init__(self) -> None:
        self._ids: TLRUCache[tuple[str, str], float] = TLRUCache(
            maxsize=REMEMBERED, ttu=lambda _key, expires, _now: expires, timer=time.time
        )

    def __contains__(self, key: tuple[str, str]) -> bool:
        return key in self._ids

    def add(self, key: tuple[str, str], expires: float) -> None:
        self._ids[key] = expires


class DatabaseTokenUses:
    """``token_uses`` in the gateway's database (SQLite or PostgreSQL)."""

    def __init__(self, db: Database) -> None:
        self._db = db
        self._insert = sqlite.insert if is_sqlite(db.url) else postgresql.insert
        self._seen = _Seen()
        self._next_prune = 0.0

    async def claim(self, issuer: str, jti: str, expires: float) -> bool:
        key = (issuer, jti)
        if key in self._seen:
            return False
        row = {"issuer": issuer, "jti": jti, "expires_at": datetime.fromtimestamp(expires, UTC)}
        statement = self._insert(token_uses).values(row).on_conflict_do_nothing()

        async def first(conn: AsyncConnection) -> bool:
            return (await conn.execute(statement)).rowcount == 1

        taken = await self._db.write(first)
        self._seen.add(key, expires)  # either way it is used now: a replay here needs no query
        if not taken:
            return False
        if time.monotonic() >= self._next_prune:
            self._next_prune = time.monotonic() + PRUNE_EVERY_SECONDS
            await self.prune()
        return True

    async def prune(self, at: float | None = None) -> int:
        """Delete up to :data:`PRUNE_BATCH` rows of expired tokens; how many went."""
        now = datetime.fromtimestamp(at if at is not None else time.time(), UTC)

        async def remove(conn: AsyncConnection) -> int:
            expired = (
                select(token_uses.c.jti)
                .where(token_uses.c.expires_at < now)
                .order_by(token_uses.c.expires_at)
                .limit(PRUNE_BATCH)
            )
            jtis = list((await conn.execute(expired)).scalars())
            if not jtis:
                return 0
            gone = await conn.execute(
                delete(token_uses).where(token_uses.c.expires_at < now, token_uses.c.jti.in_(jtis))
            )
            return int(gone.rowcount)

        return await self._db.write(remove)

    async def close(self) -> None:
        return None


class RedisTokenUses:
    """One Redis key per id, ``SET NX`` with the token's expiry: Redis forgets it when the token would be
    refused anyway, so nothing needs pruning."""

    def __init__(self, url: str, prefix: str = "gw:jti:") -> None:
        from redis.asyncio import Redis

        self._redis = Redis.from_url(url)
        self._prefix = prefix
        self._seen = _Seen()

    async def claim(self, issuer: str, jti: str, expires: float) -> bool:
        key = (issuer, jti)
        if key in self._seen:
            return False
        # Past its expiry a token is refused before it gets here; a key must still live at least 1 s.
        ttl = max(1, int(expires - time.time()) + 1)
        first = await self._redis.set(f"{self._prefix}{issuer}:{jti}", b"1", nx=True, ex=ttl)
        self._seen.add(key, expires)
        return bool(first)

    async def close(self) -> None:
        await self._redis.aclose()


def token_uses_store(db: Database, rate_limit_storage: str, namespace: str = "gw") -> TokenUses:
    """Redis when the deployment shares its rate limits there, the database otherwise."""
    if rate_limit_storage.startswith(("redis://", "rediss://", "redis+unix://")):
        url = rate_limit_storage.replace("redis+unix://", "unix://", 1)
        return RedisTokenUses(url, prefix=f"{namespace}:jti:")
    return DatabaseTokenUses(db)
