"""A bearer token is accepted once: a copied token sent again is refused 401 "token already used", by
every api process sharing the database, whether or not the first one remembered the token as verified.
The ids are kept until their token expires, on SQLite, PostgreSQL, or Redis, then pruned."""

from __future__ import annotations

import time
import uuid
from datetime import UTC, datetime
from typing import Any

import pytest
from aiohttp.test_utils import TestClient
from sqlalchemy import func, insert, select

from gateway.security import replay
from gateway.security.replay import DatabaseTokenUses, RedisTokenUses
from gateway.storage.database import Database
from gateway.storage.tables import token_uses
from gateway.web.app import create_app
from tests.conftest import World, fresh_judgment, make_world


async def push(api: TestClient[Any, Any], token: str) -> Any:
    return await api.post(
        "/v1/judgments", json=fresh_judgment(), headers={"Authorization": f"Bearer {token}"}
    )


async def test_a_token_sent_again_is_refused_as_already_used(api: TestClient[Any, Any], world: World) -> None:
    token = world.court.token(world.settings)
    assert (await push(api, token)).status == 202
    again = await push(api, token)
    assert again.status == 401
    assert again.content_type == "application/problem+json"
    problem = await again.json()
    assert problem["type"].endswith("/unauthorized")
    assert "token already used" in problem["detail"]
    assert "Bearer" in again.headers["WWW-Authenticate"]
    # A fresh token of the same client goes through: only the copy is refused.
    assert (await push(api, world.court.token(world.settings))).status == 202


async def test_a_token_used_on_one_api_process_is_refused_by_another(
    world: World, aiohttp_client: Any
) -> None:
    first = await aiohttp_client(create_app(world.settings))
    second = await aiohttp_client(create_app(world.settings))  # another process, the same database
    token = world.court.token(world.settings)
    assert (await push(first, token)).status == 202
    resp = await push(second, token)
    assert resp.status == 401
    assert "token already used" in (await resp.json())["detail"]
    # The other way round too, on a read: the second process saw it first this time.
    token = world.case_system.token(world.settings)
    message = f"/v1/messages/{uuid.uuid4()}"
    assert (await second.get(message, headers={"Authorization": f"Bearer {token}"})).status == 404
    assert (await first.get(message, headers={"Authorization": f"Bearer {token}"})).status == 401


async def test_the_verified_token_cache_lets_no_used_token_through(
    api: TestClient[Any, Any], world: World
) -> None:
    # The first use verified the token and remembered it as verified; the memory spares the signature
    # check only, never the single use.
    token = world.case_system.token(world.settings)
    headers = {"Authorization": f"Bearer {token}"}
    assert (await api.get(f"/v1/messages/{uuid.uuid4()}", headers=headers)).status == 404
    for _ in range(3):
        assert (await api.get(f"/v1/messages/{uuid.uuid4()}", headers=headers)).status == 401


async def test_with_single_use_off_a_token_is_reused_until_it_expires(
    tmp_path: Any, fresh_database_url: str, aiohttp_client: Any
) -> None:
    world = make_world(tmp_path, fresh_database_url, auth={"single_use_tokens": False})
    api = await aiohttp_client(create_app(world.settings))
    token = world.court.token(world.settings)
    assert [(await push(api, token)).status for _ in range(2)] == [202, 202]


def test_the_shipped_configuration_makes_tokens_single_use(world: World) -> None:
    assert world.settings.auth.single_use_tokens is True


# --- the store -----------------------------------------------------------------------------------------


async def test_an_id_is_claimed_once_per_issuer(db: Database) -> None:
    expires = time.time() + 300
    uses = DatabaseTokenUses(db)
    assert await uses.claim("TAND-HN", "jti-1", expires) is True
    assert await uses.claim("TAND-HN", "jti-1", expires) is False
    assert await uses.claim("THADS-HN", "jti-1", expires) is True  # each client chooses its own ids
    # Another process (its own memory empty) is refused by the database itself.
    assert await DatabaseTokenUses(db).claim("TAND-HN", "jti-1", expires) is False


async def test_expired_ids_are_pruned_a_bounded_batch_at_a_time(
    db: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(replay, "PRUNE_BATCH", 3)
    past = datetime.fromtimestamp(time.time() - 60, UTC)
    future = datetime.fromtimestamp(time.time() + 600, UTC)
    async with db.transaction() as conn:
        await conn.execute(
            insert(token_uses),
            [{"issuer": "TAND-HN", "jti": f"old-{i}", "expires_at": past} for i in range(5)]
            + [{"issuer": "TAND-HN", "jti": "live", "expires_at": future}],
        )
    uses = DatabaseTokenUses(db)
    assert await uses.prune() == 3
    assert await uses.prune() == 2
    assert await uses.prune() == 0
    async with db.read() as conn:
        left = (await conn.execute(select(token_uses.c.jti))).scalars().all()
        assert left == ["live"]
        assert (await conn.execute(select(func.count()).select_from(token_uses))).scalar_one() == 1


async def test_redis_keeps_an_id_once_until_its_token_expires() -> None:
    redis = pytest.importorskip("redis.asyncio")
    probe = redis.Redis.from_url("redis://127.0.0.1:6379/15")
    try:
        await probe.ping()
    except (OSError, redis.ConnectionError):
        pytest.skip("no Redis on 127.0.0.1:6379")
    finally:
        await probe.aclose()
    prefix = f"test:{uuid.uuid4().hex}:"
    uses = RedisTokenUses("redis://127.0.0.1:6379/15", prefix=prefix)
    other = RedisTokenUses("redis://127.0.0.1:6379/15", prefix=prefix)  # another api process
    try:
        expires = time.time() + 5
        assert await uses.claim("TAND-HN", "jti-1", expires) is True
        assert await uses.claim("TAND-HN", "jti-1", expires) is False
        assert await other.claim("TAND-HN", "jti-1", expires) is False
        ttl = await other._redis.ttl(f"{prefix}TAND-HN:jti-1")
        assert 0 < ttl <= 7  # forgotten when the token would be refused anyway
    finally:
        await uses.close()
        await other.close()
