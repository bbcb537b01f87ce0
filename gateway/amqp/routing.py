"""Where each outbox row is published: routing keys and lanes are the messaging layer's business, not
the services'. A document row names its recipient and priority; this decides the exchange and key."""

from __future__ import annotations

from collections.abc import Callable

from gateway.amqp.names import Names
from gateway.amqp.relay import Route
from gateway.storage.outbox import DOCUMENTS, REQUESTS, Pending

#: The queue a recipient reads itself (its AMQP delivery target), or None (a webhook, a partner's API,
#: an unknown or revoked client): its documents then go through its delivery queue and a worker.
OwnQueue = Callable[[str], str | None]


class DocumentRouter:
    def __init__(self, names: Names, own_queue: OwnQueue) -> None:
        self._names = names
        self._own_queue = own_queue

    async def route(self, item: Pending) -> Route:
        if item.exchange == REQUESTS:
            # A lookup goes to the partner's work queue (the queue its documents wait in, or its
            # urgent lane): one queue per partner for everything it is sent, never a client's own.
            priority = str(item.headers.get("priority") or "normal")
            return Route(self._names.documents, Names.routing_key(item.routing_key, priority))
        if item.exchange != DOCUMENTS:
            return Route(self._names.exchange(item.exchange), item.routing_key)
        recipient = item.routing_key
        queue = self._own_queue(recipient)
        if queue is not None:
            # The default exchange routes by queue name; the publish is mandatory, so a queue nobody
            # declared yet makes it fail and the row waits (the worker declares every recipient's queue).
            return Route("", queue, delivers=True)
        priority = str(item.headers.get("priority") or "normal")
        return Route(self._names.documents, Names.routing_key(recipient, priority))
