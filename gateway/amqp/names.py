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

    # queues
    def deliver(self, client_id: str) -> str:
        """Gateway-internal queue feeding delivery to one recipient (de-duplicated, retried)."""
        return f"{self.ns}.deliver.{client_id}"

    def retry(self, client_id: str, delay_ms: int) -> str:
        """Holding queue: messages wait ``delay_ms`` here, then return to the delivery queue."""
        return f"{self.ns}.retry.{client_id}.{delay_ms}ms"

    def parking(self, queue: str) -> str:
        """Where messages from ``queue`` end when they exhausted their deliveries or attempts."""
        return f"{self.ns}.parking.{queue}"

    def dead_key(self, queue: str) -> str:
        return f"dead.{queue}"
