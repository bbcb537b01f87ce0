"""Cross-cutting request handling: every request gets a request id (bound to every log line it causes,
echoed in ``X-Request-ID``) and is counted and timed by route; every error becomes problem+json (a
service's domain error the problem :func:`gateway.problems.problem_for` names for it), every 5xx carries
an incident id that is in the log line too; rejections are audited (a known client's one by one, an
unknown caller's counted and aggregated: :mod:`gateway.web.rejections`)."""

from __future__ import annotations

import logging
import time
import uuid

import structlog
from aiohttp import web
from aiohttp.typedefs import Handler
from sqlalchemy.exc import SQLAlchemyError

from gateway import logs
from gateway.domain.errors import DomainError
from gateway.domain.identifiers import scrub
from gateway.metrics import HTTP_REQUESTS, HTTP_SECONDS
from gateway.problems import Problem, problem_for, unavailable
from gateway.storage.audit import AuditEntry, append
from gateway.web.auth import PRINCIPAL_KEY, REFUSED_BECAUSE
from gateway.web.context import SERVICES
from gateway.web.rejections import REJECTIONS

log = logging.getLogger(__name__)

#: Routes whose every rejection is written to the audit log (accepts are audited by the service).
AUDITED_ROUTES = frozenset(
    {
        "documents.send",
        "judgments.push",
        "judgments.push.soap",
        "messages.confirm",
        "messages.revoke",
        "assets.inquire",
        "assets.answer",
    }
)

_REASONS = {
    400: "malformed-request",
    404: "not-found",
    405: "method-not-allowed",
    413: "payload-too-large",
    415: "unsupported-media-type",
}


def problem_response(problem: Problem, instance: str | None = None) -> web.Response:
    return web.json_response(
        problem.body(instance),
        status=problem.status,
        headers=problem.headers,
        content_type="application/problem+json",
    )


REQUEST_ID_HEADER = "X-Request-ID"


def route_name(request: web.Request) -> str:
    """The matched route's name, never the raw path (one series per route, whatever the ids in it)."""
    try:
        name = request.match_info.route.name
    except AttributeError:  # no match info (yet)
        name = None
    return name or "unmatched"


@web.middleware
async def problems(request: web.Request, handler: Handler) -> web.StreamResponse:
    request_id = logs.request_id(request.headers.get(REQUEST_ID_HEADER))
    started = time.perf_counter()
    status = 500
    with structlog.contextvars.bound_contextvars(request_id=request_id):
        try:
            response = await _answer(request, handler)
            status = response.status
            if not response.prepared:
                response.headers[REQUEST_ID_HEADER] = request_id
            return response
        except web.HTTPException as exc:  # a redirect or another non-error answer raised by a handler
            status = exc.status
            exc.headers[REQUEST_ID_HEADER] = request_id
            raise
        finally:
            route = route_name(request)
            elapsed = time.perf_counter() - started
            HTTP_REQUESTS.labels(route, request.method, str(status)).inc()
            HTTP_SECONDS.labels(route, request.method).observe(elapsed)
            log.debug("%s %s answered %s in %.3f s", request.method, route, status, elapsed)


async def _answer(request: web.Request, handler: Handler) -> web.StreamResponse:
    try:
        return await handler(request)
    except (Problem, DomainError) as refused:
        # A service's error by meaning becomes the problem the API documents for it (gateway/problems.py).
        problem = refused if isinstance(refused, Problem) else problem_for(refused)
        await audit_rejection(request, problem)
        return problem_response(_with_incident(problem), request.path)
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        converted = Problem(exc.status, _REASONS.get(exc.status, "http-error"), exc.reason, exc.text or "")
        await audit_rejection(request, converted)
        response = problem_response(_with_incident(converted), request.path)
        if "Allow" in exc.headers:  # RFC 9110: a 405 names the methods the resource supports
            response.headers["Allow"] = exc.headers["Allow"]
        return response
    except SQLAlchemyError:
        incident = str(uuid.uuid4())
        log.exception("database error", extra={"incident": incident, "route": route_name(request)})
        return problem_response(unavailable(f"storage unavailable; retry later (incident {incident})"))
    except Exception:
        # A defect, not the caller's fault: log it with a reference they can quote, answer "retry later".
        incident = str(uuid.uuid4())
        log.exception("unhandled error", extra={"incident": incident, "route": route_name(request)})
        return problem_response(unavailable(f"internal error; retry later (incident {incident})"))


def _with_incident(problem: Problem) -> Problem:
    """A 5xx a handler answered on purpose: give it an incident id the caller can quote, and log it."""
    if problem.status < 500:
        return problem
    incident = str(uuid.uuid4())
    log.error(
        "problem answer %s %s",
        problem.status,
        problem.kind,
        extra={"incident": incident, "status": problem.status, "detail": scrub(problem.detail)},
    )
    detail = f"{problem.detail} (incident {incident})" if problem.detail else f"incident {incident}"
    return Problem(
        problem.status,
        problem.kind,
        problem.title,
        detail,
        problem.violations,
        problem.headers,
        problem.extra,
    )


async def audit_rejection(request: web.Request, problem: Problem) -> None:
    """Audit a refusal: a known client's one by one (on the audited routes); a caller not yet known is
    only counted (:mod:`gateway.web.rejections`), whatever the route, so a flood writes no row each."""
    route = route_name(request)
    principal = request.get(PRINCIPAL_KEY)
    if principal is None:
        tally = request.config_dict.get(REJECTIONS)
        if tally is not None:
            reason = request.get(REFUSED_BECAUSE) or problem.kind
            tally.add(route, reason, problem.status, audited=route in AUDITED_ROUTES)
        return
    if route not in AUDITED_ROUTES:
        return
    entry = AuditEntry(
        actor=principal.client.id,
        subject=principal.subject,
        action=route,
        outcome="rejected",
        status_code=problem.status,
        message_id=request.match_info.get("message_id"),
        reason=(problem.detail or problem.title)[:500],
        data={
            **({"violations": [v.path for v in problem.violations][:50]} if problem.violations else {}),
            **principal.audit_data(),
        }
        or None,
    )
    try:
        async with request.app[SERVICES].db.transaction() as conn:
            await append(conn, entry)
    except SQLAlchemyError:
        log.exception("could not audit a rejection")
