"""Signing operators in to the console at /ops from tests (aiohttp test client or a browser)."""

from __future__ import annotations

import re
from typing import Any

from aiohttp.test_utils import TestClient

from gateway.ops import operators
from gateway.settings import Settings

#: Test accounts only: the gateway has no default account or password.
TEST_PASSWORD = "correct horse battery staple"
_CSRF = re.compile(r'name="csrf" value="([^"]+)"')


def add_operator(
    settings: Settings,
    username: str = "olga",
    role: operators.Role = "operator",
    password: str = TEST_PASSWORD,
) -> tuple[str, str]:
    """Write an account into the installation's operators file; returns (username, password)."""
    operators.add(settings.path(settings.ops.operators_file), username, role, password)
    return username, password


def csrf_of(html: str) -> str:
    """The CSRF token of the first form on a page."""
    match = _CSRF.search(html)
    assert match, "no csrf field on the page"
    return match.group(1)


async def sign_in(
    client: TestClient[Any, Any], username: str, password: str = TEST_PASSWORD, expect: int = 200
) -> str:
    """Sign in through the form, as a browser does; returns the session's CSRF token (the page after
    sign-in carries it). ``expect`` is the final status (401 for a refused sign-in)."""
    page = await client.get("/ops/login")
    assert page.status == 200
    resp = await client.post(
        "/ops/login",
        data={
            "csrf": csrf_of(await page.text()),
            "username": username,
            "password": password,
            "next": "/ops/",
        },
    )
    body = await resp.text()
    assert resp.status == expect, body[:2000]
    return csrf_of(body) if resp.status == 200 else ""


async def operator_client(
    client: TestClient[Any, Any],
    settings: Settings,
    username: str = "olga",
    role: operators.Role = "operator",
) -> str:
    """Create the account and sign it in on ``client``; returns the CSRF token for its forms."""
    add_operator(settings, username, role)
    return await sign_in(client, username)
