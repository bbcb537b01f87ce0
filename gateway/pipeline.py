"""The relay of one process, assembled: the api and the worker each relay what they commit.

Kept apart from ``services`` (which must not know the broker) and from ``amqp`` (which must not know
clients or document types): this is where the two are joined.
"""

from __future__ import annotations

from collections.abc import Callable

from gateway.amqp.broker import Publisher
from gateway.amqp.names import Names
from gateway.amqp.relay import Relay
from gateway.amqp.routing import DocumentRouter
from gateway.security.clients import ClientStore
from gateway.services.deliveries import RelayRecorder, withhold
from gateway.services.documents import DocumentService
from gateway.settings import Settings
from gateway.storage.database import Database


def own_queue(clients: ClientStore) -> Callable[[str], str | None]:
    """The queue a recipient reads itself: an active client whose delivery target is AMQP."""

    def queue_of(recipient: str) -> str | None:
        client = clients.get(recipient)
        if client is None or client.revoked or client.deliver_to is None:
            return None
        return client.deliver_to.target if client.deliver_to.kind == "amqp" else None

    return queue_of


def build_relay(
    settings: Settings,
    db: Database,
    clients: ClientStore,
    documents: DocumentService,
    publisher: Callable[[], Publisher | None],
) -> Relay:
    """This process's relay, attached to its document service (which hands it each commit's rows)."""
    router = DocumentRouter(Names(settings.broker_namespace), own_queue(clients))
    recorder = RelayRecorder(documents.registry, db.read, documents.issue)
    relay = Relay(db, publisher, router, recorder, settings.relay, withhold=withhold)
    documents.relay = relay
    return relay
