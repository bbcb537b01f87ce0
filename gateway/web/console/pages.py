"""What every page of the console uses: the console's state and the signed-in operator on the request,
rendering a template, refusing, and recording an action in the audit log."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final

import aiohttp_jinja2
import jinja2
from aiohttp import web
from multidict import MultiDictProxy

from gateway.ops.operators import Operator
from gateway.storage.audit import AuditEntry, append
from gateway.web.console import PREFIX
from gateway.web.console.session import Session
from gateway.web.console.state import STATE, ConsoleState
from gateway.web.context import SERVICES, Services

#: The longest reason an operator may give for an action (it goes into the audit log).
MAX_REASON: Final = 500

JINJA: Final = web.AppKey("ops_jinja", jinja2.Environment)
SESSION_KEY: Final = web.RequestKey("ops_session", Session)
OPERATOR_KEY: Final = web.RequestKey("ops_operator", Operator)


def services_of(request: web.Request) -> Services:
    return request.config_dict[SERVICES]


def state_of(request: web.Request) -> ConsoleState:
    return request.config_dict[STATE]


def operator_of(request: web.Request) -> Operator:
    return request[OPERATOR_KEY]


def session_of(request: web.Request) -> Session:
    return request[SESSION_KEY]


async def audit(request: web.Request, entry: AuditEntry) -> None:
    async with services_of(request).db.transaction() as conn:
        await append(conn, entry)


def render(
    request: web.Request, template: str, context: Mapping[str, Any], status: int = 200
) -> web.Response:
    base: dict[str, Any] = {"prefix": PREFIX, "operator": None, "csrf": ""}
    session = request.get(SESSION_KEY)
    if session is not None:
        base["operator"] = operator_of(request)
        base["csrf"] = state_of(request).codec_for(services_of(request)).csrf(session)
    return aiohttp_jinja2.render_template(
        template, request, base | dict(context), app_key=JINJA, status=status
    )


def not_found(request: web.Request, page: str, why: str) -> web.Response:
    return render(request, "error.html", {"title": "Not found", "message": why, "page": page}, status=404)


def refused(request: web.Request, why: str, status: int = 403) -> web.Response:
    return render(request, "error.html", {"title": "Refused", "message": why, "page": ""}, status=status)


def requires_operator(request: web.Request) -> web.Response | None:
    if not operator_of(request).may_act:
        return refused(request, "Your role (auditor) reads only: this action needs the operator role.")
    return None


def form_text(form: MultiDictProxy[str | bytes | Any], name: str) -> str:
    value = form.get(name)
    return value.strip() if isinstance(value, str) else ""
