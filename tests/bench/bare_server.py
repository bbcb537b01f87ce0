"""The HTTP stack's own limit, the reference intake is compared with: a bare aiohttp handler that does
what every intake must do and nothing else — verify the bearer JWT with the gateway's own verifier,
parse the JSON, validate it against its schema with the gateway's own validator — and answers 202.
No storage, no broker, no receipt.

Run as its own process with the gateway's Python:
``python tests/bench/bare_server.py --clients-dir DIR --port N [--audience AUD]``.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from aiohttp import web

from gateway.security.clients import ClientStore
from gateway.security.tokens import TokenRejected, TokenVerifier
from gateway.validation import catalog

MAX_BODY = 64 * 1024 * 1024


def make_app(clients_dir: Path, audience: str) -> web.Application:
    verifier = TokenVerifier(ClientStore(clients_dir), audience=audience, leeway=30, max_lifetime=3600)
    schemas = catalog()

    async def intake(request: web.Request) -> web.Response:
        scheme, _, token = request.headers.get("Authorization", "").partition(" ")
        if scheme.lower() != "bearer":
            return web.json_response({"status": 401}, status=401)
        try:
            principal = verifier.verify(token.strip())
        except TokenRejected as exc:
            return web.json_response({"status": 401, "detail": str(exc)}, status=401)
        try:
            document = json.loads(await request.read())
        except ValueError:
            return web.json_response({"status": 400}, status=400)
        _type, violations = schemas.validate_push(document)
        if violations:
            return web.json_response({"status": 422, "errors": len(violations)}, status=422)
        return web.json_response(
            {"message_id": document["message_id"], "sender": principal.client.id}, status=202
        )

    async def healthz(_request: web.Request) -> web.Response:
        return web.json_response({"status": "ok"})

    app = web.Application(client_max_size=MAX_BODY)
    app.router.add_post("/v1/judgments", intake)
    app.router.add_post("/v1/documents", intake)
    app.router.add_get("/healthz", healthz)
    return app


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--clients-dir", type=Path, required=True)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--audience", default="thads-gateway")
    args = parser.parse_args()
    web.run_app(make_app(args.clients_dir, args.audience), host="127.0.0.1", port=args.port, print=None)


if __name__ == "__main__":
    main()
