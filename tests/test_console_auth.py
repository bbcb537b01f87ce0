"""Console sign-in: accounts from the operators file only, signed expiring sessions, CSRF on every
form, auditors read only, every sign-in and sign-out audited."""

from __future__ import annotations

import time
from typing import Any

from aiohttp.test_utils import TestClient
from sqlalchemy import select

from gateway.ops import operators
from gateway.storage.database import Database
from gateway.storage.tables import audit_log
from gateway.web.console.session import COOKIE, SessionCodec, SessionStore, derive_key
from gateway.web.context import SERVICES
from tests.conftest import World
from tests.support.console import TEST_PASSWORD, add_operator, csrf_of, operator_client, sign_in


async def audit_rows(world: World, action_prefix: str = "ops.") -> list[Any]:
    db = Database(world.settings.resolved_database_url)
    try:
        async with db.read() as conn:
            rows = await conn.execute(
                select(audit_log).where(audit_log.c.action.startswith(action_prefix)).order_by(audit_log.c.id)
            )
            return list(rows)
    finally:
        await db.dispose()


async def test_unauthenticated_pages_redirect_to_sign_in(api: TestClient[Any, Any]) -> None:
    for path in ("/ops/", "/ops/messages", "/ops/parking", "/ops/partners", "/ops/stuck"):
        resp = await api.get(path, allow_redirects=False)
        assert resp.status == 302, path
        assert resp.headers["Location"].startswith("/ops/login?next=")
    resp = await api.get("/ops/api/overview")
    assert resp.status == 401
    resp = await api.get("/ops", allow_redirects=False)
    assert resp.status == 302 and resp.headers["Location"] == "/ops/"


async def test_without_an_operators_file_nobody_signs_in(world: World, api: TestClient[Any, Any]) -> None:
    page = await api.get("/ops/login")
    html = await page.text()
    assert 'id="no-accounts"' in html and 'form id="login"' in html
    assert page.headers["Content-Security-Policy"].startswith("default-src 'self'")
    body = await sign_in(api, "admin", "admin", expect=401)
    assert body == ""


async def test_sign_in_ok_and_bad_password_are_audited(world: World, api: TestClient[Any, Any]) -> None:
    add_operator(world.settings, "olga")
    page = await api.get("/ops/login")
    resp = await api.post(
        "/ops/login",
        data={"csrf": csrf_of(await page.text()), "username": "olga", "password": "wrong password!"},
    )
    assert resp.status == 401
    assert "flash-error" in await resp.text()

    page = await api.get("/ops/login")
    resp = await api.post(
        "/ops/login",
        data={"csrf": csrf_of(await page.text()), "username": "olga", "password": TEST_PASSWORD},
        allow_redirects=False,
    )
    assert resp.status == 303 and resp.headers["Location"] == "/ops/"
    cookie = resp.cookies[COOKIE]
    assert cookie["httponly"] and cookie["samesite"] == "Strict" and cookie["path"] == "/ops"
    overview = await api.get("/ops/")
    assert overview.status == 200
    html = await overview.text()
    assert 'id="logout"' in html and "olga" in html

    rows = await audit_rows(world)
    assert [(r.actor, r.action, r.outcome) for r in rows] == [
        ("olga", "ops.signin", "failed"),
        ("olga", "ops.signin", "ok"),
    ]


async def test_sign_out_needs_csrf_and_ends_the_session(world: World, api: TestClient[Any, Any]) -> None:
    csrf = await operator_client(api, world.settings)
    refused = await api.post("/ops/logout", data={"csrf": "forged"})
    assert refused.status == 403
    assert (await api.get("/ops/", allow_redirects=False)).status == 200
    out = await api.post("/ops/logout", data={"csrf": csrf}, allow_redirects=False)
    assert out.status == 303 and out.headers["Location"] == "/ops/login"
    assert (await api.get("/ops/", allow_redirects=False)).status == 302
    assert [r.action for r in await audit_rows(world)][-1] == "ops.signout"


async def test_sign_in_form_is_csrf_protected(world: World, api: TestClient[Any, Any]) -> None:
    add_operator(world.settings, "olga")
    resp = await api.post("/ops/login", data={"csrf": "x", "username": "olga", "password": TEST_PASSWORD})
    assert resp.status == 403


def use_cookie(api: TestClient[Any, Any], value: str) -> None:
    api.session.cookie_jar.clear()
    api.session.cookie_jar.update_cookies({COOKIE: value})


async def test_expired_forged_and_revoked_sessions_are_refused(
    world: World, api: TestClient[Any, Any]
) -> None:
    await operator_client(api, world.settings)
    codec = SessionCodec(derive_key(api.app[SERVICES].signer), 60)
    expired = codec.encode(codec.open("olga", "operator", at=time.time() - 3600))
    use_cookie(api, expired)
    assert (await api.get("/ops/", allow_redirects=False)).status == 302

    session = codec.open("olga", "operator")
    valid = codec.encode(session)
    use_cookie(api, valid)
    # Well signed, but never opened by a sign-in: no session row, refused.
    assert (await api.get("/ops/", allow_redirects=False)).status == 302
    await SessionStore(api.app[SERVICES].db, 3600).open(session)
    assert (await api.get("/ops/", allow_redirects=False)).status == 200
    use_cookie(api, valid[:-2] + "xx")
    assert (await api.get("/ops/", allow_redirects=False)).status == 302
    # A role claimed in the cookie must be the account's role now.
    use_cookie(api, codec.encode(codec.open("olga", "auditor")))
    assert (await api.get("/ops/", allow_redirects=False)).status == 302
    # Removing the account ends its sessions at once.
    use_cookie(api, valid)
    path = world.settings.path(world.settings.ops.operators_file)
    path.write_text("")
    assert (await api.get("/ops/", allow_redirects=False)).status == 302


def test_operators_file_holds_argon2_hashes_only(world: World) -> None:
    username, password = add_operator(world.settings, "ann.auditor", "auditor")
    path = world.settings.path(world.settings.ops.operators_file)
    text = path.read_text()
    assert password not in text and "$argon2id$" in text
    assert path.stat().st_mode & 0o077 == 0
    accounts = operators.load(path)
    assert accounts["ann.auditor"].role == "auditor"
    assert operators.authenticate(accounts, username, password) is not None
    assert operators.authenticate(accounts, username, "nope") is None
    assert operators.authenticate(accounts, "nobody", password) is None
