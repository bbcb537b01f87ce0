"""How a partner call travels, separate from what it says.

A connector (``gateway/connectors/``) builds the partner's request — the JSON of a REST lookup, the SOAP
envelope of a land-registry operation — and hands it to its partner's :class:`~.base.Transport`, chosen
in ``config/partners.toml`` (``transport = "direct" | "xroad" | "lgsp"``):

- ``direct`` (:mod:`.direct`): to the partner's own endpoint, as configured;
- ``xroad`` (:mod:`.xroad`): through the gateway's X-Road security server (VDXP), which says who the
  caller is and brings back the request hash as evidence;
- ``lgsp`` (:mod:`.lgsp`): through a ministry's or province's integration platform (an API gateway with
  OAuth2 client credentials and an ``lgspaccesstoken``).

Every transport may use mutual TLS (:mod:`.tls`). Breakers, retries, deadlines, audit and per-source status
stay in :class:`gateway.connectors.resilience.GuardedConnector`, the same whatever the transport; the
transport reports what the platform proves about a call (evidence) through :mod:`.context`.
"""
