"""Structured logs: JSON lines through the stdlib, so library logs look like ours.

Every line carries what is bound for the work at hand (structlog contextvars, merged into stdlib
records too): ``request_id`` for an HTTP request, ``message_id``/``correlation_id`` for a consumed
message, and whatever a call passes as ``extra`` (the ``incident`` of a problem answer).
"""

from __future__ import annotations

import logging
import re
import sys
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import structlog

from gateway.domain.identifiers import holds_personal_id, scrub, scrub_value

#: An incoming X-Request-ID worth keeping: short, printable, no spaces.
_SANE_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:/+=-]{1,128}$")


def configure(level: str = "INFO", json: bool = True) -> None:
    shared: list[structlog.types.Processor] = [
        structlog.contextvars.merge_contextvars,
        structlog.stdlib.add_log_level,
        structlog.stdlib.add_logger_name,
        # `extra={...}` of stdlib calls (the incident id of a 503, say) is otherwise dropped.
        structlog.stdlib.ExtraAdder(),
        structlog.processors.TimeStamper(fmt="iso", utc=True),
    ]
    renderer: structlog.types.Processor = (
        structlog.processors.JSONRenderer() if json else structlog.dev.ConsoleRenderer(colors=False)
    )
    formatter = structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=shared,
        processors=[
            structlog.stdlib.ProcessorFormatter.remove_processors_meta,
            structlog.processors.format_exc_info,
            scrub_event,
            renderer,
        ],
    )
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(formatter)
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    logging.getLogger("aiohttp.access").setLevel("WARNING")
    logging.getLogger("aiormq").setLevel("WARNING")
    logging.getLogger("aio_pika").setLevel("WARNING")
    logging.getLogger("alembic").setLevel("WARNING")
    # It would log statement parameters (documents, personal IDs) once the level is DEBUG.
    logging.getLogger("sqlalchemy").setLevel("WARNING")
    structlog.configure(
        processors=[*shared, structlog.stdlib.ProcessorFormatter.wrap_for_formatter],
        logger_factory=structlog.stdlib.LoggerFactory(),
        cache_logger_on_first_use=True,
    )


def scrub_event(
    _logger: Any, _method: str, event_dict: structlog.types.EventDict
) -> structlog.types.EventDict:
    """Every string of a log line, message and traceback included, with personal IDs masked by the one
    definition the audit log uses: a line a library logs, or one that forgot to scrub, holds none."""
    return {key: scrub_value(value) for key, value in event_dict.items()}


def request_id(incoming: str | None) -> str:
    """The caller's ``X-Request-ID`` when it is sane (short, printable, no personal ID), else a new one."""
    if incoming and _SANE_REQUEST_ID.fullmatch(incoming) and not holds_personal_id(incoming):
        return incoming
    return uuid.uuid4().hex


@contextmanager
def consuming(message: Any, **more: str) -> Iterator[None]:
    """Bind a consumed AMQP message's ``message_id`` and ``correlation_id`` to every line logged inside."""
    fields: dict[str, str] = {}
    if getattr(message, "message_id", None):
        fields["message_id"] = scrub(str(message.message_id))
    if getattr(message, "correlation_id", None):
        fields["correlation_id"] = scrub(str(message.correlation_id))
    with structlog.contextvars.bound_contextvars(**fields, **more):
        yield
