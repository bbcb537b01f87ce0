"""Charts over the last hours and days: the gateway's totals and each flow (``/ops/history``), and one
partner's (on its page). The range is in the URL (``?range=1h|6h|24h|7d``)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

from aiohttp import web
from markupsafe import Markup
from sqlalchemy.ext.asyncio import AsyncConnection

from gateway.ops import history
from gateway.web.console.charts import legend, line_chart
from gateway.web.console.pages import render, services_of

#: Flows charted on the history page (the busiest of the range).
MAX_FLOWS: Final = 6


@dataclass(frozen=True, slots=True)
class Chart:
    id: str
    title: str
    svg: Markup
    legend: Markup
    note: str = ""


def chart(chart_id: str, title: str, series: list[history.Series], unit: str = "", note: str = "") -> Chart:
    truncated = any(s.truncated for s in series)
    note = note + (" (the oldest part is cut: too many records)" if truncated else "")
    return Chart(chart_id, title, line_chart(series, unit), legend(series), note)


async def partner_charts(conn: AsyncConnection, code: str, range_name: str) -> list[Chart]:
    def named(s: history.Series, name: str) -> history.Series:
        return history.Series(name, s.start, s.step_seconds, s.values, s.truncated)

    calls = await history.sampled(conn, history.PARTNER_CALLS, code, range_name, label="calls")
    failures = await history.sampled(conn, history.PARTNER_FAILURES, code, range_name, label="failures")
    p50 = await history.sampled(conn, history.PARTNER_P50, code, range_name, label="p50")
    p95 = await history.sampled(conn, history.PARTNER_P95, code, range_name, label="p95")
    events = await history.event_counts(conn, range_name, recipient=code)
    rolling = "rolling 5-minute window of the workers, sampled each minute"
    return [
        chart("partner-calls", "Calls and errors", [calls, failures], note=rolling),
        chart("partner-latency", "Latency (ms)", [p50, p95], "ms", note="the highest any worker saw"),
        chart(
            "partner-deliveries",
            "Documents to it, per bucket",
            [named(events["delivered"], "delivered"), named(events["delivery_failed"], "delivery failed")],
        ),
    ]


async def history_page(request: web.Request) -> web.StreamResponse:
    range_name, _, _ = history.range_of(request.query.get("range"))
    async with services_of(request).db.read() as conn:
        parked = await history.sampled(conn, history.PARKED_TOTAL, "", range_name, label="parked")
        queued = await history.sampled(conn, history.QUEUED_TOTAL, "", range_name, label="queued")
        overdue = await history.sampled(conn, history.OVERDUE, "", range_name, label="overdue")
        every = await history.event_counts(conn, range_name)
        totals = [
            chart(
                "total-events", "All flows: accepted and delivered", [every["accepted"], every["delivered"]]
            ),
            chart(
                "total-failures",
                "All flows: failed deliveries and failures",
                [every["delivery_failed"], every["failed"]],
            ),
            chart("total-queues", "Queued and parked messages", [queued, parked], note="sampled each minute"),
            chart("total-overdue", "Documents overdue", [overdue], note="sampled each minute"),
        ]
        flows = []
        for flow in (await history.flows(conn, range_name))[:MAX_FLOWS]:
            events = await history.event_counts(conn, range_name, message_type=flow)
            late = await history.sampled(conn, history.OVERDUE, flow, range_name, label="overdue")
            flows.append(
                (
                    flow,
                    [
                        chart(
                            f"flow-{flow}-events",
                            "accepted / delivered",
                            [events["accepted"], events["delivered"]],
                        ),
                        chart(
                            f"flow-{flow}-failures",
                            "failed deliveries / failed",
                            [events["delivery_failed"], events["failed"]],
                        ),
                        chart(f"flow-{flow}-overdue", "overdue", [late]),
                    ],
                )
            )
    context = {
        "page": "history",
        "range": range_name,
        "ranges": list(history.RANGES),
        "totals": totals,
        "flows": flows,
    }
    return render(request, "history.html", context)
