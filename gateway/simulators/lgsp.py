"""A simulated LGSP: a ministry's or province's integration platform, an API gateway in front of partners.

What a real one does, on loopback (:class:`LgspSim`, an aiohttp server):

- ``POST /oauth2/token``: the OAuth2 client credentials grant (RFC 6749 §4.4). The client authenticates
  with HTTP Basic or ``client_id``/``client_secret`` form fields; a wrong one gets ``401
  {"error": "invalid_client"}``. Tokens live ``token_lifetime`` seconds. Every request is counted
  (:attr:`LgspSim.token_requests`).
- Any other path is a call to forward. It must carry ``Authorization: Bearer <a live token>`` (else 401)
  and ``lgspaccesstoken: <the configured value>`` (else 403); then the platform's rate limit may answer
  429 with ``Retry-After`` (every ``rate_limit_every``-th call, or every call during a storm). The call
  goes to the backend whose route prefix is the longest one its path starts with (``routes``: ``{"/nhnn/vcb":
  "http://127.0.0.1:9102/vcb"}``), the prefix replaced by the backend's URL, with the platform's own
  credentials towards the partner instead of the caller's (``Authorization: Bearer <backend_token>``; the
  ``lgspaccesstoken`` never leaves the platform). The partner's status, body and headers come back as they
  are. No route: 404; a backend that does not answer: 502, or 504 after ``backend_timeout`` seconds.

Every answer carries ``X-LGSP-Transaction-Id`` (the platform's id of the call). The platform's own
answers (401, 403, 404, 429, 502, 504 above) are marked: an ``X-LGSP-Error`` header naming the error
(``invalid_token``, ``access_denied``, ``rate_limited``, ``no_route``, ``backend_unavailable``,
``backend_timeout``) and a problem+json body with the same ``lgsp_error``. That mark is how the gateway
tells them from the partner's own statuses, passed through unmarked (gateway/transports/lgsp.py).

Switches for tests, in process (:meth:`LgspSim.expire_tokens`, :meth:`LgspSim.storm`,
``token_endpoint_down``, ``retry_after``…) and over HTTP for another process: ``POST
/_sim/expire-tokens``, ``POST /_sim/storm {"on": bool, "calls"?: n}``, ``GET /_sim/stats``. Nothing under
``/_sim/`` is forwarded.
"""

from __future__ import annotations

import base64
import binascii
import collections
import hmac
import math
import secrets
import time
import uuid
from collections.abc import Callable, Mapping
from typing import Any, Final
from urllib.parse import unquote_plus

import aiohttp
from aiohttp import web
from multidict import CIMultiDict

TOKEN_PATH: Final = "/oauth2/token"  # noqa: S105 - a path, not a secret
ADMIN_PREFIX: Final = "/_sim/"
ERROR_HEADER: Final = "X-LGSP-Error"
TRANSACTION_HEADER: Final = "X-LGSP-Transaction-Id"
ACCESS_TOKEN_HEADER: Final = "lgspaccesstoken"  # noqa: S105 - a header name
#: Headers that belong to one hop, or to the caller's credentials on the platform: never forwarded.
_NOT_FORWARDED: Final = frozenset(
    {
        "host",
        "authorization",
        ACCESS_TOKEN_HEADER,
        "content-length",
        "transfer-encoding",
        "connection",
        "keep-alive",
        "te",
        "upgrade",
        "proxy-authorization",
        "proxy-connection",
    }
)
#: Of the partner's answer, what aiohttp already undid (decompression) or sets itself.
_NOT_RETURNED: Final = frozenset(
    {"content-length", "transfer-encoding", "content-encoding", "connection", "keep-alive", "date", "server"}
)
#: The largest call forwarded (the gateway's partner calls are a few kilobytes).
MAX_BODY_BYTES: Final = 4 * 1024 * 1024


class LgspSim:
    """One simulated LGSP platform (see the module's docstring). ``clock``: when tokens expire."""

    def __init__(
        self,
        routes: Mapping[str, str] | None = None,
        *,
        name: str = "HN",
        client_id: str = "thads-gateway",
        client_secret: str = "lgsp-sim-client-secret",  # noqa: S107 - a simulator's fixed credential
        access_token: str = "lgsp-sim-access-token",  # noqa: S107
        token_lifetime: float = 300.0,
        rate_limit_every: int = 0,
        retry_after: str | None = "1",
        backend_token: str = "lgsp-sim-backend",  # noqa: S107
        backend_timeout: float = 30.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.name = name
        #: Route prefix → the backend's base URL; may be changed while running.
        self.routes: dict[str, str] = {p.rstrip("/"): url.rstrip("/") for p, url in (routes or {}).items()}
        self.client_id = client_id
        self.client_secret = client_secret
        self.access_token = access_token
        self.token_lifetime = token_lifetime
        #: Every N-th authenticated call is answered 429 (0: never, outside a storm).
        self.rate_limit_every = rate_limit_every
        #: The ``Retry-After`` of a 429: delay-seconds or an HTTP date (None: none sent).
        self.retry_after = retry_after
        self.backend_token = backend_token
        self.backend_timeout = backend_timeout
        #: The token endpoint answers 503 while true.
        self.token_endpoint_down = False
        self._clock = clock
        self._tokens: dict[str, float] = {}  # token → expires at (clock)
        self._storm: int | None = 0  # calls still answered 429; None: until switched off
        self._calls = 0
        #: Token requests received (granted or not).
        self.token_requests = 0
        #: Tokens issued.
        self.tokens_issued = 0
        #: Calls forwarded to a backend.
        self.forwarded = 0
        #: The platform's own refusals, by error (``invalid_token``, ``rate_limited``…).
        self.refusals: collections.Counter[str] = collections.Counter()
        #: The transaction id of the last call forwarded.
        self.last_transaction_id: str | None = None
        self._runner: web.AppRunner | None = None
        self._http: aiohttp.ClientSession | None = None
        self.url = ""

    # -- switches ----------------------------------------------------------------------------------------

    def expire_tokens(self) -> None:
        """Every token issued so far is refused from now on (as when the platform restarts)."""
        self._tokens.clear()

    def storm(self, on: bool = True, *, calls: int | None = None) -> None:
        """Answer 429 to every authenticated call: for the next ``calls`` of them, or until switched off."""
        self._storm = (calls if calls is not None else None) if on else 0

    @property
    def storming(self) -> bool:
        return self._storm is None or self._storm > 0

    # -- life ----------------------------------------------------------------------------------------------

    def app(self) -> web.Application:
        app = web.Application(client_max_size=MAX_BODY_BYTES)
        app.router.add_post(TOKEN_PATH, self._token)
        app.router.add_post(ADMIN_PREFIX + "expire-tokens", self._admin_expire)
        app.router.add_post(ADMIN_PREFIX + "storm", self._admin_storm)
        app.router.add_get(ADMIN_PREFIX + "stats", self._admin_stats)
        app.router.add_route("*", "/{tail:.*}", self._forward)
        return app

    async def start(self, host: str = "127.0.0.1", port: int = 0) -> str:
        """Listen on ``host:port`` (0: any free port); returns the platform's base URL."""
        # The platform's own client towards the partners: no redirects followed, like any gateway.
        self._http = aiohttp.ClientSession(auto_decompress=True)
        self._runner = web.AppRunner(self.app(), handler_cancellation=True, shutdown_timeout=1.0)
        await self._runner.setup()
        site = web.TCPSite(self._runner, host, port)
        await site.start()
        self.url = f"http://{host}:{int(self._runner.addresses[-1][1])}"
        return self.url

    async def close(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
        if self._http is not None:
            await self._http.close()
            self._http = None

    # -- the token endpoint ------------------------------------------------------------------------------

    async def _token(self, request: web.Request) -> web.Response:
        self.token_requests += 1
        if self.token_endpoint_down:
            return web.json_response({"error": "temporarily_unavailable"}, status=503)
        form = await request.post()
        client_id, secret = _basic(request.headers.get("Authorization"))
        if client_id is None:
            client_id, secret = str(form.get("client_id", "")), str(form.get("client_secret", ""))
        if not (
            hmac.compare_digest(client_id.encode(), self.client_id.encode())
            and hmac.compare_digest((secret or "").encode(), self.client_secret.encode())
        ):
            # RFC 6749 §5.2: invalid_client, with the scheme the client should use.
            return web.json_response(
                {"error": "invalid_client", "error_description": "client authentication failed"},
                status=401,
                headers={"WWW-Authenticate": 'Basic realm="lgsp"', "Cache-Control": "no-store"},
            )
        if form.get("grant_type") != "client_credentials":
            return web.json_response({"error": "unsupported_grant_type"}, status=400)
        token = secrets.token_urlsafe(24)
        self._tokens[token] = self._clock() + self.token_lifetime
        self.tokens_issued += 1
        body: dict[str, Any] = {
            "access_token": token,
            "token_type": "Bearer",
            "expires_in": math.ceil(self.token_lifetime),
        }
        if form.get("scope"):
            body["scope"] = str(form["scope"])
        return web.json_response(body, headers={"Cache-Control": "no-store", "Pragma": "no-cache"})

    def _live(self, authorization: str | None) -> bool:
        scheme, _, token = (authorization or "").partition(" ")
        expires = self._tokens.get(token.strip()) if scheme.lower() == "bearer" else None
        if expires is None:
            return False
        if self._clock() >= expires:
            del self._tokens[token.strip()]
            return False
        return True

    # -- forwarding -----------------------------------------------------------------------------------------

    async def _forward(self, request: web.Request) -> web.StreamResponse:
        transaction = str(uuid.uuid4())
        if not self._live(request.headers.get("Authorization")):
            return self._refuse(
                401,
                "invalid_token",
                "the access token is missing, unknown or expired",
                transaction,
                {"WWW-Authenticate": 'Bearer error="invalid_token"'},
            )
        offered = request.headers.get(ACCESS_TOKEN_HEADER, "")
        if not hmac.compare_digest(offered.encode(), self.access_token.encode()):
            return self._refuse(403, "access_denied", "lgspaccesstoken is missing or not valid", transaction)
        self._calls += 1
        if self._rate_limited():
            extra = {"Retry-After": self.retry_after} if self.retry_after is not None else {}
            return self._refuse(429, "rate_limited", "too many calls", transaction, extra)
        route = self._route(request.path)
        if route is None:
            return self._refuse(404, "no_route", "no service is published under this path", transaction)
        prefix, backend = route
        query = f"?{request.query_string}" if request.query_string else ""
        url = backend + request.path[len(prefix) :] + query
        headers = {k: v for k, v in request.headers.items() if k.lower() not in _NOT_FORWARDED}
        headers["Authorization"] = f"Bearer {self.backend_token}"
        headers[TRANSACTION_HEADER] = transaction
        body = await request.read()
        if self._http is None:  # closing
            return self._refuse(503, "closing", "the platform is shutting down", transaction)
        try:
            async with self._http.request(
                request.method,
                url,
                data=body,
                headers=headers,
                allow_redirects=False,
                timeout=aiohttp.ClientTimeout(total=self.backend_timeout),
            ) as answer:
                data = await answer.read()
                returned = CIMultiDict(
                    (k, v) for k, v in answer.headers.items() if k.lower() not in _NOT_RETURNED
                )
                status = answer.status
        except TimeoutError:
            return self._refuse(504, "backend_timeout", "the partner did not answer in time", transaction)
        except aiohttp.ClientError:
            return self._refuse(502, "backend_unavailable", "the partner cannot be reached", transaction)
        self.forwarded += 1
        self.last_transaction_id = transaction
        returned[TRANSACTION_HEADER] = transaction
        return web.Response(status=status, body=data, headers=returned)

    def _rate_limited(self) -> bool:
        if self._storm is None:
            return True
        if self._storm > 0:
            self._storm -= 1
            return True
        return self.rate_limit_every > 0 and self._calls % self.rate_limit_every == 0

    def _route(self, path: str) -> tuple[str, str] | None:
        matching = [p for p in self.routes if path == p or path.startswith(p + "/") or p == ""]
        if not matching:
            return None
        prefix = max(matching, key=len)
        return prefix, self.routes[prefix]

    def _refuse(
        self,
        status: int,
        error: str,
        detail: str,
        transaction: str,
        headers: Mapping[str, str] | None = None,
    ) -> web.Response:
        self.refusals[error] += 1
        problem = {
            "type": f"urn:lgsp:error:{error}",
            "title": error.replace("_", " "),
            "status": status,
            "detail": detail,
            "lgsp_error": error,
        }
        return web.json_response(
            problem,
            status=status,
            content_type="application/problem+json",
            headers={ERROR_HEADER: error, TRANSACTION_HEADER: transaction, **(headers or {})},
        )

    # -- switches over HTTP ------------------------------------------------------------------------------

    async def _admin_expire(self, _: web.Request) -> web.Response:
        self.expire_tokens()
        return web.json_response(self._stats())

    async def _admin_storm(self, request: web.Request) -> web.Response:
        try:
            data = await request.json()
        except ValueError:
            data = None
        on, calls = (data.get("on"), data.get("calls")) if isinstance(data, dict) else (None, None)
        if not isinstance(on, bool) or not (calls is None or (isinstance(calls, int) and calls >= 0)):
            return web.json_response({"error": 'expected {"on": true|false, "calls"?: n}'}, status=400)
        self.storm(on, calls=calls)
        return web.json_response(self._stats())

    async def _admin_stats(self, _: web.Request) -> web.Response:
        return web.json_response(self._stats())

    def _stats(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "token_requests": self.token_requests,
            "tokens_issued": self.tokens_issued,
            "live_tokens": len(self._tokens),
            "forwarded": self.forwarded,
            "refusals": dict(self.refusals),
            "storm": self.storming,
        }


def _basic(authorization: str | None) -> tuple[str | None, str | None]:
    """Client id and secret of an HTTP Basic header (form-decoded, RFC 6749 §2.3.1); (None, None) without."""
    scheme, _, value = (authorization or "").partition(" ")
    if scheme.lower() != "basic":
        return None, None
    try:
        decoded = base64.b64decode(value.strip(), validate=True).decode()
    except (binascii.Error, UnicodeDecodeError):
        return "", ""
    client_id, _, secret = decoded.partition(":")
    return unquote_plus(client_id), unquote_plus(secret)
