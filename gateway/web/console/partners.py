"""The partners' health, and a test call to one partner by an operator (audited)."""

from __future__ import annotations

from aiohttp import web

from gateway.ops import history, partners
from gateway.partners import load_partners, load_platforms
from gateway.storage import retries
from gateway.storage.audit import AuditEntry, append
from gateway.web.console.history import partner_charts
from gateway.web.console.pages import (
    MAX_REASON,
    audit,
    form_text,
    not_found,
    operator_of,
    render,
    requires_operator,
    services_of,
    state_of,
)


async def partners_page(request: web.Request, result: partners.Probe | None = None) -> web.Response:
    settings = state_of(request).settings
    async with services_of(request).db.read() as conn:
        health = await partners.health(
            conn, load_partners(settings.config_dir), platforms=load_platforms(settings.config_dir)
        )
    context = {
        "page": "partners",
        "health": health,
        "result": result,
        "may_act": operator_of(request).may_act,
        "stale_after": partners.STALE_AFTER_SECONDS,
    }
    return render(request, "partners.html", context)


async def partners_get(request: web.Request) -> web.StreamResponse:
    return await partners_page(request)


async def partner_page(
    request: web.Request, flash_ok: str = "", flash_error: str = "", status: int = 200
) -> web.StreamResponse:
    """One partner: its judged state, each worker's report, charts, the documents waiting for it and
    those it failed (each linked to its message page)."""
    code = request.match_info["code"]
    settings = state_of(request).settings
    configured = load_partners(settings.config_dir)
    partner = next((p for p in configured if p.code == code), None)
    if partner is None:
        return not_found(request, "partners", "No such partner.")
    range_name, _, _ = history.range_of(request.query.get("range"))
    async with services_of(request).db.read() as conn:
        (health,) = await partners.health(conn, [partner], platforms=load_platforms(settings.config_dir))
        workers = await partners.worker_views(conn, code)
        waiting, failed = await partners.messages_for(conn, code)
        charts = await partner_charts(conn, code, range_name)
    context = {
        "page": "partners",
        "p": health,
        "workers": workers,
        "waiting": waiting,
        "failed": failed,
        "limit": partners.PARTNER_LIST_LIMIT,
        "charts": charts,
        "range": range_name,
        "ranges": list(history.RANGES),
        "may_act": operator_of(request).may_act,
        "stale_after": partners.STALE_AFTER_SECONDS,
        "flash_ok": flash_ok or _RETRIED.get(request.query.get("done", ""), ""),
        "flash_error": flash_error,
        "max_reason": MAX_REASON,
    }
    return render(request, "partner.html", context, status=status)


_RETRIED = {"retry_now": "The waiting retries were pulled forward: the worker delivers them now."}


async def partner_retry_now(request: web.Request) -> web.StreamResponse:
    """Pull forward the waiting retry of every document waiting for this partner (the partner is back):
    each one as on its own page — its own transaction, its own audit record — at most
    ``PARTNER_LIST_LIMIT`` per press. The ones with no retry waiting are left as they are."""
    code = request.match_info["code"]
    if (denied := requires_operator(request)) is not None:
        return denied
    reason = form_text(await request.post(), "reason")
    if not reason or len(reason) > MAX_REASON:
        why = f"Give a reason (at most {MAX_REASON} characters): it goes into the audit log."
        return await partner_page(request, flash_error=why, status=400)
    services = services_of(request)
    operator = operator_of(request).username
    async with services.db.read() as conn:
        waiting, _ = await partners.messages_for(conn, code)
    pulled, skipped = [], 0
    for line in waiting:
        entry = AuditEntry(
            actor=operator,
            action="ops.message.retry_now",
            outcome="done",
            message_id=line.message_id,
            object_ref=code,
            reason=reason,
            data={"status": line.status, "via": "partner-page"},
        )
        try:
            async with services.db.transaction() as conn:
                claim = services.documents.relay.claim()
                pulled.append(await retries.retry_now(conn, line.message_id, operator, reason, claim=claim))
                await append(conn, entry)
        except retries.NotPullable:
            skipped += 1  # nothing waiting (in flight, scheduled by an older worker): nothing to audit
    services.documents.relay.hand_over(pulled)
    if not pulled:
        why = f"No retry was waiting for {code} ({skipped} document(s) waiting otherwise)."
        return await partner_page(request, flash_error=why, status=409)
    raise web.HTTPSeeOther(f"{request.path.rsplit('/', 1)[0]}?done=retry_now")


async def partner_test(request: web.Request) -> web.StreamResponse:
    code = request.match_info["code"]
    if (denied := requires_operator(request)) is not None:
        return denied
    settings = state_of(request).settings
    partner = next((p for p in load_partners(settings.config_dir) if p.code == code), None)
    if partner is None:
        return not_found(request, "partners", "No such partner.")
    form = await request.post()
    result = await partners.probe(partner, platforms=load_platforms(settings.config_dir))
    await audit(
        request,
        AuditEntry(
            actor=operator_of(request).username,
            action="ops.partner.test",
            outcome="ok" if result.ok else "error",
            object_ref=partner.code,
            reason=form_text(form, "reason")[:MAX_REASON] or None,
            data={"latency_ms": result.latency_ms, "detail": result.detail},
        ),
    )
    return await partners_page(request, result)
