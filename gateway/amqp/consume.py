"""One policy for settling consumed messages. A consumer's handler does its work and says how it went;
whether the message is acked, handed out again later or parked is decided here, the same way for every
queue the gateway consumes:

- the handler returns → ``ack``;
- it raises :class:`Park` → ``reject(requeue=False)``: the queue's dead-letter exchange takes the
  message to its parking queue, where an operator finds it;
- it raises :class:`RetryLater`, or any other exception (storage or broker trouble, a defect) → logged
  once with the message id and the queue, held for a short back-off, then ``nack(requeue=True)``: the
  broker hands it out again, and the queue's delivery limit parks what never clears;
- it raises :class:`Abandon` → nothing is settled: the delivery's consumer or channel is gone, and the
  broker hands the message out again by itself;
- ``asyncio.CancelledError`` propagates, nothing is settled: the closing channel returns the message.

Every settle goes through :func:`gateway.amqp.settle.settle`: one that fails (the channel closed
meanwhile) is logged, not raised; the broker then redelivers, and every consumer is idempotent. A
message the handler settled itself (``message.processed``) is not settled again.

The back-off holds only the failing message: aiormq runs each delivery's callback in a task of its own,
so the channel's other deliveries go on meanwhile (within its prefetch, which the held message counts
against until it is nacked).

Why not aio-pika's ``message.process(requeue=…, reject_on_redelivered=…, ignore_processed=True)``: it
knows two outcomes, ack or reject with one fixed ``requeue``, where consumers here need three (ack, park,
retry later) chosen per failure. It rejects at once: a failure that lasts (the database is down) becomes a
loop of redeliveries that uses up the delivery limit within milliseconds and parks messages that only
needed to wait. ``reject_on_redelivered`` parks on a second delivery, whatever the cause, where the
queue's ``x-delivery-limit`` should decide. And it re-raises the handler's exception into aiormq's
delivery task (logged there as an unhandled task error, without the queue) and lets an ack on a closed
channel raise.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from aio_pika.abc import AbstractIncomingMessage

from gateway import logs
from gateway.amqp.settle import settle
from gateway.domain.identifiers import scrub

log = logging.getLogger(__name__)

#: How long a message that failed is held before it is handed back to the broker.
DEFAULT_BACKOFF_SECONDS = 1.0

Handler = Callable[[AbstractIncomingMessage], Awaitable[Any]]


class Park(Exception):
    """The message can never be handled as it is (unreadable, refused for good, out of attempts):
    reject it without requeueing, so its queue dead-letters it to the parking queue. ``level`` is the
    level its log line is written at."""

    def __init__(self, reason: str, *, level: int = logging.WARNING) -> None:
        super().__init__(reason)
        self.reason = reason
        self.level = level


class RetryLater(Exception):
    """Not now, maybe later (a dependency is down): hand the message back after the back-off."""


class Abandon(Exception):
    """Settle nothing: the delivery cannot be settled any more (its consumer was cancelled, or its
    channel closed or was replaced), and the broker hands the message out again by itself."""


async def consume(
    message: AbstractIncomingMessage,
    handler: Handler,
    *,
    queue: str,
    backoff: float = DEFAULT_BACKOFF_SECONDS,
    **context: str,
) -> None:
    """Run ``handler`` on ``message`` consumed from ``queue`` and settle the message by the outcome.
    ``context`` is bound to every log line written meanwhile, with the message and correlation ids."""
    with logs.consuming(message, queue=queue, **context):
        message_id = scrub(message.message_id or "-")
        try:
            await handler(message)
        except asyncio.CancelledError:
            raise
        except Park as park:
            log.log(park.level, "parking message %s from %s: %s", message_id, queue, park.reason)
            if not message.processed:
                await settle(message.reject(requeue=False))
        except Abandon as abandon:
            log.info("leaving message %s from %s to the broker: %s", message_id, queue, abandon)
        except RetryLater as later:
            log.warning(
                "message %s from %s not handled (%s); requeued in %ss", message_id, queue, later, backoff
            )
            await _retry(message, backoff)
        except Exception:
            log.exception("message %s from %s failed; requeued in %ss", message_id, queue, backoff)
            await _retry(message, backoff)
        else:
            if not message.processed:
                await settle(message.ack())


def callback(
    handler: Handler, *, queue: str, backoff: float = DEFAULT_BACKOFF_SECONDS, **context: str
) -> Callable[[AbstractIncomingMessage], Awaitable[None]]:
    """``handler`` under this policy, as a callback for ``AbstractQueue.consume``."""

    async def on_message(message: AbstractIncomingMessage) -> None:
        await consume(message, handler, queue=queue, backoff=backoff, **context)

    return on_message


async def _retry(message: AbstractIncomingMessage, backoff: float) -> None:
    if message.processed:
        return
    await asyncio.sleep(backoff)
    await settle(message.nack(requeue=True))
