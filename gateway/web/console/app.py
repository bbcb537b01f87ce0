"""The console as an aiohttp sub-application: its middleware, templates and their filters, and its routes."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any, Final

import aiohttp_jinja2
import jinja2
from aiohttp import web

from gateway.domain.identifiers import scrub
from gateway.ops.operators import OperatorFile
from gateway.settings import Settings
from gateway.web.console import PREFIX, history, login, message_actions, messages, overview, parking, partners
from gateway.web.console import audit as audit_pages
from gateway.web.console import clients as client_pages
from gateway.web.console.guard import guard
from gateway.web.console.pages import JINJA
from gateway.web.console.state import STATE, ConsoleState
from gateway.web.console.timefmt import TimeFormat

WEB_DIR: Final = Path(__file__).resolve().parent.parent
TEMPLATES: Final = WEB_DIR / "templates" / "ops"
STATIC: Final = WEB_DIR / "static" / "ops"


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
    "mask": scrub,
}


def mount(app: web.Application, settings: Settings) -> None:
    """The console at :data:`~gateway.web.console.PREFIX` of ``app``."""
    app.add_subapp(PREFIX, build(settings))


def build(settings: Settings) -> web.Application:
    app = web.Application(middlewares=[guard])
    state = ConsoleState(settings, OperatorFile(settings.path(settings.ops.operators_file)))
    app[STATE] = state
    aiohttp_jinja2.setup(
        app,
        app_key=JINJA,
        loader=jinja2.FileSystemLoader(str(TEMPLATES)),
        autoescape=True,
        filters=FILTERS | {"when": TimeFormat(settings.ops.time_zone).when},
    )

    async def close(_app: web.Application) -> None:
        await state.close()

    app.on_cleanup.append(close)
    r = app.router
    r.add_get("/login", login.login_get, name="ops.login")
    r.add_post("/login", login.login_post, name="ops.login.post")
    r.add_post("/logout", login.logout, name="ops.logout")
    r.add_get("/", overview.overview, name="ops.overview")
    r.add_get("/api/overview", overview.overview_api, name="ops.api.overview")
    r.add_get("/messages", messages.message_list, name="ops.messages")
    r.add_get("/messages.csv", messages.message_export, name="ops.messages.csv")
    r.add_get("/messages/{message_id}", messages.message_page, name="ops.message")
    r.add_get("/parking", parking.parking_list, name="ops.parking")
    r.add_get("/parking/{queue}", parking.parked_list, name="ops.parked")
    r.add_post("/parking/{queue}", parking.parked_action, name="ops.parked.action")
    r.add_get("/parking/{queue}/{message_id}", parking.parked_message, name="ops.parked.message")
    r.add_get("/partners", partners.partners_get, name="ops.partners")
    r.add_post("/partners/{code}/test", partners.partner_test, name="ops.partners.test")
    r.add_get("/stuck", overview.stuck_page, name="ops.stuck")
    r.add_get("/audit", audit_pages.audit_page, name="ops.audit")
    r.add_post("/audit/verify", audit_pages.audit_verify, name="ops.audit.verify")
    r.add_get("/clients", client_pages.clients_page, name="ops.clients")
    r.add_post("/messages/{message_id}", message_actions.message_action, name="ops.message.action")
    r.add_post("/parking", parking.parking_bulk, name="ops.parking.bulk")
    r.add_get("/partners/{code}", partners.partner_page, name="ops.partner")
    r.add_post("/partners/{code}/retry-now", partners.partner_retry_now, name="ops.partner.retry_now")
    r.add_get("/alerts", overview.alerts_page, name="ops.alerts")
    r.add_get("/history", history.history_page, name="ops.history")
    r.add_static("/static/", STATIC, name="ops.static", append_version=True)
    return app
