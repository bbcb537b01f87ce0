"""Status events: what a status change tells subscribers, and how it is routed. Pure.

Routing key: ``<sender>.<recipient>.<status>.<message_type>``. Agency codes and statuses hold no dots;
the message type may (``judgment.delivery``) and so comes last, where a binding names it word for word
or covers it with ``#``. A client's bindings name it as sender or as recipient, so its queue only ever
receives events of messages it sent or receives.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, Final

from gateway.domain.identifiers import scrub

#: The ``message_type`` signed webhooks of status events carry in ``Gateway-Message-Type``.
WEBHOOK_TYPE: Final = "gateway.status_event"
#: Asset inquiries have status events too, one per source answered: the ``message_id`` is the inquiry's,
#: the sender the partner that answered, the recipient the client that asked, ``source`` the source.
ASSET_INQUIRY: Final = "asset.inquiry"


def routing_key(sender: str, recipient: str, status: str, message_type: str) -> str:
    return f"{sender}.{recipient}.{status}.{message_type}"


def binding_keys(client_id: str, message_types: Iterable[str] = ()) -> list[str]:
    """The keys binding a subscriber's queue: its messages as sender and as recipient, of ``message_types``
    only when some are given."""
    types = sorted(set(message_types)) or ["#"]
    return [key for t in types for key in (f"{client_id}.*.*.{t}", f"*.{client_id}.*.{t}")]


def body(
    event_id: str,
    message_id: str,
    message_type: str,
    sender: str,
    recipient: str,
    status: str,
    previous_status: str | None,
    at: str,
    reason: str | None,
    source: str | None = None,
) -> dict[str, Any]:
    """The event: metadata only, never the document; personal IDs in a reason are masked. ``source``:
    an asset inquiry's event names the source that answered (``bank:BANK-VCB``, ``land``...); the
    ``message_id`` is then the inquiry's id and the sender the partner that answered."""
    extra = {"source": source} if source is not None else {}
    return {
        "event_id": event_id,
        "message_id": message_id,
        "message_type": message_type,
        "sender": sender,
        "recipient": recipient,
        "status": status,
        "previous_status": previous_status,
        "at": at,
        "reason": scrub(reason) if reason else None,
        **extra,
    }


def matches(event: dict[str, Any], client_id: str, message_types: Iterable[str]) -> bool:
    """Whether ``event`` is one ``client_id`` subscribed to (the same rule its bindings state)."""
    types = set(message_types)
    mine = client_id in (event.get("sender"), event.get("recipient"))
    return mine and (not types or event.get("message_type") in types)
