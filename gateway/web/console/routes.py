"""Pages and actions of the console. Reads go through :mod:`gateway.ops`; every action is audited
with the operator's username, what was done and the reason given."""

from __future__ import annotations

import asyncio
import html
import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final
from urllib.parse import quote

import aio_pika
import aiohttp_jinja2
import jinja2
from aio_pika.abc import AbstractRobustConnection
from aiohttp import web
from aiohttp.typedefs import Handler
from multidict import MultiDictProxy

from gateway.amqp.names import Names
from gateway.metrics import SIGNIN_ATTEMPTS
from gateway.ops import backlog, parking, partners, queues, status
from gateway.ops import messages as ops_messages
from gateway.ops.masking import mask_text
from gateway.ops.operators import Operator, OperatorFile, OperatorFileError
from gateway.partners import load_partners
from gateway.settings import Settings
from gateway.storage.audit import AuditEntry, append
from gateway.web.console.session import (
    COOKIE,
    LOGIN_COOKIE,
    Session,
    SessionCodec,
    SessionStore,
    derive_key,
)
from gateway.web.console.signin import Busy, SignInGate, Throttled
from gateway.web.context import SERVICES, Services

log = logging.getLogger(__name__)

WEB_DIR: Final = Path(__file__).resolve().parent.parent
TEMPLATES: Final = WEB_DIR / "templates" / "ops"
STATIC: Final = WEB_DIR / "static" / "ops"
PREFIX: Final = "/ops"
#: Routes reachable without a session.
PUBLIC: Final = frozenset({"ops.login", "ops.login.post", "ops.static"})
#: The overview is computed at most this often, whatever the number of open consoles.
OVERVIEW_CACHE_SECONDS: Final = 2.0
BROKER_RETRY_SECONDS: Final = 10.0
#: A broker that stops answering must not hang a page.
BROKER_READ_SECONDS: Final = 15.0
BROKER_ACTION_SECONDS: Final = 120.0
MAX_REASON: Final = 500
PARKING_PAGE: Final = 200

JINJA: Final = web.AppKey("ops_jinja", jinja2.Environment)

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


@dataclass
class ConsoleState:
    settings: Settings
    operators: OperatorFile
    codec: SessionCodec | None = None
    sessions: SessionStore | None = None
    gate: SignInGate | None = None
    broker: AbstractRobustConnection | None = None
    broker_failed_at: float = 0.0
    broker_lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    cached: tuple[float, status.Snapshot] | None = None

    def codec_for(self, services: Services) -> SessionCodec:
        if self.codec is None:
            self.codec = SessionCodec(
                derive_key(services.signer),
                self.settings.ops.session_minutes * 60,
                self.settings.ops.session_max_hours * 3600,
            )
        return self.codec

    def sessions_for(self, services: Services) -> SessionStore:
        if self.sessions is None:
            self.sessions = SessionStore(services.db, self.settings.ops.session_max_hours * 3600)
        return self.sessions

    def signin_gate(self) -> SignInGate:
        if self.gate is None:
            self.gate = SignInGate(self.settings.ops, self.settings.api.rate_limit_storage)
        return self.gate

    def accounts(self) -> tuple[dict[str, Operator], str]:
        try:
            return self.operators.accounts(), ""
        except OperatorFileError as exc:
            log.error("operators file unreadable: %s", exc)
            return {}, "The operators file cannot be read; nobody can sign in until it is fixed."

    async def connection(self) -> AbstractRobustConnection | None:
        """One broker connection per api process, opened on first use; after a failure, tried again
        only every few seconds so a down broker does not slow every page."""
        async with self.broker_lock:
            if self.broker is not None and not self.broker.is_closed:
                return self.broker
            if time.monotonic() - self.broker_failed_at < BROKER_RETRY_SECONDS and self.broker_failed_at:
                return None
            try:
                self.broker = await status.broker_connection(self.settings)
            except Exception as exc:  # any failure to connect: the page says the broker is unreachable
                log.warning("console: broker unreachable: %s", exc)
                self.broker_failed_at = time.monotonic()
                self.broker = None
            return self.broker

    async def close(self) -> None:
        if self.gate is not None:
            self.gate.close()
        if self.broker is not None:
            await self.broker.close()
            self.broker = None


STATE: Final = web.AppKey("ops_state", ConsoleState)
SESSION_KEY: Final = web.RequestKey("ops_session", Session)
OPERATOR_KEY: Final = web.RequestKey("ops_operator", Operator)


def _services(request: web.Request) -> Services:
    return request.config_dict[SERVICES]


def _state(request: web.Request) -> ConsoleState:
    return request.config_dict[STATE]


def _operator(request: web.Request) -> Operator:
    return request[OPERATOR_KEY]


def _session(request: web.Request) -> Session:
    return request[SESSION_KEY]


def _secure_headers(response: web.StreamResponse) -> web.StreamResponse:
    for name, value in SECURITY_HEADERS.items():
        response.headers.setdefault(name, value)
    return response


async def _audit(request: web.Request, entry: AuditEntry) -> None:
    async with _services(request).db.transaction() as conn:
        await append(conn, entry)


def render(
    request: web.Request, template: str, context: Mapping[str, Any], status: int = 200
) -> web.Response:
    base: dict[str, Any] = {"prefix": PREFIX, "operator": None, "csrf": ""}
    session = request.get(SESSION_KEY)
    if session is not None:
        base["operator"] = _operator(request)
        base["csrf"] = _state(request).codec_for(_services(request)).csrf(session)
    response = aiohttp_jinja2.render_template(
        template, request, base | dict(context), app_key=JINJA, status=status
    )
    return response


def not_found(request: web.Request, page: str, why: str) -> web.Response:
    return render(request, "error.html", {"title": "Not found", "message": why, "page": page}, status=404)


def refused(request: web.Request, why: str, status: int = 403) -> web.Response:
    return render(request, "error.html", {"title": "Refused", "message": why, "page": ""}, status=status)


def _form_text(form: MultiDictProxy[str | bytes | Any], name: str) -> str:
    value = form.get(name)
    return value.strip() if isinstance(value, str) else ""


@web.middleware
async def guard(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Sign-in for every page but the sign-in page; CSRF for every POST; the role for every action."""
    if request.path == PREFIX:
        raise web.HTTPFound(f"{PREFIX}/")
    route = request.match_info.route.name or ""
    if route in PUBLIC:
        return _secure_headers(await handler(request))
    state = _state(request)
    codec = state.codec_for(_services(request))
    session = codec.decode(request.cookies.get(COOKIE))
    accounts, _ = state.accounts()
    account = accounts.get(session.username) if session else None
    # The cookie's MAC proves where it came from; the session row whether it is still open (signed
    # out anywhere, past its absolute end: refused here too).
    if session is not None and not await state.sessions_for(_services(request)).live(session):
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
        if not codec.csrf_ok(session, _form_text(form, "csrf")):
            return _secure_headers(
                refused(request, "The form is missing its CSRF token or it is stale: reload the page.")
            )
    response = await handler(request)
    if not request.path.startswith(f"{PREFIX}/api/") and route != "ops.logout":
        # Activity slides the idle expiry; the overview's polling does not count as activity.
        _set_cookie(request, response, codec.encode(codec.renew(session)), codec.idle_seconds)
    return _secure_headers(response)


def _secure(request: web.Request) -> bool:
    """Cookies only over HTTPS when the api is reached over HTTPS: directly, or behind a balancer
    that terminates TLS (``api.public_url`` is then https)."""
    return request.secure or _state(request).settings.api.public_url.startswith("https:")


def _set_cookie(request: web.Request, response: web.StreamResponse, value: str, max_age: int) -> None:
    response.set_cookie(
        COOKIE,
        value,
        max_age=max_age,
        path=PREFIX,
        httponly=True,
        samesite="Strict",
        secure=_secure(request),
    )


def _requires_operator(request: web.Request) -> web.Response | None:
    if not _operator(request).may_act:
        return refused(request, "Your role (auditor) reads only: this action needs the operator role.")
    return None


# ---------------------------------------------------------------- sign-in


def _safe_next(value: str | None) -> str:
    if value and value.startswith(f"{PREFIX}/") and not value.startswith("//") and "\\" not in value:
        return value
    return f"{PREFIX}/"


async def login_page(request: web.Request, error: str = "", status: int = 200) -> web.Response:
    import secrets

    state = _state(request)
    codec = state.codec_for(_services(request))
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
        secure=_secure(request),
    )
    return response


async def login_get(request: web.Request) -> web.StreamResponse:
    return await login_page(request)


async def login_post(request: web.Request) -> web.StreamResponse:
    state = _state(request)
    services = _services(request)
    codec = state.codec_for(services)
    gate = state.signin_gate()
    form = await request.post()
    if not codec.login_csrf_ok(request.cookies.get(LOGIN_COOKIE), _form_text(form, "csrf")):
        return refused(request, "The sign-in form is stale (CSRF check failed): reload it and try again.")
    username = _form_text(form, "username")[:64]
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
        await _audit(
            request,
            AuditEntry(
                actor=mask_text(username or "anonymous")[:64],
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
    await _audit(
        request,
        AuditEntry(
            actor=account.username,
            action="ops.signin",
            outcome="ok",
            status_code=303,
            data={"role": account.role, "remote": request.remote, "session": session.sid[:8]},
        ),
    )
    response = web.HTTPSeeOther(_safe_next(_form_text(form, "next")))
    _set_cookie(request, response, codec.encode(session), codec.idle_seconds)
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
    account = _operator(request)
    # Revoked before the cookie is deleted: a copy of it is refused by every api process from now on.
    await _state(request).sessions_for(_services(request)).revoke(_session(request).sid)
    await _audit(request, AuditEntry(actor=account.username, action="ops.signout", outcome="ok"))
    response = web.HTTPSeeOther(f"{PREFIX}/login")
    response.del_cookie(COOKIE, path=PREFIX)
    raise response


# ---------------------------------------------------------------- overview


async def _snapshot(request: web.Request) -> status.Snapshot:
    state = _state(request)
    at = time.monotonic()
    if state.cached is not None and at - state.cached[0] < OVERVIEW_CACHE_SECONDS:
        return state.cached[1]
    connection = await state.connection()
    snap = await status.snapshot(
        state.settings, _services(request).db, connection, reach_broker=connection is not None
    )
    state.cached = (time.monotonic(), snap)
    return snap


async def overview(request: web.Request) -> web.StreamResponse:
    snap = await _snapshot(request)
    return render(request, "overview.html", {"page": "overview", "snap": snap, "data": snap.as_json()})


async def overview_api(request: web.Request) -> web.StreamResponse:
    snap = await _snapshot(request)
    return web.json_response(snap.as_json())


# ---------------------------------------------------------------- messages


def _message_query(query: Mapping[str, str]) -> ops_messages.MessageQuery:
    return ops_messages.MessageQuery(
        message_id=query.get("q", "").strip(),
        case_ref=query.get("case_ref", "").strip(),
        sender=query.get("sender", "").strip(),
        recipient=query.get("recipient", "").strip(),
        message_type=query.get("type", "").strip(),
        status=query.get("status", "").strip(),
        received_from=ops_messages.parse_day(query.get("from")),
        received_to=ops_messages.parse_day(query.get("to")),
    )


async def message_list(request: web.Request) -> web.StreamResponse:
    query = _message_query(request.query)
    async with _services(request).db.read() as conn:
        found = await ops_messages.search(
            conn, query, limit=ops_messages.SEARCH_LIMIT if not query.empty else 50
        )
    from gateway.domain.status import Status

    context = {
        "page": "messages",
        "query": request.query,
        "filtered": not query.empty,
        "found": found,
        "statuses": [s.value for s in Status],
        "types": sorted(_services(request).documents.registry),
    }
    return render(request, "messages.html", context)


async def message_page(request: web.Request) -> web.StreamResponse:
    message_id = request.match_info["message_id"]
    async with _services(request).db.read() as conn:
        found = await ops_messages.detail(conn, message_id)
    if found is None:
        return not_found(request, "messages", "No message with this id.")
    account = _operator(request)
    if account.may_act and found.payload is not None:
        # Reading personal data is itself recorded.
        await _audit(
            request,
            AuditEntry(
                actor=account.username,
                action="ops.message.payload",
                outcome="read",
                message_id=found.summary.message_id,
            ),
        )
    return render(request, "message.html", {"page": "messages", "m": found, "show_payload": account.may_act})


# ---------------------------------------------------------------- parking


def _known_queues(settings: Settings) -> dict[str, str]:
    return dict(queues.gateway_queues(settings))


def _parking_filter(source: Mapping[str, Any]) -> parking.ParkingFilter:
    def text(name: str) -> str:
        value = source.get(name)
        return value.strip()[:200] if isinstance(value, str) else ""

    return parking.ParkingFilter(
        message_type=text("type"),
        sender=text("sender"),
        recipient=text("recipient"),
        reason=text("reason_filter"),
    )


async def parking_list(request: web.Request) -> web.StreamResponse:
    snap = await _snapshot(request)
    rows = snap.queues.rows if snap.queues else []
    return render(request, "parking.html", {"page": "parking", "snap": snap, "rows": rows})


async def _parked_page(
    request: web.Request,
    queue: str,
    where: parking.ParkingFilter,
    flash_ok: str = "",
    flash_error: str = "",
    status: int = 200,
) -> web.Response:
    state = _state(request)
    names = Names(state.settings.broker_namespace)
    connection = await state.connection()
    found: list[parking.ParkedMessage] = []
    seen = 0
    broker_error = ""
    if connection is None:
        broker_error = "The broker is unreachable: parked messages cannot be read now."
    else:
        try:
            async with asyncio.timeout(BROKER_READ_SECONDS):
                found, seen = await parking.browse(connection, names, queue, where, limit=PARKING_PAGE)
        except (TimeoutError, ConnectionError, aio_pika.exceptions.AMQPError) as exc:
            broker_error = (
                f"The broker did not answer ({type(exc).__name__}): parked messages cannot be read now."
            )
        except parking.NoSuchQueue:
            broker_error = (
                f"{names.parking(queue)} does not exist on the broker (nothing was ever parked there)."
            )
    known: dict[str, tuple[str, str]] = {}
    if found:
        async with _services(request).db.read() as conn:
            known = await ops_messages.statuses(conn, [p.message_id for p in found])
    context = {
        "page": "parking",
        "queue": queue,
        "known": known,
        "parking_queue": names.parking(queue),
        "found": found,
        "seen": seen,
        "where": where,
        "broker_error": broker_error,
        "flash_ok": flash_ok,
        "flash_error": flash_error,
        "may_act": _operator(request).may_act,
        "page_size": PARKING_PAGE,
    }
    return render(request, "parked.html", context, status=status)


async def parked_list(request: web.Request) -> web.StreamResponse:
    queue = request.match_info["queue"]
    if queue not in _known_queues(_state(request).settings):
        return not_found(request, "parking", "Not a queue of this gateway.")
    return await _parked_page(request, queue, _parking_filter(request.query))


async def parked_action(request: web.Request) -> web.StreamResponse:
    queue = request.match_info["queue"]
    state = _state(request)
    if queue not in _known_queues(state.settings):
        return not_found(request, "parking", "Not a queue of this gateway.")
    if (denied := _requires_operator(request)) is not None:
        return denied
    form = await request.post()
    where = _parking_filter(form)
    action = _form_text(form, "action")
    reason = _form_text(form, "reason")
    selected = [v for v in form.getall("message_id", []) if isinstance(v, str) and v]
    if action not in ("replay", "replay_all", "discard"):
        return await _parked_page(request, queue, where, flash_error="Unknown action.", status=400)
    if not reason:
        return await _parked_page(
            request, queue, where, flash_error="Give a reason: it goes into the audit log.", status=400
        )
    if len(reason) > MAX_REASON:
        return await _parked_page(
            request, queue, where, flash_error=f"Keep the reason under {MAX_REASON} characters.", status=400
        )
    if action != "replay_all" and not selected:
        return await _parked_page(
            request, queue, where, flash_error="Select at least one message.", status=400
        )
    connection = await state.connection()
    if connection is None:
        return await _parked_page(
            request, queue, where, flash_error="The broker is unreachable: nothing was done.", status=503
        )
    names = Names(state.settings.broker_namespace)
    kind: parking.Action = "discard" if action == "discard" else "replay"
    outcome = parking.Outcome(kind, queue, [], [])
    failure = ""
    try:
        async with asyncio.timeout(BROKER_ACTION_SECONDS):
            await parking.act(
                connection,
                names,
                queue,
                kind,
                message_ids=None if action == "replay_all" else selected,
                where=where,
                into=outcome,
            )
    except parking.NoSuchQueue as exc:
        return await _parked_page(request, queue, where, flash_error=f"{exc} does not exist.", status=404)
    except (TimeoutError, ConnectionError, aio_pika.exceptions.AMQPError) as exc:
        log.warning("parking %s on %s interrupted: %r", kind, queue, exc)
        failure = f"the broker stopped answering ({type(exc).__name__})"
    # Whatever was done is audited, also when the broker failed half-way.
    account = _operator(request)
    await parking.record(_services(request).db, outcome, account.username, reason, via="console")
    verb = "replayed" if kind == "replay" else "discarded"
    message = f"{verb} {len(outcome.done)}"
    if failure:
        return await _parked_page(request, queue, where, flash_error=f"{message}, then {failure}", status=503)
    if outcome.missing:
        message += f"; {len(outcome.missing)} selected message(s) were no longer parked"
    return await _parked_page(request, queue, where, flash_ok=message)


async def parked_message(request: web.Request) -> web.StreamResponse:
    queue, message_id = request.match_info["queue"], request.match_info["message_id"]
    state = _state(request)
    if queue not in _known_queues(state.settings):
        return not_found(request, "parking", "Not a queue of this gateway.")
    connection = await state.connection()
    found = None
    if connection is not None:
        try:
            async with asyncio.timeout(BROKER_READ_SECONDS):
                found = await parking.show(
                    connection, Names(state.settings.broker_namespace), queue, message_id
                )
        except (parking.NoSuchQueue, TimeoutError, ConnectionError, aio_pika.exceptions.AMQPError):
            found = None
    if found is None:
        return not_found(request, "parking", "This message is not parked here (any more).")
    account = _operator(request)
    return render(
        request,
        "parked_message.html",
        {
            "page": "parking",
            "queue": queue,
            "p": found,
            "show_payload": account.may_act,
            "body": parking.body_preview(found),
        },
    )


# ---------------------------------------------------------------- partners


async def partners_page(request: web.Request, result: partners.Probe | None = None) -> web.Response:
    settings = _state(request).settings
    async with _services(request).db.read() as conn:
        health = await partners.health(conn, load_partners(settings.config_dir))
    context = {
        "page": "partners",
        "health": health,
        "result": result,
        "may_act": _operator(request).may_act,
        "stale_after": partners.STALE_AFTER_SECONDS,
    }
    return render(request, "partners.html", context)


async def partners_get(request: web.Request) -> web.StreamResponse:
    return await partners_page(request)


async def partner_test(request: web.Request) -> web.StreamResponse:
    code = request.match_info["code"]
    if (denied := _requires_operator(request)) is not None:
        return denied
    settings = _state(request).settings
    partner = next((p for p in load_partners(settings.config_dir) if p.code == code), None)
    if partner is None:
        return not_found(request, "partners", "No such partner.")
    form = await request.post()
    result = await partners.probe(partner)
    await _audit(
        request,
        AuditEntry(
            actor=_operator(request).username,
            action="ops.partner.test",
            outcome="ok" if result.ok else "error",
            object_ref=partner.code,
            reason=_form_text(form, "reason")[:MAX_REASON] or None,
            data={"latency_ms": result.latency_ms, "detail": result.detail},
        ),
    )
    return await partners_page(request, result)


# ---------------------------------------------------------------- overdue and stuck


async def stuck_page(request: web.Request) -> web.StreamResponse:
    settings = _state(request).settings
    async with _services(request).db.read() as conn:
        found = await backlog.backlog(conn, settings.ops.stuck_after_minutes)
    return render(request, "stuck.html", {"page": "stuck", "b": found})


# ---------------------------------------------------------------- the application


def _fmt_number(value: Any, digits: int = 0) -> str:
    if value is None:
        return "–"
    if isinstance(value, float) and digits:
        return f"{value:.{digits}f}"
    return str(value)


def _fmt_age(seconds: float | None) -> str:
    if seconds is None:
        return "–"
    seconds = int(seconds)
    if seconds < 120:
        return f"{seconds} s"
    if seconds < 7200:
        return f"{seconds // 60} min"
    return f"{seconds // 3600} h {seconds % 3600 // 60} min"


def _fmt_rate(value: float | None) -> str:
    return "–" if value is None else f"{value * 100:.1f} %"


FILTERS: Final[dict[str, Callable[..., str]]] = {
    "num": _fmt_number,
    "age": _fmt_age,
    "pct": _fmt_rate,
    "mask": mask_text,
}


def build(settings: Settings) -> web.Application:
    app = web.Application(middlewares=[guard])
    state = ConsoleState(settings, OperatorFile(settings.path(settings.ops.operators_file)))
    app[STATE] = state
    aiohttp_jinja2.setup(
        app,
        app_key=JINJA,
        loader=jinja2.FileSystemLoader(str(TEMPLATES)),
        autoescape=True,
        filters=FILTERS,
    )

    async def close(_app: web.Application) -> None:
        await state.close()

    app.on_cleanup.append(close)
    r = app.router
    r.add_get("/login", login_get, name="ops.login")
    r.add_post("/login", login_post, name="ops.login.post")
    r.add_post("/logout", logout, name="ops.logout")
    r.add_get("/", overview, name="ops.overview")
    r.add_get("/api/overview", overview_api, name="ops.api.overview")
    r.add_get("/messages", message_list, name="ops.messages")
    r.add_get("/messages/{message_id}", message_page, name="ops.message")
    r.add_get("/parking", parking_list, name="ops.parking")
    r.add_get("/parking/{queue}", parked_list, name="ops.parked")
    r.add_post("/parking/{queue}", parked_action, name="ops.parked.action")
    r.add_get("/parking/{queue}/{message_id}", parked_message, name="ops.parked.message")
    r.add_get("/partners", partners_get, name="ops.partners")
    r.add_post("/partners/{code}/test", partner_test, name="ops.partners.test")
    r.add_get("/stuck", stuck_page, name="ops.stuck")
    r.add_static("/static/", STATIC, name="ops.static", append_version=True)
    return app
