"""Names of every exchange and queue the gateway declares, derived from the namespace. Pure."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Names:
    ns: str

    # exchanges
    @property
    def documents(self) -> str:
        """Documents to recipients (topic, routing key = recipient agency code)."""
        return f"{self.ns}.documents"

    @property
    def dlx(self) -> str:
        """Dead letters (topic): routed to the parking queue of the queue they died in."""
        return f"{self.ns}.dlx"

    @property
    def callbacks(self) -> str:
        """Inquiry results to callers' callback URLs (topic, routing key = client id)."""
        return f"{self.ns}.callbacks"

    @property
    def hints(self) -> str:
        """Wake-ups for api processes (fanout, transient): "this inquiry became final". Only a hint —
        the database is the truth — so its messages are neither persistent nor confirmed."""
        return f"{self.ns}.hints"

    @property
    def events(self) -> str:
        """Status events (topic, routing key = ``<sender>.<recipient>.<status>.<message_type>``)."""
        return f"{self.ns}.events"

    def event_subscription(self, client_id: str, subscription_id: str) -> str:
        """One subscription's queue: bound to ``events`` with its client's keys only."""
        return f"{self.ns}.events.{client_id}.{subscription_id}"

    def exchange(self, logical: str) -> str:
        """The outbox stores logical exchange names (``documents``, ``requests``...)."""
        return f"{self.ns}.{logical}"

    # queues
    @property
    def callbacks_queue(self) -> str:
        return f"{self.ns}.callbacks"

    def deliver(self, client_id: str) -> str:
        """Gateway-internal queue feeding delivery to one recipient (de-duplicated, retried). A partner's
        is its one work queue: its lookup requests (message type ``asset.lookup``) wait there too."""
        return f"{self.ns}.deliver.{client_id}"

    def deliver_urgent(self, client_id: str) -> str:
        """The recipient's urgent lane: urgent documents only, consumed on a channel of its own, so an
        urgent document never waits behind the recipient's normal backlog."""
        return f"{self.ns}.deliver.{client_id}.urgent"

    @staticmethod
    def urgent_key(recipient: str) -> str:
        """Routing key of an urgent document on ``documents`` (the normal lane's key is the recipient)."""
        return f"{recipient}.urgent"

    @classmethod
    def routing_key(cls, recipient: str, priority: str) -> str:
        """Where a document for ``recipient`` enters ``documents``: its urgent lane or its normal one."""
        return cls.urgent_key(recipient) if priority == "urgent" else recipient

    def retry(self, delay_ms: int) -> str:
        """Retry tier shared by every recipient: an exchange and a holding queue of the same name.
        Published with the recipient as routing key, a message waits ``delay_ms`` there, then
        dead-letters back through ``documents`` (routing key kept) to its recipient's delivery queue."""
        return f"{self.ns}.retry.{delay_ms}ms"

    def parking(self, queue: str) -> str:
        """Where messages from ``queue`` end when they exhausted their deliveries or attempts."""
        return f"{self.ns}.parking.{queue}"

    def dead_key(self, queue: str) -> str:
        return f"dead.{queue}"

    def recipient_queues(self, recipient: str) -> list[str]:
        """Every queue declared for one recipient's deliveries (its own AMQP queue aside)."""
        deliver, urgent = self.deliver(recipient), self.deliver_urgent(recipient)
        return [deliver, self.parking(deliver), urgent, self.parking(urgent)]

    def partner_queues(self, partner_codes: list[str]) -> list[str]:
        """Every queue lookups to ``partner_codes`` use: each partner's work queue and urgent lane (with
        their parking queues) and the callbacks queue (with its parking queue)."""
        queues = [q for code in partner_codes for q in self.recipient_queues(code)]
        return [*queues, self.callbacks_queue, self.parking(self.callbacks_queue)]

    @property
    def exchanges(self) -> list[str]:
        """Every exchange :func:`gateway.amqp.topology.declare_exchanges` declares."""
        return [self.documents, self.dlx, self.callbacks, self.events, self.hints]
