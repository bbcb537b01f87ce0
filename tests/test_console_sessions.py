"""Console sessions are held server side as well as in the signed cookie: signing out ends the session for
every api process at once, so a cookie copied before sign-out is refused after it; a session ends
``ops.session_max_hours`` after sign-in whatever the activity. Sign-in attempts are throttled per address
and per account (429 with Retry-After), and password checks run on a small bounded pool (503 at once
when it is full)."""

from __future__ import annotations

import asyncio
import threading
import time
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from gateway.ops import operators
from gateway.web.app import create_app
from gateway.web.console import signin
from gateway.web.console.session import COOKIE, SessionCodec, SessionStore, derive_key
from gateway.web.context import SERVICES
from tests.conftest import World, make_world
from tests.support.console import TEST_PASSWORD, add_operator, csrf_of, operator_client


def session_cookie(client: TestClient[Any, Any]) -> str:
    cookie = next(c for c in client.session.cookie_jar if c.key == COOKIE)
    return cookie.value


def use_cookie(client: TestClient[Any, Any], value: str) -> None:
    client.session.cookie_jar.clear()
    client.session.cookie_jar.update_cookies({COOKIE: value})


async def page_status(client: TestClient[Any, Any]) -> int:
    return (await client.get("/ops/", allow_redirects=False)).status


async def test_a_cookie_copied_before_sign_out_is_refused_after_it_by_every_api_process(
    world: World, aiohttp_client: Any
) -> None:
    first: TestClient[Any, Any] = await aiohttp_client(create_app(world.settings))
    second: TestClient[Any, Any] = await aiohttp_client(create_app(world.settings))  # same database
    csrf = await operator_client(first, world.settings)
    copied = session_cookie(first)
    use_cookie(second, copied)
    assert await page_status(second) == 200  # any process accepts a session another one opened

    resp = await first.post("/ops/logout", data={"csrf": csrf}, allow_redirects=False)
    assert resp.status == 303
    use_cookie(first, copied)
    assert await page_status(first) == 302
    assert await page_status(second) == 302
    assert (await second.get("/ops/api/overview")).status == 401


async def test_renewal_never_extends_a_session_past_its_absolute_end(world: World, api: Any) -> None:
    max_seconds = world.settings.ops.session_max_hours * 3600
    assert max_seconds == 8 * 3600  # the shipped value
    codec = SessionCodec(derive_key(api.app[SERVICES].signer), 30 * 60, max_seconds)
    store = SessionStore(api.app[SERVICES].db, max_seconds)
    issued = time.time() - max_seconds + 60
    session = codec.open("olga", "operator", at=issued)
    await store.open(session)
    renewed = codec.renew(session)
    assert renewed.expires_at <= issued + max_seconds
    assert await store.live(renewed)
    assert not await store.live(renewed, at=issued + max_seconds + 1)  # whatever the cookie says


@pytest.fixture
def throttled_world(tmp_path: Path, fresh_database_url: str) -> World:
    return make_world(
        tmp_path,
        fresh_database_url,
        ops={"signin_rate_per_address": "3/minute"},
    )


async def attempt(client: TestClient[Any, Any], username: str, password: str) -> Any:
    page = await client.get("/ops/login")
    return await client.post(
        "/ops/login",
        data={"csrf": csrf_of(await page.text()), "username": username, "password": password},
        allow_redirects=False,
    )


async def test_sign_in_is_throttled_per_account_with_retry_after(
    tmp_path: Path, fresh_database_url: str, aiohttp_client: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    world = make_world(tmp_path, fresh_database_url, ops={"signin_failures_per_account": "2/minute"})
    client: TestClient[Any, Any] = await aiohttp_client(create_app(world.settings))
    add_operator(world.settings, "olga")
    add_operator(world.settings, "ann")
    assert [(await attempt(client, "olga", "wrong password!")).status for _ in range(2)] == [401, 401]
    # The account is past its failures: even its right password waits, and no hashing is spent on it.
    checks: list[str] = []
    real = operators.authenticate  # the function the sign-in page imports

    def counted(
        accounts: dict[str, operators.Operator], username: str, password: str
    ) -> operators.Operator | None:
        checks.append(username)
        return real(accounts, username, password)

    monkeypatch.setattr(signin, "authenticate", counted)
    resp = await attempt(client, "olga", TEST_PASSWORD)
    assert resp.status == 429
    assert int(resp.headers["Retry-After"]) >= 1
    assert checks == []
    # Another account from the same address is not held back by olga's failures.
    assert (await attempt(client, "ann", TEST_PASSWORD)).status == 303


async def test_sign_in_is_throttled_per_address_with_retry_after(
    throttled_world: World, aiohttp_client: Any
) -> None:
    world = throttled_world
    client: TestClient[Any, Any] = await aiohttp_client(create_app(world.settings))
    add_operator(world.settings, "olga")
    statuses = [(await attempt(client, name, "wrong password!")).status for name in ("a", "b", "c")]
    assert statuses == [401, 401, 401]
    resp = await attempt(client, "olga", TEST_PASSWORD)  # a fourth attempt, another account
    assert resp.status == 429
    assert 1 <= int(resp.headers["Retry-After"]) <= 60
    assert "Too many sign-in attempts" in await resp.text()


async def test_a_full_password_check_pool_answers_503_at_once(
    tmp_path: Path, fresh_database_url: str, aiohttp_client: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    world = make_world(
        tmp_path,
        fresh_database_url,
        ops={"signin_workers": 1, "signin_queue": 0, "signin_budget_seconds": 30},
    )
    client: TestClient[Any, Any] = await aiohttp_client(create_app(world.settings))
    add_operator(world.settings, "olga")
    release = threading.Event()
    started = threading.Event()

    def slow(accounts: dict[str, operators.Operator], username: str, password: str) -> Any:
        started.set()
        release.wait(30)
        return operators.authenticate(accounts, username, password)

    monkeypatch.setattr(signin, "authenticate", slow)
    held = asyncio.create_task(attempt(client, "olga", TEST_PASSWORD))
    await asyncio.to_thread(started.wait, 30)
    try:
        resp = await attempt(client, "olga", TEST_PASSWORD)
        assert resp.status == 503
        assert int(resp.headers["Retry-After"]) >= 1
    finally:
        release.set()
    assert (await held).status == 303


async def test_a_password_check_over_its_budget_answers_503(
    tmp_path: Path, fresh_database_url: str, aiohttp_client: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    world = make_world(tmp_path, fresh_database_url, ops={"signin_budget_seconds": 0.2})
    client: TestClient[Any, Any] = await aiohttp_client(create_app(world.settings))
    add_operator(world.settings, "olga")
    release = threading.Event()

    def stuck(accounts: dict[str, operators.Operator], username: str, password: str) -> Any:
        release.wait(30)
        return None

    monkeypatch.setattr(signin, "authenticate", stuck)
    try:
        assert (await attempt(client, "olga", TEST_PASSWORD)).status == 503
    finally:
        release.set()
