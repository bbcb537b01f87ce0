"""Reading request bodies safely: content type, size limit, then parse; then the schema verdict of a body
the route declares, reached off the event loop when the body is large (:func:`~gateway.validation.off_loop`).
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Iterable

from aiohttp import web

from gateway.problems import Problem, bad_request, too_large, unsupported_media_type
from gateway.validation import catalog, judge_off_loop
from gateway.web.context import SERVICES
from gateway.web.operation import OPERATIONS_KEY

JSON_TYPES = ("application/json",)

#: Deepest nesting of arrays and objects a body may have. Every message the gateway takes is under ten
#: levels; the cap keeps schema validation (recursive) and anything else walking the document well away
#: from Python's recursion limit, so a hostile body is a 400 instead of a RecursionError.
MAX_DEPTH = 64


async def read_limited(request: web.Request) -> bytes:
    """The raw body, refused with 413 past the configured limit (checked before and while reading)."""
    limit = request.app[SERVICES].settings.api.max_body_bytes
    if request.content_length is not None and request.content_length > limit:
        raise too_large(limit)
    return await _read_chunked(request, limit)


async def _read_chunked(request: web.Request, limit: int) -> bytes:
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.content.iter_chunked(65536):
        size += len(chunk)
        if size > limit:
            raise too_large(limit)
        chunks.append(chunk)
    return b"".join(chunks)


async def read_json(request: web.Request, before_schema: Callable[[object], None] | None = None) -> object:
    """The JSON body: 415 unless ``application/json``, 413 if too large, 400 if not JSON or nested
    deeper than :data:`MAX_DEPTH`. ``before_schema`` may refuse the parsed body (by raising) before its
    schema is walked: a bound the schema cannot know, such as a configured number of items."""
    if request.content_type not in JSON_TYPES:
        raise unsupported_media_type("application/json (UTF-8)")
    raw = await read_limited(request)
    if not raw:
        raise bad_request("the request body is empty")
    try:
        document: object = json.loads(
            raw.decode("utf-8"), parse_constant=_reject_constant, parse_float=_finite_float
        )
    except UnicodeDecodeError as exc:
        raise bad_request(f"the body is not UTF-8 (byte {exc.start})") from exc
    except json.JSONDecodeError as exc:
        raise bad_request(f"malformed JSON at line {exc.lineno} column {exc.colno}: {exc.msg}") from exc
    except RecursionError as exc:
        # The stdlib parser recurses once per level and gives up near the interpreter's limit (~1,000).
        raise _too_deep() from exc
    except ValueError as exc:
        # A number the parser refuses: an integer past Python's 4,300-digit conversion limit, or a float
        # beyond double range. The caller's mistake, so a 400, never the 503 an escaping error would be.
        raise bad_request(f"a number in the JSON cannot be read: {_first_sentence(exc)}") from exc
    if deeper_than(document, MAX_DEPTH):
        raise _too_deep()
    if before_schema is not None:
        before_schema(document)
    await _prejudge(request, document, len(raw))
    return document


async def _prejudge(request: web.Request, document: object, size: int) -> None:
    """Validate ``document`` against the schema its route declares (the document's own ``message_type``
    where it declares several) under the validation budget, and remember the verdict for the service,
    which then does not walk the document again on the event loop."""
    route = request.match_info.route.name
    declared = next(
        (op.request_schemas for op in request.app.get(OPERATIONS_KEY, ()) if op.name == route), ()
    )
    known = set(catalog().message_types())
    candidates = [name for name in declared if name in known]
    if len(candidates) == 1:
        message_type = candidates[0]
    elif isinstance(document, dict) and document.get("message_type") in candidates:
        message_type = str(document["message_type"])
    else:
        return  # nothing declared, or a type the service refuses without validating
    limits = request.app[SERVICES].settings.limits
    await judge_off_loop(message_type, document, size=size, limits=limits, schemas=None)


def deeper_than(document: object, limit: int) -> bool:
    """Whether arrays/objects in ``document`` nest more than ``limit`` levels (``[]`` is one level).
    Iterative, so the check itself cannot hit the recursion limit it protects against."""
    pending: list[tuple[object, int]] = [(document, 0)]
    while pending:
        value, depth = pending.pop()
        if isinstance(value, dict):
            children: Iterable[object] = value.values()
        elif isinstance(value, list):
            children = value
        else:
            continue
        if depth + 1 > limit:
            return True
        pending.extend((child, depth + 1) for child in children)
    return False


def _too_deep() -> Problem:
    return bad_request(f"the JSON is nested too deeply: at most {MAX_DEPTH} levels of arrays and objects")


def _finite_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        # float("1e999") is inf: not a number JSON can carry back, and no schema range check catches it.
        raise ValueError(f"{text[:40]} is out of range for a number")
    return value


def _first_sentence(exc: ValueError) -> str:
    return str(exc).split(";")[0][:200]


def _reject_constant(name: str) -> object:
    # NaN and Infinity are not JSON; Python would accept them silently.
    raise json.JSONDecodeError(f"{name} is not valid JSON", name, 0)
