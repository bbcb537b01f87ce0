"""Log lines are JSON and carry what an operator searches by: the incident id quoted in a problem
answer, the request id of the HTTP request (echoed in ``X-Request-ID``) and the message and correlation
ids of a consumed message — on lines from the stdlib ``logging`` too."""

from __future__ import annotations

import io
import json
import logging
import re
from collections.abc import Callable, Iterator
from types import SimpleNamespace
from typing import Any

import pytest
import structlog
from aiohttp import web

from gateway import logs
from gateway.problems import unavailable
from gateway.web.middleware import problems

INCIDENT = re.compile(r"incident ([0-9a-f-]{36})")


@pytest.fixture
def logged() -> Iterator[io.StringIO]:
    """The gateway's log configuration, writing into a buffer the test reads."""
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    logs.configure("INFO")
    buffer = io.StringIO()
    handler = root.handlers[0]
    assert isinstance(handler, logging.StreamHandler)
    handler.setStream(buffer)
    yield buffer
    root.handlers[:] = handlers
    root.setLevel(level)
    structlog.reset_defaults()


def lines(buffer: io.StringIO) -> list[dict[str, Any]]:
    return [json.loads(text) for text in buffer.getvalue().splitlines() if text.startswith("{")]


async def boom(_request: web.Request) -> web.Response:
    raise RuntimeError("a defect")


async def refuse(_request: web.Request) -> web.Response:
    raise unavailable("the partner registry is down")


async def fine(_request: web.Request) -> web.Response:
    logging.getLogger("gateway.test").info("handling")
    return web.json_response({"ok": True})


@pytest.fixture
async def client(aiohttp_client: Callable[..., Any], logged: io.StringIO) -> Any:
    app = web.Application(middlewares=[problems])
    app.router.add_get("/boom", boom, name="test.boom")
    app.router.add_get("/refuse", refuse, name="test.refuse")
    app.router.add_get("/fine", fine, name="test.fine")
    return await aiohttp_client(app)


async def test_an_unhandled_error_logs_the_incident_quoted_to_the_caller(
    client: Any, logged: io.StringIO
) -> None:
    resp = await client.get("/boom")
    assert resp.status == 503
    body = await resp.json()
    match = INCIDENT.search(body["detail"])
    assert match, body
    [line] = [x for x in lines(logged) if x.get("event") == "unhandled error"]
    assert line["incident"] == match.group(1)
    assert line["level"] == "error"
    assert line["request_id"] == resp.headers["X-Request-ID"]
    assert "RuntimeError: a defect" in line["exception"]


async def test_a_5xx_answered_on_purpose_gets_an_incident_too(client: Any, logged: io.StringIO) -> None:
    resp = await client.get("/refuse")
    assert resp.status == 503
    body = await resp.json()
    match = INCIDENT.search(body["detail"])
    assert match and body["detail"].startswith("the partner registry is down"), body
    assert resp.headers["Retry-After"] == "5"
    [line] = [x for x in lines(logged) if x.get("incident")]
    assert line["incident"] == match.group(1)
    assert line["status"] == 503


async def test_a_sane_request_id_is_kept_and_bound_to_every_line(client: Any, logged: io.StringIO) -> None:
    resp = await client.get("/fine", headers={"X-Request-ID": "case-system-7f3a"})
    assert resp.headers["X-Request-ID"] == "case-system-7f3a"
    [line] = [x for x in lines(logged) if x.get("event") == "handling"]
    assert line["request_id"] == "case-system-7f3a"


@pytest.mark.parametrize("incoming", [None, "", "001085012345", "a b", "x" * 200, "ok;forged"])
async def test_another_request_id_is_replaced_by_a_fresh_one(client: Any, incoming: str | None) -> None:
    headers = {} if incoming is None else {"X-Request-ID": incoming}
    resp = await client.get("/fine", headers=headers)
    assert re.fullmatch(r"[0-9a-f]{32}", resp.headers["X-Request-ID"])


async def test_an_unmatched_path_still_gets_a_request_id(client: Any) -> None:
    resp = await client.get("/nowhere")
    assert resp.status == 404
    assert resp.headers["X-Request-ID"]


def test_a_consumed_message_binds_its_ids_to_stdlib_lines(
    logged: io.StringIO,
) -> None:
    message = SimpleNamespace(message_id="6f1c2a52-3f0e-4a4b-9d7e-0c6a4c1f7e21", correlation_id="corr-1")
    with logs.consuming(message, recipient="THADS-HN"):
        logging.getLogger("aio_pika.fake").warning("inside")
    logging.getLogger("gateway.test").warning("outside")
    inside, outside = lines(logged)
    assert (inside["message_id"], inside["correlation_id"], inside["recipient"]) == (
        message.message_id,
        "corr-1",
        "THADS-HN",
    )
    assert "message_id" not in outside and "recipient" not in outside
