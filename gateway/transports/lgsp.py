"""``lgsp``: through a ministry's or province's integration platform (LGSP), an API gateway in front of
its partners.

Every call goes to ``{platform.base_url}{partner.lgsp.path}{call.path}`` (a SOAP call's path is empty:
the partner's path is its endpoint) with the connector's headers and two credentials of the gateway's
own on that platform — never a partner's bearer token:

- ``Authorization: Bearer <access token>``, an OAuth2 token of the client credentials grant
  (RFC 6749 §4.4) from the platform's token endpoint, shared by every partner on that platform
  (:class:`TokenSource`);
- ``lgspaccesstoken: <value>``, the value the platform's operator issued, read per call from the
  environment variable or file the configuration names (a rotated value needs no restart).

The platform answers some calls itself: a refused token (401), a refused caller (403), its rate limit
(429), a partner it cannot reach (5xx). Such an answer is told from the partner's own by the platform's
mark (:func:`platform_error`): an ``X-LGSP-Error`` header naming the platform's error (what the simulated
LGSP sends, gateway/simulators/lgsp.py), or the API-gateway fault body WSO2-based platforms answer with.
An unmarked status is the partner's, handed to the connector as for a direct call. The platform's own:

- 401: the token is dropped and fetched again once, and the call sent once more; a second 401 is a
  refusal;
- 401 again, 403, another 4xx: :class:`PlatformError`, not retryable, naming the platform;
- 429: :class:`PlatformError` retryable, ``counts_for_breaker=False`` (the partner did nothing wrong:
  its breaker stays closed) with the ``Retry-After`` it asked for, which the guard waits at least;
- 5xx: :class:`PlatformError` retryable (the partner behind it is unreachable: it counts).

Evidence of a call the platform carried: ``{"platform": "lgsp", "name", "transaction_id", "path",
"status"}``, ``transaction_id`` from the platform's ``X-LGSP-Transaction-Id`` header (left out when it
sends none).
"""

from __future__ import annotations

import asyncio
import base64
import json
import logging
import re
import ssl
import time
from collections.abc import Callable
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any, Final
from urllib.parse import quote_plus, urlencode

import aiohttp

from gateway.connectors.base import ConnectorError
from gateway.partners import LgspPlatform, Partner, read_secret
from gateway.transports.base import Call, PlatformError, Reply, TransportKind
from gateway.transports.context import record_evidence
from gateway.transports.http import exchange

log = logging.getLogger(__name__)

#: The header the platform's own answers carry, naming its error (``invalid_token``, ``rate_limited``…).
PLATFORM_ERROR_HEADER: Final = "X-LGSP-Error"
#: The platform's id of a call it carried, kept as evidence.
TRANSACTION_HEADER: Final = "X-LGSP-Transaction-Id"
#: The header of the credentials the platform's operator issued.
ACCESS_TOKEN_HEADER: Final = "lgspaccesstoken"  # noqa: S105 - a header name
#: One token request may take this long; a platform slower than that is unavailable.
TOKEN_TIMEOUT_SECONDS: Final = 10.0
#: A token is renewed this long before it expires (a tenth of its lifetime for shorter-lived ones), so
#: no call leaves with a token that expires on the way.
EXPIRY_MARGIN_SECONDS: Final = 30.0
#: The lifetime assumed for a token answered without ``expires_in`` (RFC 6749 makes it optional); a
#: platform that drops it earlier answers 401, which refreshes it.
DEFAULT_LIFETIME_SECONDS: Final = 300.0
#: WSO2 API Manager's gateway faults (authentication 9009xx, throttling 9008xx): the platform's own.
_GATEWAY_FAULTS: Final = range(900800, 901000)
_WSO2_NAMESPACE: Final = b"http://wso2.org/apimanager"
#: What of a platform's error code may be logged or shown: a short token, never free text.
_CODE: Final = re.compile(r"[A-Za-z0-9_.:-]{1,64}")


def parse_retry_after(value: str | None, now: datetime | None = None) -> float | None:
    """Seconds a ``Retry-After`` asks to wait: delay-seconds or an HTTP date (RFC 9110 §10.2.3);
    ``None`` when absent or unreadable, 0 for a date already past."""
    if value is None or not value.strip():
        return None
    text = value.strip()
    if text.isdigit():
        return float(text)
    try:
        when = parsedate_to_datetime(text)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:  # an HTTP date is GMT; "-0000" parses as naive
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - (now or datetime.now(UTC))).total_seconds())


def platform_error(reply: Reply) -> str | None:
    """The platform's error code when the answer is the platform's own, ``None`` when it is the partner's.

    The mark: an ``X-LGSP-Error`` header, or an API-gateway fault (WSO2's JSON ``{"fault": {"code":
    9008xx|9009xx}}`` or its XML fault in the ``http://wso2.org/apimanager`` namespace) on a 401, 403 or
    429. Nothing else is taken for the platform: a partner's own 401 stays the partner's."""
    marked = reply.headers.get(PLATFORM_ERROR_HEADER)
    if marked is not None:
        code = marked.strip()
        return code if _CODE.fullmatch(code) else "error"
    if reply.status not in (401, 403, 429):
        return None
    if "json" in reply.content_type:
        try:
            data = json.loads(reply.body)
        except (ValueError, UnicodeDecodeError):
            return None
        fault = data.get("fault") if isinstance(data, dict) else None
        number = fault.get("code") if isinstance(fault, dict) else None
        if isinstance(number, str) and number.isdigit():
            number = int(number)
        if isinstance(number, int) and number in _GATEWAY_FAULTS:
            return f"fault {number}"
        return None
    if "xml" in reply.content_type and _WSO2_NAMESPACE in reply.body:
        return "fault"
    return None


def _where(env: str | None, file: str | None) -> str:
    named = [f"environment variable {env}" if env else "", f"file {file}" if file else ""]
    return " or ".join(n for n in named if n) or "nothing is configured"


# Why no OAuth library: the exchange is one form POST (RFC 6749 §4.4.2) and what it must do around it is
# ours — the application's aiohttp session with the platform's mutual-TLS context, no redirects and a
# bounded body (http.exchange), one refresh in flight per platform shared by every partner on it, and
# failures as PlatformError naming the platform. Authlib's async OAuth2 client runs on httpx (a second
# HTTP stack, with its own pool, TLS and redirect settings); aiohttp-oauth2-client's grants open a
# ClientSession of their own and raise errors of their own.
class TokenSource:
    """The gateway's OAuth2 access token on one LGSP platform (client credentials grant).

    Cached until shortly before it expires; when it must be fetched, concurrent callers share one token
    request (a task awaited by all; one caller giving up does not cancel it for the others). The client
    is authenticated with HTTP Basic (RFC 6749 §2.3.1, which every authorization server must accept); the
    secret is read from its environment variable or file at each request, never logged."""

    def __init__(
        self,
        name: str,
        platform: LgspPlatform,
        session: aiohttp.ClientSession,
        ssl_context: ssl.SSLContext | None = None,
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.name = name
        self.platform = platform
        self.ssl_context = ssl_context
        self._session = session
        self._clock = clock
        self._cached: tuple[str, float] | None = None  # (token, valid until on ``clock``)
        self._refresh: asyncio.Task[str] | None = None
        #: Token requests made (for tests and operators: one per expiry, not one per call).
        self.requests = 0

    @property
    def label(self) -> str:
        return f"LGSP {self.name}"

    def missing(self) -> str | None:
        """What is missing for this platform's credentials (checked at start-up), or ``None``."""
        p = self.platform
        if read_secret(p.client_secret_env, p.client_secret_file) is None:
            return f"no client secret ({_where(p.client_secret_env, p.client_secret_file)})"
        if read_secret(p.access_token_env, p.access_token_file) is None:
            return f"no {ACCESS_TOKEN_HEADER} ({_where(p.access_token_env, p.access_token_file)})"
        return None

    async def token(self) -> str:
        """A live access token: the cached one, or the one being fetched (a fetch started if none is)."""
        if self._cached is not None and self._clock() < self._cached[1]:
            return self._cached[0]
        refresh = self._refresh
        if refresh is None:
            refresh = asyncio.get_running_loop().create_task(self._fetch(), name=f"lgsp-token-{self.name}")
            refresh.add_done_callback(self._refreshed)
            self._refresh = refresh
        return await asyncio.shield(refresh)

    def invalidate(self, token: str) -> None:
        """The platform refused ``token``: drop it, unless another call already replaced it (then the
        refused one is simply not used again, and no second refresh starts)."""
        if self._cached is not None and self._cached[0] == token:
            self._cached = None

    async def close(self) -> None:
        """Stop a token request still under way (shutdown)."""
        refresh, self._refresh = self._refresh, None
        if refresh is not None and not refresh.done():
            refresh.cancel()
            await asyncio.gather(refresh, return_exceptions=True)

    def _refreshed(self, task: asyncio.Task[str]) -> None:
        if self._refresh is task:
            self._refresh = None
        if not task.cancelled():
            task.exception()  # the waiters have it; retrieved here too in case all of them gave up

    async def _fetch(self) -> str:
        p = self.platform
        secret = read_secret(p.client_secret_env, p.client_secret_file)
        if secret is None:
            raise PlatformError(
                f"{self.label}: no client secret ({_where(p.client_secret_env, p.client_secret_file)})",
                retryable=False,
            )
        form = {"grant_type": "client_credentials"}
        if p.scope:
            form["scope"] = p.scope
        # RFC 6749 §2.3.1: id and secret are form-encoded before they are joined and base64-encoded.
        basic = base64.b64encode(f"{quote_plus(p.client_id)}:{quote_plus(secret)}".encode()).decode()
        headers = {
            "Authorization": f"Basic {basic}",
            "Content-Type": "application/x-www-form-urlencoded",
            "Accept": "application/json",
        }
        started = self._clock()
        self.requests += 1
        try:
            reply = await exchange(
                self._session,
                "POST",
                p.token_url,
                urlencode(form).encode(),
                headers,
                TOKEN_TIMEOUT_SECONDS,
                self.ssl_context,
            )
        except (aiohttp.ClientError, TimeoutError, ConnectorError) as exc:
            raise PlatformError(
                f"{self.label}: token endpoint unavailable ({type(exc).__name__})", retryable=True
            ) from exc
        if reply.status != 200:
            raise self._refused(reply)
        token, lifetime = self._read(reply)
        margin = min(EXPIRY_MARGIN_SECONDS, lifetime / 10)
        self._cached = (token, started + lifetime - margin)
        return token

    def _refused(self, reply: Reply) -> PlatformError:
        if reply.status == 429:
            return PlatformError(
                f"{self.label}: token endpoint rate limited (429)",
                retryable=True,
                counts_for_breaker=False,
                retry_after=parse_retry_after(reply.headers.get("Retry-After")),
            )
        if reply.status >= 500:
            return PlatformError(f"{self.label}: token endpoint unavailable ({reply.status})", retryable=True)
        # RFC 6749 §5.2: an error code of a few ASCII characters (invalid_client…), safe to show.
        code = None
        try:
            data = json.loads(reply.body)
            code = data.get("error") if isinstance(data, dict) else None
        except (ValueError, UnicodeDecodeError):
            pass
        shown = code if isinstance(code, str) and _CODE.fullmatch(code) else f"HTTP {reply.status}"
        return PlatformError(f"{self.label}: token refused ({shown})", retryable=False)

    def _read(self, reply: Reply) -> tuple[str, float]:
        unusable = PlatformError(f"{self.label}: token endpoint answered no bearer token", retryable=False)
        try:
            data = json.loads(reply.body)
        except (ValueError, UnicodeDecodeError):
            raise unusable from None
        if not isinstance(data, dict):
            raise unusable
        token, kind = data.get("access_token"), data.get("token_type", "Bearer")
        if not isinstance(token, str) or not token.strip() or str(kind).lower() != "bearer":
            raise unusable
        expires = data.get("expires_in")
        try:
            lifetime = float(expires) if expires is not None else DEFAULT_LIFETIME_SECONDS
        except (TypeError, ValueError):
            lifetime = DEFAULT_LIFETIME_SECONDS
        return token, lifetime if lifetime > 0 else DEFAULT_LIFETIME_SECONDS


class LgspTransport:
    """One partner's calls through its LGSP (see the module's docstring)."""

    kind: TransportKind = "lgsp"

    def __init__(
        self,
        partner: Partner,
        platform: LgspPlatform,
        tokens: TokenSource,
        session: aiohttp.ClientSession,
        ssl_context: ssl.SSLContext | None = None,
    ) -> None:
        if partner.lgsp is None:
            raise ValueError('transport = "lgsp" needs lgsp = { platform = "…", path = "/…" }')
        self._partner = partner
        self._platform = platform
        self._tokens = tokens
        self._session = session
        self._ssl = ssl_context
        self._path = partner.lgsp.path.rstrip("/")
        self._base = platform.base_url.rstrip("/") + self._path

    async def send(self, call: Call, timeout_seconds: float) -> Reply:
        access = self._access_token()
        token = await self._tokens.token()
        reply = await self._exchange(call, token, access, timeout_seconds)
        code = platform_error(reply)
        if code is not None and reply.status == 401:
            # The platform no longer takes the token (expired early, revoked): a new one, once.
            self._tokens.invalidate(token)
            token = await self._tokens.token()
            reply = await self._exchange(call, token, access, timeout_seconds)
            code = platform_error(reply)
        if code is not None:
            raise self._platform_failure(reply, code)
        evidence: dict[str, Any] = {"platform": "lgsp", "name": self._tokens.name}
        transaction = reply.headers.get(TRANSACTION_HEADER)
        if transaction:
            evidence["transaction_id"] = transaction
        record_evidence(evidence | {"path": self._path, "status": reply.status})
        return reply

    async def close(self) -> None:
        """The session is the application's; a token request still under way is stopped."""
        await self._tokens.close()

    def _access_token(self) -> str:
        p = self._platform
        value = read_secret(p.access_token_env, p.access_token_file)
        if value is None:
            where = _where(p.access_token_env, p.access_token_file)
            raise PlatformError(f"{self._tokens.label}: no {ACCESS_TOKEN_HEADER} ({where})", retryable=False)
        return value

    async def _exchange(self, call: Call, token: str, access: str, timeout_seconds: float) -> Reply:
        # Credentials are the transport's: none the connector might have set travels.
        own = ("authorization", ACCESS_TOKEN_HEADER)
        headers = {
            **{k: v for k, v in call.headers.items() if k.lower() not in own},
            "Authorization": f"Bearer {token}",
            ACCESS_TOKEN_HEADER: access,
        }
        url = self._base + call.path
        return await exchange(self._session, call.method, url, call.body, headers, timeout_seconds, self._ssl)

    def _platform_failure(self, reply: Reply, code: str) -> PlatformError:
        label, status = self._tokens.label, reply.status
        # A rate limit is routine (the guard waits and retries); a refusal needs an operator.
        level = logging.INFO if status == 429 else logging.WARNING
        log.log(level, "partner %s: %s answered %s itself (%s)", self._partner.code, label, status, code)
        if status == 429:
            return PlatformError(
                f"{label}: rate limited (429)",
                retryable=True,
                counts_for_breaker=False,
                retry_after=parse_retry_after(reply.headers.get("Retry-After")),
            )
        if status in (401, 403):
            return PlatformError(f"{label}: access refused ({status})", retryable=False)
        if status >= 500:
            return PlatformError(f"{label}: platform error ({status})", retryable=True)
        return PlatformError(f"{label}: call refused ({status})", retryable=False)
