"""Mutual TLS for outbound routes: one ``ssl.SSLContext`` per configured route, built at start-up.

The standard library's context is used as is: certificate verification and host-name checks stay on
(``ssl.create_default_context``); a route adds its own CA bundle (the platform's or partner's private CA)
and our client certificate. A file that cannot be read stops start-up with its path named: a partner that
would refuse every call must not surface only as failed inquiries.
"""

from __future__ import annotations

import ssl

from gateway.partners import TlsFiles


def client_context(tls: TlsFiles | None) -> ssl.SSLContext | None:
    """The context for a route, or ``None`` (aiohttp's default verification) when nothing is configured."""
    if tls is None or not (tls.cert or tls.ca):
        return None
    try:
        context = ssl.create_default_context(cafile=tls.ca) if tls.ca else ssl.create_default_context()
        if tls.cert:
            context.load_cert_chain(tls.cert, tls.key)
    except (OSError, ssl.SSLError) as exc:
        raise ValueError(f"tls: cannot load {tls.cert or tls.ca}: {exc}") from None
    return context
