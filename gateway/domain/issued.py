"""The names of what the gateway issues itself, never a client (their ``sent_by`` is the gateway's own
role, :data:`gateway.domain.parties.GATEWAY`): one definition each, for the registry that declares them,
the services and workers that issue them, and the connectors and simulators that carry them."""

from __future__ import annotations

from typing import Final

#: A reminder before a document's deadline, or an escalation once it has passed, to its sender.
DEADLINE_EVENT: Final = "event.deadline"
#: The withdrawal of a document already handed to its recipient, sent to that recipient.
REVOCATION: Final = "document.revocation"


def copy_type(table: str) -> str:
    """What the copies routing table ``table`` makes are issued as: their ``message_id`` and natural key are
    named under it (a copy keeps its original's ``message_type``)."""
    return f"copy:{table}"
