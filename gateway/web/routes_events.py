"""Status-event subscriptions: ``POST``/``GET /v1/subscriptions``, ``DELETE /v1/subscriptions/{id}``.

Grant ``messages.read``: a client that may follow its messages may be told when they change.
"""

from __future__ import annotations

from typing import Final

from aiohttp import web

from gateway.services.events import MAX_SUBSCRIPTIONS, SubscriptionService
from gateway.validation import catalog
from gateway.web.auth import PRINCIPAL_KEY
from gateway.web.body import read_json
from gateway.web.context import SERVICES
from gateway.web.operation import Operation, Response

__all__ = ["GRANT", "OPERATIONS"]

GRANT: Final = "messages.read"


def _service(request: web.Request) -> SubscriptionService:
    services = request.app[SERVICES]
    return SubscriptionService(services.db, services.settings, catalog())


async def create_subscription(request: web.Request) -> web.Response:
    document = await read_json(request)
    view = await _service(request).create(request[PRINCIPAL_KEY], document)
    return web.json_response(view, status=201, headers={"Location": view["href"]})


async def list_subscriptions(request: web.Request) -> web.Response:
    views = await _service(request).list_for(request[PRINCIPAL_KEY])
    return web.json_response({"subscriptions": views})


async def delete_subscription(request: web.Request) -> web.Response:
    view = await _service(request).delete(request[PRINCIPAL_KEY], request.match_info["subscription_id"])
    return web.json_response(view)


OPERATIONS: Final = (
    Operation(
        "POST",
        "/v1/subscriptions",
        create_subscription,
        name="events.subscribe",
        operation_id="createSubscription",
        tag="Events",
        summary="Be told of every status change of the messages this client sends or receives",
        description=(
            "Grant `messages.read`. `kind: queue`: the gateway declares a durable quorum queue of the "
            "client's own (`queue` in the answer), bound to the events exchange with the client's keys "
            "only (`bindings`), and the client consumes it. `kind: webhook`: each event is POSTed to `url` "
            "(https to a public address; redirects are not followed), signed like document webhooks, "
            "in order, retried with back-off and parked after "
            "`delivery.delivery_limit` attempts. `message_types` narrows either to some types. Events: "
            "schema `event.status`. The broker must be reachable (else `503`, nothing changed); at most "
            f"{MAX_SUBSCRIPTIONS} active subscriptions per client (`409`)."
        ),
        grant=GRANT,
        request="subscription.request",
        responses={201: Response("Subscribed.", "subscription", headers=("Location",))},
        problems=(400, 403, 409, 413, 415, 422, 503),
        problem_notes={
            409: f"The client already holds {MAX_SUBSCRIPTIONS} active subscriptions.",
            422: (
                "Schema violations, an unregistered message type, or a webhook URL the outbound policy "
                "refuses (`$.url`): not https, an address that is not public (before or after DNS), or "
                "a host outside the client's `outbound_hosts`."
            ),
            503: "The broker (or storage) is unavailable: nothing was subscribed.",
        },
    ),
    Operation(
        "GET",
        "/v1/subscriptions",
        list_subscriptions,
        name="events.subscriptions",
        operation_id="listSubscriptions",
        tag="Events",
        summary="The client's active subscriptions",
        grant=GRANT,
        responses={200: Response("Oldest first.", "subscription.list")},
        problems=(403, 503),
    ),
    Operation(
        "DELETE",
        "/v1/subscriptions/{subscription_id}",
        delete_subscription,
        name="events.unsubscribe",
        operation_id="deleteSubscription",
        tag="Events",
        summary="End a subscription: its queue is deleted",
        description="The client's own subscriptions only (anyone else's: 404). Repeating it is harmless.",
        grant=GRANT,
        responses={200: Response("Ended: the subscription with its `revoked_at`.", "subscription")},
        problems=(403, 404, 503),
        problem_notes={503: "The broker (or storage) is unavailable: the subscription is unchanged."},
    ),
)
