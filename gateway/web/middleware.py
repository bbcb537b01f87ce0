"""Cross-cutting request handling: every error becomes problem+json, rejections are audited."""

from __future__ import annotations

import logging
import uuid

from aiohttp import web
from aiohttp.typedefs import Handler
from sqlalchemy.exc import SQLAlchemyError

from gateway.problems import Problem, unavailable
from gateway.storage.audit import AuditEntry, append
from gateway.web.auth import PRINCIPAL_KEY
from gateway.web.context import SERVICES

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


@web.middleware
async def problems(request: web.Request, handler: Handler) -> web.StreamResponse:
    try:
        return await handler(request)
    except Problem as problem:
        await audit_rejection(request, problem)
        return problem_response(problem, request.path)
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        converted = Problem(exc.status, _REASONS.get(exc.status, "http-error"), exc.reason, exc.text or "")
        await audit_rejection(request, converted)
        response = problem_response(converted, request.path)
        if "Allow" in exc.headers:  # RFC 9110: a 405 names the methods the resource supports
            response.headers["Allow"] = exc.headers["Allow"]
        return response
    except SQLAlchemyError:
        incident = str(uuid.uuid4())
        log.exception("database error", extra={"incident": incident})
        return problem_response(unavailable(f"storage unavailable; retry later (incident {incident})"))
    except Exception:
        # A defect, not the caller's fault: log it with a reference they can quote, answer "retry later".
        incident = str(uuid.uuid4())
        log.exception("unhandled error", extra={"incident": incident})
        return problem_response(unavailable(f"internal error; retry later (incident {incident})"))


async def audit_rejection(request: web.Request, problem: Problem) -> None:
    route = request.match_info.route.name
    if route not in AUDITED_ROUTES:
        return
    principal = request.get(PRINCIPAL_KEY)
    entry = AuditEntry(
        actor=principal.client.id if principal else "anonymous",
        subject=principal.subject if principal else None,
        action=route,
        outcome="rejected",
        status_code=problem.status,
        message_id=request.match_info.get("message_id"),
        reason=(problem.detail or problem.title)[:500],
        data={"violations": [v.path for v in problem.violations][:50]} if problem.violations else None,
    )
    try:
        async with request.app[SERVICES].db.transaction() as conn:
            await append(conn, entry)
    except SQLAlchemyError:
        log.exception("could not audit a rejection")
