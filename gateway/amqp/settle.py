"""Settling deliveries after a disconnect."""

from __future__ import annotations

import logging
from collections.abc import Awaitable
from typing import Any

log = logging.getLogger(__name__)


async def settle(awaitable: Awaitable[Any]) -> None:
    """Ack/nack/reject may fail once the channel is gone; the broker then redelivers, and every
    consumer here is idempotent, so logging is all there is to do."""
    try:
        await awaitable
    except Exception as exc:
        log.warning("could not settle a delivery: %s", exc)
