"""Signing in and out of the console: the sign-in page, the attempt (throttled, audited) and sign-out."""

from __future__ import annotations

import asyncio
import html
import secrets

from aiohttp import web

from gateway.domain.identifiers import scrub
from gateway.metrics import SIGNIN_ATTEMPTS
from gateway.storage.audit import AuditEntry
from gateway.web.console import PREFIX
from gateway.web.console.guard import is_secure, set_cookie
from gateway.web.console.pages import (
    audit,
    form_text,
    operator_of,
    refused,
    render,
    services_of,
    session_of,
    state_of,
)
from gateway.web.console.session import COOKIE, LOGIN_COOKIE
from gateway.web.console.signin import Busy, Throttled


def _safe_next(value: str | None) -> str:
    if value and value.startswith(f"{PREFIX}/") and not value.startswith("//") and "\\" not in value:
        return value
    return f"{PREFIX}/"


async def login_page(request: web.Request, error: str = "", status: int = 200) -> web.Response:
    state = state_of(request)
    codec = state.codec_for(services_of(request))
    nonce = request.cookies.get(LOGIN_COOKIE) or secrets.token_urlsafe(16)
    accounts, file_error = state.accounts()
    context = {
        "page": "login",
        "error": error,
        "login_csrf": codec.login_csrf(nonce),
        "next": _safe_next(request.query.get("next")),
        "no_accounts": not accounts,
        "file_error": file_error,
        "operators_file": str(state.operators.path),
    }
    response = render(request, "login.html", context, status=status)
    response.set_cookie(
        LOGIN_COOKIE,
        nonce,
        max_age=3600,
        path=PREFIX,
        httponly=True,
        samesite="Strict",
        secure=is_secure(request),
    )
    return response


async def login_get(request: web.Request) -> web.StreamResponse:
    return await login_page(request)


async def login_post(request: web.Request) -> web.StreamResponse:
    state = state_of(request)
    services = services_of(request)
    codec = state.codec_for(services)
    gate = state.signin_gate()
    form = await request.post()
    if not codec.login_csrf_ok(request.cookies.get(LOGIN_COOKIE), form_text(form, "csrf")):
        return refused(request, "The sign-in form is stale (CSRF check failed): reload it and try again.")
    username = form_text(form, "username")[:64]
    password = form.get("password")
    accounts, _ = state.accounts()
    account = None
    try:
        # Counted before any hashing: past the limits an attempt costs nothing but this.
        gate.admit(request.remote or "unknown", username)
        if isinstance(password, str) and password and username:
            account = await gate.check(accounts, username, password)
    except Throttled as exc:
        SIGNIN_ATTEMPTS.labels("throttled").inc()
        await asyncio.sleep(state.settings.ops.signin_refusal_delay_seconds)
        return _retry_later(429, f"Too many sign-in attempts: {exc.why}.", exc.retry_after)
    except Busy as exc:
        SIGNIN_ATTEMPTS.labels("busy").inc()
        await asyncio.sleep(state.settings.ops.signin_refusal_delay_seconds)
        return _retry_later(503, "Sign-in is busy: try again in a moment.", exc.retry_after)
    if account is None:
        SIGNIN_ATTEMPTS.labels("failed").inc()
        gate.failed(username)
        await audit(
            request,
            AuditEntry(
                actor=scrub(username or "anonymous")[:64],
                action="ops.signin",
                outcome="failed",
                status_code=401,
                reason="unknown operator or wrong password",
                data={"remote": request.remote},
            ),
        )
        return await login_page(request, "Unknown operator or wrong password.", status=401)
    SIGNIN_ATTEMPTS.labels("ok").inc()
    session = codec.open(account.username, account.role)
    await state.sessions_for(services).open(session)
    await audit(
        request,
        AuditEntry(
            actor=account.username,
            action="ops.signin",
            outcome="ok",
            status_code=303,
            data={"role": account.role, "remote": request.remote, "session": session.sid[:8]},
        ),
    )
    response = web.HTTPSeeOther(_safe_next(form_text(form, "next")))
    set_cookie(request, response, codec.encode(session), codec.idle_seconds)
    response.del_cookie(LOGIN_COOKIE, path=PREFIX)
    raise response


def _retry_later(status: int, why: str, retry_after: int) -> web.Response:
    """``why``, answered ``status`` with ``Retry-After``: a fixed short page, no template, so that a
    flood of refused attempts costs the api as little as possible."""
    body = (
        '<!doctype html><html lang="en"><head><meta charset="utf-8"><title>Sign-in: retry later</title>'
        f'</head><body><p role="alert">{html.escape(why)} Retry in {retry_after} s: '
        f'<a href="{PREFIX}/login">sign in</a>.</p></body></html>'
    )
    return web.Response(
        text=body, status=status, content_type="text/html", headers={"Retry-After": str(retry_after)}
    )


async def logout(request: web.Request) -> web.StreamResponse:
    account = operator_of(request)
    # Revoked before the cookie is deleted: a copy of it is refused by every api process from now on.
    await state_of(request).sessions_for(services_of(request)).revoke(session_of(request).sid)
    await audit(request, AuditEntry(actor=account.username, action="ops.signout", outcome="ok"))
    response = web.HTTPSeeOther(f"{PREFIX}/login")
    response.del_cookie(COOKIE, path=PREFIX)
    raise response
