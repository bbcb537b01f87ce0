"""Where an office's detached JWS travels with a document, and how it is put back together.

A detached JWS (RFC 7515 Appendix F) is the compact serialisation with its payload left out:
``<protected header>..<signature>``. The payload — the base64url of the document's RFC 8785 canonical
JSON — is rebuilt by whoever verifies from the document they received, so the document travels once,
as ordinary JSON, and the signature beside it.

On the REST delivery to a partner the signature goes in the HTTP header :data:`SIGNATURE_HEADER`; on a
SOAP request (the land registry, later) it goes in the request's own ``DocumentSignature`` element.
Nothing here touches the network: these are the pure helpers both sides use.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Final

from gateway.security.keys import b64url

#: The HTTP header carrying the detached JWS of the JSON body.
SIGNATURE_HEADER: Final = "X-Document-Signature"
#: Longest signature taken: a leaf and two intermediates of 4096-bit RSA fit several times over, and
#: an HTTP server's header limit (aiohttp: 8190 bytes a field) bites long before.
MAX_JWS_CHARS: Final = 32_768

_DETACHED = re.compile(r"^[A-Za-z0-9_-]+\.\.[A-Za-z0-9_-]+$")


class MalformedJws(ValueError):
    """Not a detached compact JWS."""


def detach(compact: str) -> str:
    """``header.payload.signature`` -> ``header..signature``."""
    header, _, signature = _parts(compact)
    return f"{header}..{signature}"


def attach(detached: str, payload: bytes) -> str:
    """The compact JWS again, with ``payload`` (the signed bytes, not yet base64url) put back."""
    if len(detached) > MAX_JWS_CHARS or not _DETACHED.fullmatch(detached):
        raise MalformedJws("a detached JWS is header..signature in base64url")
    header, _, signature = detached.split(".")
    return f"{header}.{b64url(payload)}.{signature}"


def with_signature(headers: Mapping[str, str], jws: str) -> dict[str, str]:
    """``headers`` and the signature header carrying ``jws`` (a detached JWS)."""
    if not _DETACHED.fullmatch(jws):
        raise MalformedJws("only a detached JWS travels in the header")
    return {**headers, SIGNATURE_HEADER: jws}


def signature_of(headers: Mapping[str, str]) -> str | None:
    """The detached JWS a request carries, ``None`` when it carries none (or an empty one).

    ``headers`` should be case-insensitive (aiohttp's are); a plain dict is looked up as written."""
    value = headers.get(SIGNATURE_HEADER)
    if value is None or not value.strip():
        return None
    return value.strip()


def _parts(compact: str) -> tuple[str, str, str]:
    parts = compact.split(".")
    if len(parts) != 3 or not parts[0] or not parts[2]:
        raise MalformedJws("a compact JWS has three dot-separated parts")
    return parts[0], parts[1], parts[2]
