"""A simulated partner's desk for documents: what every partner taking the gateway's documents does alike.

``POST <prefix><path>`` takes a whole document (an order, a request, a notice, a revocation) with a
bearer token and ``Idempotency-Key: <message_id>``. The desk

- refuses what it cannot take: ``401`` without a token, ``400`` (``invalid_json``, ``invalid_request``,
  ``unsupported_document`` — a type the partner does not take —, ``wrong_recipient``) and whatever the
  partner's own :meth:`Desk.check` refuses;
- executes each ``message_id`` once (:class:`Once`): a repeat gets the first answer again; the same id with
  another document is ``409 idempotency_conflict`` (the ``due_at`` the gateway adds at hand-over is no part
  of the document's identity);
- answers according to its **answer mode**: ``at_once`` — ``200`` with the answer body; ``late`` —
  ``202 {"status": "processing", "reference"}``, then it pushes the answer document to the gateway's
  ``POST /v1/documents`` (signed as its client; the answer's id derived from the document's, so a
  repeated push is a duplicate; pushed again when the gateway hands the document over again); ``never``
  — ``202 processing`` and nothing executed or remembered (the gateway's deadline escalates; the same
  document sent once the desk answers again is executed). A revocation is acknowledged at once in every
  mode: ``200 {"status": "acknowledged", "reference"}``.

The partner's reference comes in ``X-Reference``. A partner states only its own behaviour: the types it
:attr:`Desk.takes`, its checks, how it :meth:`Desk.execute`\\ s a document (the answer body), and, when its
late answers are not one answer document, :meth:`Desk.late_answers`.

Test switches under ``<prefix>/_sim/``: ``GET orders`` -> ``{message_id: times executed}``; ``GET
received`` -> what arrived, in order (message_id, message_type, priority, loop time); ``POST answers
{"mode": "at_once"|"late"|"never"}``; ``POST orders/silent {"silent": bool}`` (``never``, or back to how
it answered before); ``POST orders/garbled {"garbled": bool}``: answers at once without the answer's
``outcome`` (a report that breaks its schema).
"""

from __future__ import annotations

import asyncio
import hashlib
import json
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, ClassVar, Final, Generic, Literal, TypeVar

from aiohttp import web
from cryptography import x509
from cryptography.x509.oid import NameOID

from gateway.domain.answers import answer_document
from gateway.domain.issued import REVOCATION
from gateway.domain.registry import REGISTRY
from gateway.signatures.jws import SIGNATURE_HEADER, signature_of
from gateway.signatures.office import SignatureInvalid, verify
from gateway.simulators.partners import (
    ICT,
    LAST_REQUESTS,
    Refused,
    check_bearer,
    dumps,
    json_error,
    masked,
    reference,
)
from gateway.simulators.partners.behaviour import ADMIN_PREFIX
from gateway.simulators.partners.callbacks import DEFAULT_GATEWAY_URL, Callbacks

AnswerMode = Literal["at_once", "late", "never"]
ANSWER_MODES: Final[tuple[AnswerMode, ...]] = ("at_once", "late", "never")
Document = dict[str, Any]
T = TypeVar("T")


class Conflict(Exception):
    """The message_id was executed with another document."""


@dataclass
class Once(Generic[T]):
    """What a partner executed, by message_id: each once, its answer remembered for the repeats."""

    answers: dict[str, tuple[str, T]] = field(default_factory=dict)  # message_id -> (fingerprint, answer)
    counts: dict[str, int] = field(default_factory=dict)  # message_id -> times executed

    def seen(self, message_id: str, fingerprint: str) -> T | None:
        """The answer ``message_id`` got, ``None`` if it was never executed; :class:`Conflict` when it was
        executed with another document."""
        known = self.answers.get(message_id)
        if known is None:
            return None
        if known[0] != fingerprint:
            raise Conflict(message_id)
        return known[1]

    def remember(self, message_id: str, fingerprint: str, answer: T) -> T:
        self.answers[message_id] = (fingerprint, answer)
        self.counts[message_id] = self.counts.get(message_id, 0) + 1
        return answer


def fingerprint(document: Mapping[str, Any]) -> str:
    """What makes two deliveries of a message_id the same document: all of it but ``due_at``, which the
    gateway adds at hand-over."""
    canonical = {key: value for key, value in document.items() if key != "due_at"}
    text = json.dumps(canonical, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(text.encode()).hexdigest()


@dataclass(frozen=True, slots=True)
class Answer:
    """What the desk answers a message_id, every time it is sent."""

    status: int  # 200: answered at once (or acknowledged); 202: processing, answered later
    body: dict[str, Any]
    reference: str
    late: tuple[Document, ...] = ()  # what it pushes to the gateway


def _text(value: object) -> bool:
    return isinstance(value, str) and bool(value.strip())


class Desk:
    """One partner's desk. Subclasses state the partner's own behaviour; see the module's docstring."""

    #: The message types it takes (``document.revocation`` included when it takes revocations).
    takes: ClassVar[frozenset[str]] = frozenset()

    def __init__(
        self,
        code: str,
        prefix: str,
        *,
        mode: str = "at_once",
        silent: bool = False,
        callbacks: Callbacks | None = None,
        gateway_url: str = DEFAULT_GATEWAY_URL,
        signature_anchors: Sequence[x509.Certificate] | None = None,
    ) -> None:
        """``code``: the partner's agency code (documents must be addressed to it; it signs its pushes as
        that client); ``prefix``: its path prefix (``/vcb``); ``mode``: how it answers; ``silent``: it
        starts in ``never`` (and goes back to ``mode`` when the switch is turned off); ``callbacks``: how
        it reaches the gateway, needed for the ``late`` mode; ``signature_anchors``: when given, the
        roots an office's signature (:data:`SIGNATURE_HEADER`) must chain to — a document without a
        good one is refused before anything is checked or executed. None (the default): signatures are
        not looked at."""
        self.signature_anchors = tuple(signature_anchors) if signature_anchors is not None else None
        #: Documents taken with a good office signature (what the demo and the tests read back).
        self.verified_signatures = 0
        self.code = code
        self.prefix = prefix
        self.callbacks = callbacks
        self.gateway_url = gateway_url.rstrip("/")
        self.documents_url = self.gateway_url + "/v1/documents"
        self.mode: AnswerMode = "at_once"
        self.set_mode(mode)
        self.answering: AnswerMode = self.mode
        if silent:
            self.set_mode("never")
        self.garbled = False
        self.once: Once[Answer] = Once()
        self.received: list[dict[str, Any]] = []
        self.revoked: dict[str, str] = {}  # revoked document -> the revocation's message_id
        self._pushes: dict[str, asyncio.Task[None]] = {}

    def set_mode(self, mode: str) -> None:
        if mode not in ANSWER_MODES:
            raise ValueError(f"unknown answer mode {mode!r}; one of {', '.join(ANSWER_MODES)}")
        if mode == "late" and self.callbacks is None:
            raise ValueError(f"{self.code} cannot answer late: it has no way to call the gateway")
        self.mode = mode

    # -- what a partner states --------------------------------------------------------------------

    def check(self, document: Document) -> None:
        """The partner's own checks of a document it takes, before it executes anything; raises
        :class:`Refused` (messages name fields, never their values)."""

    def execute(self, document: Document, reference: str) -> dict[str, Any]:
        """Execute a checked document once; the body of its answer (a report's body)."""
        raise NotImplementedError

    def late_answers(self, document: Document, body: dict[str, Any]) -> list[Document]:
        """What the partner pushes when it answers later: by default the answer document around ``body``
        (the type the registry says answers the document)."""
        answer_type = REGISTRY[document["message_type"]].answer_type
        if answer_type is None:
            return []
        created = datetime.now(ICT).isoformat(timespec="seconds")
        return [answer_document(document, answer_type, body, created)]

    async def wait(self, document: Document) -> None:
        """Before answering ``document`` (a desk slow with some documents); by default at once."""

    # -- what every desk does -------------------------------------------------------------------

    async def take(self, request: web.Request) -> web.Response:
        try:
            document = await self._read(request)
        except Refused as exc:
            return exc.response
        message_id = str(document["message_id"])
        urgent = document.get("priority") == "urgent"
        self.received.append(
            {
                "message_id": message_id,
                "message_type": document["message_type"],
                "priority": "urgent" if urgent else "normal",
                "at": asyncio.get_running_loop().time(),
            }
        )
        await self.wait(document)
        mark = fingerprint(document)
        try:
            answer = self.once.seen(message_id, mark)
        except Conflict:
            return json_error(
                409, "idempotency_conflict", "this message_id was executed with another document"
            )
        if answer is None:
            ref = reference(self.code, message_id)
            if self.mode == "never" and document["message_type"] != REVOCATION:
                # Taken, never executed, never answered: what the gateway sees of a partner that lost it.
                processing = {"status": "processing", "reference": ref}
                return web.json_response(processing, status=202, headers={"X-Reference": ref})
            answer = self.once.remember(message_id, mark, self._execute(document, ref))
        if answer.late:
            push = self._pushes.get(message_id)
            if (push is None or push.done()) and self.callbacks is not None:
                # The first time, or the gateway asks again: (re)send the answer, a duplicate if it has it.
                self._pushes[message_id] = self.callbacks.push(self.code, self.documents_url, answer.late)
        body = answer.body
        if self.garbled and answer.status == 200:
            body = {key: value for key, value in body.items() if key != "outcome"}
        return web.json_response(
            body, status=answer.status, headers={"X-Reference": answer.reference}, dumps=dumps
        )

    def _execute(self, document: Document, ref: str) -> Answer:
        if document["message_type"] == REVOCATION:
            self.revoked[str(document["body"]["revokes"])] = str(document["message_id"])
            return Answer(200, {"status": "acknowledged", "reference": ref}, ref)
        body = self.execute(document, ref)
        if self.mode == "at_once":
            return Answer(200, body, ref)
        processing = {"status": "processing", "reference": ref}
        return Answer(202, processing, ref, late=tuple(self.late_answers(document, body)))

    async def _read(self, request: web.Request) -> Document:
        """The document, with what every desk insists on checked; raises :class:`Refused`."""
        check_bearer(request.headers.get("Authorization"))
        try:
            raw = await request.json()
        except ValueError as exc:
            raise Refused(400, "invalid_json", f"the body is not JSON: {exc}") from exc
        if isinstance(raw, dict):
            request.app[LAST_REQUESTS][self.prefix] = masked(raw)  # what the partner was told
        if not isinstance(raw, dict) or not _text(raw.get("message_id")):
            raise Refused(400, "invalid_request", "the body must be a document with a message_id")
        key = request.headers.get("Idempotency-Key")
        if key is None:
            raise Refused(400, "invalid_request", "the Idempotency-Key header is required")
        if key != raw["message_id"]:
            raise Refused(400, "invalid_request", "Idempotency-Key must equal the document's message_id")
        if raw.get("message_type") not in self.takes:
            takes = ", ".join(sorted(self.takes))
            raise Refused(400, "unsupported_document", f"{self.code} takes {takes} only")
        if raw.get("recipient") != self.code:
            raise Refused(400, "wrong_recipient", f"this is {self.code}; the document is addressed elsewhere")
        body = raw.get("body")
        if not isinstance(body, dict):
            raise Refused(400, "invalid_request", "body must be an object")
        if raw["message_type"] == REVOCATION and not _text(body.get("revokes")):
            raise Refused(
                400, "invalid_request", "body.revokes (the revoked document's message_id) is required"
            )
        if self.signature_anchors is not None:
            self._check_signature(raw, request)
        self.check(raw)
        return raw

    def _check_signature(self, document: Document, request: web.Request) -> None:
        """The office's signature over the document as received: missing or not holding is ``400``."""
        jws = signature_of(request.headers)
        if jws is None:
            raise Refused(
                400, "signature_required", f"{self.code} takes signed documents only ({SIGNATURE_HEADER})"
            )
        try:
            verified = verify(document, jws, self.signature_anchors or ())
        except SignatureInvalid as exc:
            raise Refused(
                400, "invalid_signature", f"the document's signature does not hold: {exc.reason}"
            ) from None
        # Signed, but by the office that sends it? Its certificate's organisation is the sender's code.
        organisations = verified.subject.get_attributes_for_oid(NameOID.ORGANIZATION_NAME)
        if [a.value for a in organisations] != [document.get("sender")]:
            raise Refused(400, "invalid_signature", "the document is not signed by its sending office")
        self.verified_signatures += 1

    # -- routes -------------------------------------------------------------------------------------

    def install(self, app: web.Application, path: str) -> None:
        """``POST <prefix><path>`` takes documents; the test switches under ``<prefix>/_sim/``."""
        admin = self.prefix + ADMIN_PREFIX
        app.router.add_post(self.prefix + path, self.take)
        app.router.add_get(admin + "orders", self._json(lambda: self.once.counts))
        app.router.add_get(admin + "received", self._json(lambda: self.received))
        app.router.add_post(admin + "answers", self._set_mode)
        app.router.add_post(admin + "orders/silent", self._switch("silent"))
        app.router.add_post(admin + "orders/garbled", self._switch("garbled"))

    @staticmethod
    def _json(value: Callable[[], object]) -> Callable[[web.Request], Awaitable[web.Response]]:
        async def show(_request: web.Request) -> web.Response:
            return web.json_response(value())

        return show

    async def _set_mode(self, request: web.Request) -> web.Response:
        body = await _object(request)
        try:
            self.set_mode(str(body.get("mode")))
        except ValueError as exc:
            return json_error(400, "invalid_request", str(exc))
        if self.mode != "never":
            self.answering = self.mode
        return web.json_response({"mode": self.mode})

    def _switch(self, name: Literal["silent", "garbled"]) -> Callable[[web.Request], Awaitable[web.Response]]:
        """``POST {"<name>": true|false}``."""

        async def switch(request: web.Request) -> web.Response:
            body = await _object(request)
            on = body.get(name)
            if not isinstance(on, bool):
                return web.json_response({"error": f'the body must be {{"{name}": true|false}}'}, status=400)
            if name == "garbled":
                self.garbled = on
            else:
                self.set_mode("never" if on else self.answering)
            return web.json_response({name: self.garbled if name == "garbled" else self.mode == "never"})

        return switch


async def _object(request: web.Request) -> dict[str, Any]:
    try:
        body = await request.json()
    except ValueError:
        body = None
    return body if isinstance(body, dict) else {}
