"""Document status lifecycle: received -> queued -> delivered -> confirmed, or failed.

Pure rules, no I/O. Storage applies a transition with a conditional update built from
:func:`sources_for`, so concurrent writers cannot move a message backwards.
"""

from __future__ import annotations

from enum import StrEnum


class Status(StrEnum):
    RECEIVED = "received"
    QUEUED = "queued"
    DELIVERED = "delivered"
    CONFIRMED = "confirmed"
    FAILED = "failed"


ORDER = [Status.RECEIVED, Status.QUEUED, Status.DELIVERED, Status.CONFIRMED]

_ALLOWED: dict[Status, frozenset[Status]] = {
    # A relay may publish after the delivery already happened (redelivery of a confirmed publish whose
    # bookkeeping was lost), so "queued" only ever moves forward from "received".
    Status.QUEUED: frozenset({Status.RECEIVED}),
    Status.DELIVERED: frozenset({Status.RECEIVED, Status.QUEUED, Status.FAILED}),
    Status.CONFIRMED: frozenset({Status.DELIVERED}),
    Status.FAILED: frozenset({Status.RECEIVED, Status.QUEUED}),
}


def sources_for(target: Status) -> frozenset[Status]:
    """Statuses from which ``target`` may be reached."""
    return _ALLOWED.get(target, frozenset())


def can_move(current: Status, target: Status) -> bool:
    return current in sources_for(target)


def is_delivered(status: Status) -> bool:
    """Already handed to the recipient: a redelivered copy must not be passed on again."""
    return status in (Status.DELIVERED, Status.CONFIRMED)
