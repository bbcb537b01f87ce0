"""The audit log in the console: search it (each read of it is itself recorded, as the api records reads
of personal data) and verify its chain."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from gateway.ops import audit_log
from gateway.security.signing import public_key_from_jwk
from gateway.storage.audit import AuditEntry
from gateway.web.console.pages import audit, operator_of, render, services_of


async def _page(
    request: web.Request, verification: audit_log.Verification | None = None, status: int = 200
) -> web.Response:
    wanted = audit_log.parse_query(request.query)
    async with services_of(request).db.read() as conn:
        found = await audit_log.search(conn, wanted)
    # Reading the log is recorded like any read: who, which filter, which stretch of records.
    await audit(
        request,
        AuditEntry(
            actor=operator_of(request).username,
            action="ops.audit.read",
            outcome="read",
            data={
                "filter": wanted.params(),
                "before": wanted.before,
                "shown": len(found.rows),
                "records": [found.rows[-1].id, found.rows[0].id] if found.rows else [],
            },
        ),
    )
    params = wanted.params()
    router = request.app.router
    context: dict[str, Any] = {
        "page": "audit",
        "wanted": wanted,
        "found": found,
        "next_url": str(router["ops.audit"].url_for().with_query(params | {"before": str(found.next_before)}))
        if found.next_before
        else "",
        "first_url": str(router["ops.audit"].url_for().with_query(params)) if wanted.before else "",
        "verify_url": str(router["ops.audit.verify"].url_for().with_query(params)),
        "verification": verification,
        "verify_timeout": audit_log.VERIFY_TIMEOUT_SECONDS,
        "window": audit_log.SCAN_WINDOW,
    }
    return render(request, "audit.html", context, status=status)


async def audit_page(request: web.Request) -> web.StreamResponse:
    return await _page(request)


async def audit_verify(request: web.Request) -> web.StreamResponse:
    """Walk the chain against its signed checkpoints, as ``run.py audit verify`` does, with the current
    signing key, on a thread and within :data:`~gateway.ops.audit_log.VERIFY_TIMEOUT_SECONDS`. Reading
    only: the auditor may run it too."""
    services = services_of(request)
    keys = {services.signer.key_id: public_key_from_jwk(services.signer.jwk)}
    result = await audit_log.verify(services.db.url, keys)
    report = result.report
    await audit(
        request,
        AuditEntry(
            actor=operator_of(request).username,
            action="ops.audit.verify",
            outcome=result.outcome,
            data={
                "records": report.records if report else None,
                "checkpoints": report.checkpoints if report else None,
                "first_broken": report.ordered()[0].record if report and not report.ok else None,
                "seconds": round(result.seconds, 3),
            },
        ),
    )
    return await _page(request, result)
