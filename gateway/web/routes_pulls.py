"""Pull partners' inbox: ``GET /v1/partner-inbox`` (fetch and lease) and ``POST
/v1/partner-inbox/acknowledgement`` (see :mod:`gateway.services.pulls`)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

from aiohttp import web

from gateway.partners import load_partners
from gateway.problems import Problem, Violation, invalid
from gateway.services.pulls import (
    DEFAULT_ITEMS,
    GRANT,
    MAX_ITEMS,
    MAX_WAIT_SECONDS,
    MAX_WAITERS,
    PullService,
    TooManyWaiting,
    Waiters,
)
from gateway.validation import catalog
from gateway.web.auth import PRINCIPAL_KEY
from gateway.web.body import read_json
from gateway.web.context import SERVICES
from gateway.web.operation import Operation, Parameter, Response

__all__ = ["OPERATIONS"]


@dataclass(slots=True)
class _State:
    """The app's pull service, made on first use (the services exist once the app has started), and its
    waiting fetches, counted for the whole process."""

    waiters: Waiters
    service: PullService | None = None


_STATE: Final = web.AppKey("partner_inbox", _State)


def _setup(app: web.Application) -> None:
    if _STATE not in app:
        app[_STATE] = _State(Waiters())


def _service(request: web.Request) -> PullService:
    state = request.app[_STATE]
    if state.service is None:
        services = request.app[SERVICES]
        state.service = PullService(
            services.db,
            load_partners(services.settings.config_dir),
            services.documents.registry,
            catalog(),
            services.documents.issue,
            state.waiters,
        )
    return state.service


def _number(request: web.Request, name: str, default: float, integer: bool) -> float:
    raw = request.query.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = float(int(raw)) if integer else float(raw)
    except ValueError:
        value = -1.0
    if not value >= 0:  # negative, or not a number (NaN fails the comparison too)
        kind = "an integer" if integer else "a number of seconds"
        raise invalid([Violation(name, f"query parameter {name} must be {kind} >= 0", "minimum")])
    return value


async def fetch(request: web.Request) -> web.Response:
    if request.method == "HEAD":
        # aiohttp answers HEAD on every GET route: a HEAD must not lease items nobody will see.
        return web.json_response({"lease": None, "leased_until": None, "items": [], "waited_up_to": 0})
    wait = _number(request, "wait", 0.0, integer=False)
    limit = _number(request, "limit", DEFAULT_ITEMS, integer=True)
    try:
        view = await _service(request).fetch(request[PRINCIPAL_KEY], wait, int(limit))
    except TooManyWaiting as exc:
        raise Problem(
            429,
            "too-many-waiting",
            "Too many fetches waiting",
            f"{exc}; wait for one to end",
            headers={"Retry-After": str(exc.retry_after)},
        ) from None
    return web.json_response(view)


async def acknowledge(request: web.Request) -> web.Response:
    body = await read_json(request)
    return web.json_response(await _service(request).acknowledge(request[PRINCIPAL_KEY], body))


_TAG: Final = "Partners"

OPERATIONS: Final = (
    Operation(
        "GET",
        "/v1/partner-inbox",
        fetch,
        name="partner.pull",
        operation_id="fetchPartnerInbox",
        tag=_TAG,
        summary="A pull partner fetches its pending lookups and documents (each leased to this fetch)",
        description=(
            f"Grant `{GRANT}`, with the partner's own token; the partner must be configured with "
            '`delivery = "pull"` (any other client: `404`). Each item handed out is leased for the '
            "partner's `lease_seconds` under the `lease` of the answer: acknowledge it with "
            "`POST /v1/partner-inbox/acknowledgement`, else a later fetch gets it again (`fetches` counts "
            "how often it was handed out). Execute each `item_id` once: it is the lookup's `request_ref` or "
            "the document's `message_id`. Answer a lookup with `POST /v1/partner-answers`, a document with "
            "its answer document to `POST /v1/documents` (`in_reply_to`). Urgent items come first. Every "
            "fetch that hands items out is audited. Not safe to repeat: a fetch takes leases."
        ),
        grant=GRANT,
        parameters=(
            Parameter(
                "wait",
                "query",
                f"Seconds to wait for an item when none is ready (long poll); capped at "
                f"{MAX_WAIT_SECONDS:g}. At most {MAX_WAITERS} fetches of one client wait at once (`429`).",
                {"type": "number", "minimum": 0, "default": 0},
            ),
            Parameter(
                "limit",
                "query",
                f"Most items to take; capped at {MAX_ITEMS}.",
                {"type": "integer", "minimum": 0, "default": DEFAULT_ITEMS},
            ),
        ),
        responses={
            200: Response(
                "The items leased to this fetch, urgent first then oldest first; none when `wait` ran out.",
                "partner.inbox",
            )
        },
        problems=(404, 422, 503),
        problem_notes={
            404: 'The client is not a partner with `delivery = "pull"`.',
            422: "`wait` or `limit` is not a number >= 0.",
            429: f"Over the client's request rate, or {MAX_WAITERS} of its fetches are waiting already.",
        },
        setup=_setup,
    ),
    Operation(
        "POST",
        "/v1/partner-inbox/acknowledgement",
        acknowledge,
        name="partner.acknowledge",
        operation_id="acknowledgePartnerInbox",
        tag=_TAG,
        summary="A pull partner acknowledges items it fetched: they are not handed out again",
        description=(
            f"Grant `{GRANT}`. Names the `lease` of the fetch and its `items`. A document acknowledged is "
            "recorded `delivered` (evidence `channel: pull`). Repeating an acknowledgement is harmless. An "
            "item that cannot be acknowledged is listed in `not_acknowledged`: unknown, not the caller's, "
            "withdrawn, or handed to a later fetch after its lease ran out (execute it once all the same: "
            "it comes again under the new lease)."
        ),
        grant=GRANT,
        request="partner.inbox.acknowledgement",
        responses={200: Response("What was acknowledged.", "partner.inbox.acknowledgement.result")},
        problems=(400, 404, 413, 415, 422, 503),
        problem_notes={404: 'The client is not a partner with `delivery = "pull"`.'},
        setup=_setup,
    ),
)
