"""REST endpoints for documents: send any document, push a judgment, follow, confirm or revoke a message."""

from __future__ import annotations

from typing import Any, Final

from aiohttp import web

from gateway.domain import judgment
from gateway.domain.registry import REGISTRY
from gateway.problems import Violation, invalid
from gateway.services.documents import PushResult
from gateway.web.auth import PRINCIPAL_KEY
from gateway.web.body import read_json
from gateway.web.context import SERVICES
from gateway.web.operation import ANY_CLIENT, Example, Operation, Response

__all__ = ["OPERATIONS"]


def _message_path(message_id: str) -> str:
    """Where a message is followed (``GET``), confirmed and revoked."""
    return f"/v1/messages/{message_id}"


def _receipt_response(result: PushResult) -> web.Response:
    location = _message_path(result.receipt["message_id"])
    return web.json_response(
        result.receipt,
        status=200 if result.duplicate else 202,
        headers={"Location": location, **({"Gateway-Duplicate": "true"} if result.duplicate else {})},
    )


def _named_type(document: object) -> object:
    """``document``, refused (422) when its ``message_type`` is there but not a string: the registry is
    looked up by it, and an object or an array cannot even be looked up."""
    if isinstance(document, dict) and "message_type" in document:
        value = document["message_type"]
        if not isinstance(value, str):
            known = ", ".join(sorted(REGISTRY))
            shown = repr(value)[:60]
            raise invalid(
                [Violation("$.message_type", f"{shown} is not a known message type; known: {known}", "enum")]
            )
    return document


async def send_document(request: web.Request) -> web.Response:
    """Any document type the client is granted (``documents.send:<message_type>``)."""
    document = _named_type(await read_json(request))
    result = await request.app[SERVICES].documents.submit(request[PRINCIPAL_KEY], document)
    return _receipt_response(result)


async def push_judgment(request: web.Request) -> web.Response:
    """The courts' door: judgments only, under the older grant name ``judgments.push`` too."""
    document = await read_json(request)
    result = await request.app[SERVICES].documents.submit(
        request[PRINCIPAL_KEY], document, only_type=judgment.MESSAGE_TYPE, action="judgments.push"
    )
    return _receipt_response(result)


def _status_response(view: dict[str, Any]) -> web.Response:
    """A message's status view, each reply with the link to follow it."""
    replies = [reply | {"href": _message_path(reply["message_id"])} for reply in view["replies"]]
    return web.json_response(view | {"replies": replies})


async def get_message(request: web.Request) -> web.Response:
    view = await request.app[SERVICES].messages.status(
        request[PRINCIPAL_KEY], request.match_info["message_id"]
    )
    return _status_response(view)


async def confirm_message(request: web.Request) -> web.Response:
    document = await read_json(request)
    view, _first = await request.app[SERVICES].messages.confirm(
        request[PRINCIPAL_KEY], request.match_info["message_id"], document
    )
    return _status_response(view)


async def revoke_message(request: web.Request) -> web.Response:
    document = await read_json(request)
    view = await request.app[SERVICES].messages.revoke(
        request[PRINCIPAL_KEY], request.match_info["message_id"], document
    )
    return _status_response(view)


async def keys(request: web.Request) -> web.Response:
    """The gateway's public signing keys (JWKS), to verify receipts and webhook signatures."""
    return web.json_response(
        request.app[SERVICES].signer.jwks(), headers={"Cache-Control": "public, max-age=300"}
    )


_ACCEPTED: Final = {
    202: Response("Accepted: stored, to be delivered.", "receipt", headers=("Location",)),
    200: Response(
        "Already accepted: the original receipt.", "receipt", headers=("Location", "Gateway-Duplicate")
    ),
}

#: What a 422 of a document push means: the schema, and the rules of the document's type.
_RULES: Final = (
    "Schema violations, and rules no schema can state: parties and earlier documents referenced by "
    "id, a registered recipient (or configured partner), dates in order, an inline document that is "
    "a PDF within `api.max_inline_document_bytes`. Every one is listed in `errors` with its JSON "
    "path and `rule`."
)

OPERATIONS: Final = (
    Operation(
        "POST",
        "/v1/documents",
        send_document,
        name="documents.send",
        operation_id="sendDocument",
        tag="Documents",
        summary="Send any document the client is granted (orders, reports, judgments...)",
        description=(
            "Grant `documents.send:<message_type>` (or `documents.send` for every type); `sender` must be "
            "the authenticated client. The envelope's `message_type` selects the schema. Same duplicate and "
            "conflict rules as `POST /v1/judgments`. A grant does not stand in for the kind of party that "
            "sends a type (an order comes from an enforcement office, a judgment from a court: 403 "
            "otherwise), and `event.deadline` and `document.revocation` are the gateway's own: 403 for "
            "every client (their schemas describe what clients receive)."
        ),
        grant="documents.send:<message_type>",
        grant_check="service",
        request=tuple(REGISTRY),
        responses=_ACCEPTED,
        problems=(400, 403, 409, 413, 415, 422, 503),
        problem_notes={422: _RULES},
        examples=tuple(Example(message_type) for message_type in REGISTRY),
    ),
    Operation(
        "POST",
        "/v1/judgments",
        push_judgment,
        name="judgments.push",
        operation_id="pushJudgment",
        tag="Judgments",
        summary="Push a legally effective judgment (courts)",
        description=(
            "Grant `judgments.push`; `sender` must be the authenticated client. The envelope fields sit at "
            "the top level, the judgment in `body`. Accepted messages are stored with their outgoing "
            "delivery before the answer is sent. The same `message_id` again, or the same judgment (court "
            "code + number + date) under a new `message_id`, answers `200` with the **original** receipt: "
            "nothing is delivered twice."
        ),
        grant="judgments.push",
        grant_check="service",
        request=judgment.MESSAGE_TYPE,
        responses=_ACCEPTED,
        problems=(400, 403, 409, 413, 415, 422, 503),
        problem_notes={
            409: "The `message_id` was already used for a different message.",
            422: _RULES
            + " The court in `body.court.code` is the sender. Where the installation checks signatures "
            "(`config/signatures.toml` and a trust list), a PDF whose signature the policy refuses is a "
            "422 listing the reasons at `$.body.document.content_base64` (rule `signature`).",
        },
        examples=(
            Example(
                judgment.MESSAGE_TYPE,
                "valid-civil-judgment-two-persons.json",
                "A civil judgment between two persons",
            ),
        ),
    ),
    Operation(
        "GET",
        "/v1/messages/{message_id}",
        get_message,
        name="messages.read",
        operation_id="getMessage",
        tag="Messages",
        summary="Follow a message: status, receipt, timeline and replies",
        description="Grant `messages.read`; the sender and the recipient only (anyone else: 404).",
        grant="messages.read",
        responses={200: Response("The message's status.", "message.status")},
        problems=(403, 404, 503),
    ),
    Operation(
        "POST",
        "/v1/messages/{message_id}/confirmation",
        confirm_message,
        name="messages.confirm",
        operation_id="confirmMessage",
        tag="Messages",
        summary="Confirm processing (the recipient; the sender of an order once it has its report)",
        description=(
            "Grant `messages.confirm`. A judgment is confirmed by its recipient with its enforcement case "
            "number; an order by its sender once answered. Repeating it with the same case number is "
            "harmless; another number is `409`. Once confirmed, the gateway drops the payload and keeps "
            "metadata and evidence."
        ),
        grant="messages.confirm",
        request="confirmation.request",
        responses={200: Response("Confirmed: the message's status.", "message.status")},
        problems=(400, 403, 404, 409, 413, 415, 422, 503),
        problem_notes={409: "Confirmed earlier with another case number, or not delivered yet."},
        examples=(
            Example("confirmation.request", "valid-judgment-case-ref.json", "A judgment's case number"),
        ),
    ),
    Operation(
        "POST",
        "/v1/messages/{message_id}/revocation",
        revoke_message,
        name="messages.revoke",
        operation_id="revokeMessage",
        tag="Messages",
        summary="Withdraw a document (its sender only)",
        description=(
            "Before delivery it is never delivered; after, a `document.revocation` goes to its recipient. "
            "An answered or confirmed document cannot be revoked (`409`)."
        ),
        grant=ANY_CLIENT,
        request="revocation.request",
        responses={200: Response("Revoked (or a revocation is on its way).", "message.status")},
        problems=(400, 403, 404, 409, 413, 415, 422, 503),
        examples=(Example("revocation.request"),),
    ),
    Operation(
        "GET",
        "/v1/keys",
        keys,
        name="keys",
        operation_id="getKeys",
        tag="Keys",
        summary="The gateway's public signing keys (JWKS)",
        description="To verify receipts and webhook signatures (`Gateway-Signature`).",
        responses={200: Response("RFC 7517 JSON Web Key Set.", "jwks", headers=("Cache-Control",))},
    ),
)
