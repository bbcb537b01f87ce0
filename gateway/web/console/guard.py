"""The console's middleware: sign-in for every page but the sign-in page, CSRF for every POST, security
headers on every answer, and the session cookie (slid forward by activity)."""

from __future__ import annotations

from typing import Final
from urllib.parse import quote

from aiohttp import web
from aiohttp.typedefs import Handler

from gateway.web.console import PREFIX
from gateway.web.console.pages import (
    OPERATOR_KEY,
    SESSION_KEY,
    form_text,
    refused,
    services_of,
    state_of,
)
from gateway.web.console.session import COOKIE

#: Routes reachable without a session.
PUBLIC: Final = frozenset({"ops.login", "ops.login.post", "ops.static"})

SECURITY_HEADERS: Final = {
    "Content-Security-Policy": (
        "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
        "connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "same-origin",
    "Cache-Control": "no-store",
}


def _secure_headers(response: web.StreamResponse) -> web.StreamResponse:
    for name, value in SECURITY_HEADERS.items():
        response.headers.setdefault(name, value)
    return response


@web.middleware
async def guard(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Sign-in for every page but the sign-in page; CSRF for every POST; the role for every action."""
    if request.path == PREFIX:
        raise web.HTTPFound(f"{PREFIX}/")
    route = request.match_info.route.name or ""
    if route in PUBLIC:
        return _secure_headers(await handler(request))
    state = state_of(request)
    codec = state.codec_for(services_of(request))
    session = codec.decode(request.cookies.get(COOKIE))
    accounts, _ = state.accounts()
    account = accounts.get(session.username) if session else None
    # The cookie's MAC proves where it came from; the session row whether it is still open (signed
    # out anywhere, past its absolute end: refused here too).
    if session is not None and not await state.sessions_for(services_of(request)).live(session):
        session = None
    if session is None or account is None or account.role != session.role:
        if request.path.startswith(f"{PREFIX}/api/"):
            return _secure_headers(web.json_response({"error": "sign in first"}, status=401))
        target = request.path_qs if request.method == "GET" else f"{PREFIX}/"
        raise web.HTTPFound(f"{PREFIX}/login?next={quote(target, safe='')}")
    request[SESSION_KEY] = session
    request[OPERATOR_KEY] = account
    if request.method == "POST":
        form = await request.post()
        if not codec.csrf_ok(session, form_text(form, "csrf")):
            return _secure_headers(
                refused(request, "The form is missing its CSRF token or it is stale: reload the page.")
            )
    response = await handler(request)
    if not request.path.startswith(f"{PREFIX}/api/") and route != "ops.logout":
        # Activity slides the idle expiry; the overview's polling does not count as activity.
        set_cookie(request, response, codec.encode(codec.renew(session)), codec.idle_seconds)
    return _secure_headers(response)


def is_secure(request: web.Request) -> bool:
    """Cookies only over HTTPS when the api is reached over HTTPS: directly, or behind a balancer
    that terminates TLS (``api.public_url`` is then https)."""
    return request.secure or state_of(request).settings.api.public_url.startswith("https:")


def set_cookie(request: web.Request, response: web.StreamResponse, value: str, max_age: int) -> None:
    response.set_cookie(
        COOKIE,
        value,
        max_age=max_age,
        path=PREFIX,
        httponly=True,
        samesite="Strict",
        secure=is_secure(request),
    )
