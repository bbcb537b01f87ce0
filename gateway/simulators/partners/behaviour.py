"""How a simulated partner misbehaves: latency, transient 503s, and the modes tests switch at runtime.

Modes: ``normal`` (small random latency, a few transient 503s), ``slow`` (every answer waits
``slow_delay`` first: longer than the gateway's timeout), ``failing`` (alternately an HTTP 503 and an HTTP
200 whose body is malformed) and ``down``. A server started ``down`` does not listen at all (see
``servers.py``); switching a running server to ``down`` makes it reset every connection that sends a
request (SO_LINGER 0, then abort), so clients see the connection reset before any byte of an answer.

``GET /_sim/mode`` and ``POST /_sim/mode {"mode": ..., "slow_delay"?: s, "error_rate"?: p}`` read and switch
the mode of a running simulator from another process. Nothing under a ``/_sim/`` segment (``/_sim/mode``,
a partner's own ``/<partner>/_sim/...``) is ever slowed down or failed.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import random
import socket
import struct
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Literal

from aiohttp import web
from aiohttp.typedefs import Handler, Middleware

Mode = Literal["normal", "slow", "failing", "down"]
MODES: tuple[Mode, ...] = ("normal", "slow", "failing", "down")
ADMIN_PREFIX = "/_sim/"

#: Builds the response a failure sends: each protocol (JSON, SOAP) fails in its own dialect.
Reply = Callable[[], web.Response]


@dataclass
class Behaviour:
    mode: Mode = "normal"
    latency: tuple[float, float] = (0.005, 0.05)  # seconds, uniform
    error_rate: float = 0.01  # share of requests answered 503 in normal and slow modes
    slow_delay: float = 30.0
    seed: int = 0
    rng: random.Random = field(init=False, repr=False)
    failures: int = field(default=0, init=False)  # answers given in "failing" mode, to alternate their kind

    def __post_init__(self) -> None:
        self.rng = random.Random(self.seed)  # noqa: S311 - simulated faults, not security
        self.set_mode(self.mode)

    def set_mode(self, mode: str) -> None:
        if mode not in MODES:
            raise ValueError(f"unknown mode {mode!r}; one of {', '.join(MODES)}")
        self.mode = mode
        self.failures = 0


BEHAVIOUR = web.AppKey("behaviour", Behaviour)


def middleware(behaviour: Behaviour, unavailable: Reply, garbage: Reply) -> Middleware:
    @web.middleware
    async def misbehave(request: web.Request, handler: Handler) -> web.StreamResponse:
        if ADMIN_PREFIX in request.path:
            return await handler(request)
        if behaviour.mode == "down":
            return _reset(request)
        low, high = behaviour.latency
        await asyncio.sleep(
            behaviour.slow_delay if behaviour.mode == "slow" else behaviour.rng.uniform(low, high)
        )
        if behaviour.mode == "failing":
            behaviour.failures += 1
            return unavailable() if behaviour.failures % 2 else garbage()
        if behaviour.rng.random() < behaviour.error_rate:
            return unavailable()
        return await handler(request)

    return misbehave


def _reset(request: web.Request) -> web.Response:
    transport = request.transport
    if transport is not None:
        sock = transport.get_extra_info("socket")
        if sock is not None:
            # Linger 0: closing sends a TCP RST, as a crashed partner's host does, rather than a polite FIN.
            with contextlib.suppress(OSError):
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        transport.abort()
    # Never reaches the client: aiohttp drops a response whose connection is already gone.
    return web.Response(status=503)


def simulator_app(behaviour: Behaviour, unavailable: Reply, garbage: Reply) -> web.Application:
    """An application with the misbehaving middleware and the ``/_sim/mode`` admin endpoint."""
    app = web.Application(middlewares=[middleware(behaviour, unavailable, garbage)], client_max_size=1 << 20)
    app[BEHAVIOUR] = behaviour
    app.router.add_get(ADMIN_PREFIX + "mode", _get_mode)
    app.router.add_post(ADMIN_PREFIX + "mode", _post_mode)
    return app


def _mode_body(behaviour: Behaviour) -> dict[str, object]:
    return {"mode": behaviour.mode, "slow_delay": behaviour.slow_delay, "error_rate": behaviour.error_rate}


async def _get_mode(request: web.Request) -> web.Response:
    return web.json_response(_mode_body(request.app[BEHAVIOUR]))


async def _post_mode(request: web.Request) -> web.Response:
    behaviour = request.app[BEHAVIOUR]
    try:
        body = await request.json()
        if not isinstance(body, dict):
            raise TypeError("the body must be a JSON object")
        slow_delay = float(body.get("slow_delay", behaviour.slow_delay))
        error_rate = float(body.get("error_rate", behaviour.error_rate))
        if slow_delay < 0 or not 0 <= error_rate <= 1:
            raise ValueError("slow_delay must be >= 0 and error_rate within 0..1")
        behaviour.set_mode(str(body.get("mode", behaviour.mode)))
    except (ValueError, TypeError) as exc:
        return web.json_response({"error": str(exc)}, status=400)
    behaviour.slow_delay, behaviour.error_rate = slow_delay, error_rate
    return web.json_response(_mode_body(behaviour))


def json_unavailable() -> web.Response:
    return web.json_response(
        {"error": "service_unavailable", "message": "Hệ thống đang bận, vui lòng thử lại sau."},
        status=503,
        headers={"Retry-After": "1"},
        dumps=lambda obj: json.dumps(obj, ensure_ascii=False),
    )


def json_garbage() -> web.Response:
    # A 200 whose JSON stops mid-way, as when a partner's proxy cuts a response short.
    return web.Response(
        status=200, body=b'{"reference": "ERR-0000", "match_status": "fou', content_type="application/json"
    )
