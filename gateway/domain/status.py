"""Document status lifecycle. Pure rules, no I/O.

    received -> queued -> delivered -> [answered ->] confirmed
    failed (gave up delivering), revoked (withdrawn by its sender), overdue (past its deadline)

Storage applies a transition with a conditional update built from :func:`sources_for`, so concurrent
writers cannot move a message backwards. ``overdue`` is a status a document leaves again when it is
finally delivered or answered: the ``overdue`` evidence stays in its timeline.
"""

from __future__ import annotations

from enum import StrEnum


class Status(StrEnum):
    RECEIVED = "received"
    QUEUED = "queued"
    DELIVERED = "delivered"
    ANSWERED = "answered"
    CONFIRMED = "confirmed"
    FAILED = "failed"
    REVOKED = "revoked"
    OVERDUE = "overdue"


_ALLOWED: dict[Status, frozenset[Status]] = {
    # A relay may publish after the delivery already happened (redelivery of a confirmed publish whose
    # bookkeeping was lost), so "queued" only ever moves forward from "received".
    Status.QUEUED: frozenset({Status.RECEIVED}),
    Status.DELIVERED: frozenset({Status.RECEIVED, Status.QUEUED, Status.FAILED, Status.OVERDUE}),
    # An answer may overtake the bookkeeping of its delivery (a fast partner), or come after we gave up.
    Status.ANSWERED: frozenset(
        {Status.RECEIVED, Status.QUEUED, Status.DELIVERED, Status.OVERDUE, Status.FAILED}
    ),
    Status.CONFIRMED: frozenset({Status.DELIVERED, Status.ANSWERED}),
    Status.FAILED: frozenset({Status.RECEIVED, Status.QUEUED, Status.OVERDUE}),
    Status.REVOKED: frozenset(
        {Status.RECEIVED, Status.QUEUED, Status.DELIVERED, Status.OVERDUE, Status.FAILED}
    ),
    Status.OVERDUE: frozenset({Status.RECEIVED, Status.QUEUED, Status.DELIVERED}),
}

#: Statuses in which a document still waits for something (delivery, an answer, a confirmation).
OPEN = frozenset({Status.RECEIVED, Status.QUEUED, Status.DELIVERED, Status.ANSWERED, Status.OVERDUE})


def sources_for(target: Status) -> frozenset[Status]:
    """Statuses from which ``target`` may be reached."""
    return _ALLOWED.get(target, frozenset())


def is_delivered(status: Status) -> bool:
    """Already handed to the recipient: a redelivered copy must not be passed on again."""
    return status in (Status.DELIVERED, Status.ANSWERED, Status.CONFIRMED)


def must_not_deliver(status: Status) -> bool:
    """Delivered already, or withdrawn by its sender before delivery: a queued copy is dropped."""
    return is_delivered(status) or status == Status.REVOKED
