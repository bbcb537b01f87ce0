"""Signed webhook calls to recipients that asked for HTTP delivery.

Signature: ``Gateway-Signature: keyid=<kid>,alg=EdDSA,sig=<base64url>`` over
``<Gateway-Timestamp>.<message_id>.<sha256 of the body>`` with the gateway's Ed25519 key (public key at
``GET /v1/keys``). A receiver checks the signature and the timestamp's freshness, de-duplicates on
``Gateway-Message-Id``, and answers 2xx only once it has stored the document. A copy that may have
been sent before (the gateway crashed between the call and recording it) carries
``Gateway-Redelivered: true``.
"""

from __future__ import annotations

import hashlib
import time

import aiohttp

from gateway.security.signing import Signer


class WebhookFailed(Exception):
    """Not acknowledged (timeout, connection error, non-2xx): retry later."""


def signing_input(timestamp: str, message_id: str, body: bytes) -> bytes:
    return f"{timestamp}.{message_id}.{hashlib.sha256(body).hexdigest()}".encode()


async def post(
    session: aiohttp.ClientSession,
    signer: Signer,
    url: str,
    body: bytes,
    message_id: str,
    message_type: str,
    attempt: int,
    redelivered: bool,
    time_limit: float,
) -> int:
    """Deliver once; returns the 2xx status, raises :class:`WebhookFailed` otherwise."""
    timestamp = str(int(time.time()))
    signature = signer.sign_bytes(signing_input(timestamp, message_id, body))
    headers = {
        "Content-Type": "application/json",
        "Gateway-Message-Id": message_id,
        "Gateway-Message-Type": message_type,
        "Gateway-Delivery-Attempt": str(attempt),
        "Gateway-Timestamp": timestamp,
        "Gateway-Signature": f"keyid={signer.key_id},alg=EdDSA,sig={signature}",
        "Idempotency-Key": message_id,
    }
    if redelivered:
        headers["Gateway-Redelivered"] = "true"
    try:
        # A redirect is never followed: it would lead past the address checks (and the receiver must
        # answer 2xx itself); a 3xx is a failed delivery like any other.
        async with session.post(
            url,
            data=body,
            headers=headers,
            timeout=aiohttp.ClientTimeout(total=time_limit),
            allow_redirects=False,
        ) as response:
            await response.read()
            if 200 <= response.status < 300:
                return response.status
            raise WebhookFailed(f"HTTP {response.status}")
    except (aiohttp.ClientError, TimeoutError) as exc:
        raise WebhookFailed(f"{type(exc).__name__}: {exc}") from exc
