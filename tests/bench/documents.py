"""Templates of the documents the benchmarks send: valid examples with ``__MSGID__`` and ``__UNIQ__`` in
place of the message_id and the natural key, so every request (wrk or Python) makes a new document."""

from __future__ import annotations

import base64
import json
import uuid
from pathlib import Path
from typing import Any

from tests.conftest import example
from tests.support import orders

MSGID = "__MSGID__"
UNIQ = "__UNIQ__"
#: What a filled template's placeholders become (the same lengths as wrk's and :func:`fill`'s values).
SAMPLE_MSGID = "00000000-0000-4000-8000-000000000000"
SAMPLE_UNIQ = "0" * 17


def dumps(document: dict[str, Any]) -> str:
    return json.dumps(document, ensure_ascii=False, separators=(",", ":"))


def size_of(template: str) -> int:
    """Bytes of a document filled from ``template``."""
    return len(template.replace(MSGID, SAMPLE_MSGID).replace(UNIQ, SAMPLE_UNIQ).encode("utf-8"))


def fill(template: str, n: int, nonce: str) -> str:
    """The ``n``-th document from ``template`` (``nonce``: 8 hex digits, new per run)."""
    return template.replace(MSGID, f"{nonce}-ffff-4000-8000-{n:012x}").replace(
        UNIQ, f"{nonce.upper()}F{n:08X}"
    )


def new_nonce() -> str:
    return uuid.uuid4().hex[:8]


def _judgment(name: str) -> dict[str, Any]:
    doc = example("judgment.delivery", name)
    doc["message_id"] = MSGID
    doc["body"]["judgment"]["number"] = f"123/2026/DS-{UNIQ}"
    return doc


def judgment_template() -> str:
    """The bundled two-person civil judgment with its small inline PDF (about 2.5 kB)."""
    return dumps(_judgment("valid-civil-judgment-two-persons.json"))


def judgment_of_size(size: int) -> str:
    """A judgment of about ``size`` bytes. Up to a few kB the summary (free text, at most 2,000
    characters) is padded on the judgment sent by URI; beyond, the inline PDF is: a PDF comment in the
    file, the only field of a judgment that may be that large."""
    doc = _judgment("valid-document-by-uri.json")
    base = size_of(dumps(doc))
    summary = doc["body"]["judgment"]["summary"]
    room = 2000 - len(summary)
    if size - base <= room:
        doc["body"]["judgment"]["summary"] = summary + "." * max(0, size - base)
        return dumps(doc)
    doc = _judgment("valid-civil-judgment-two-persons.json")
    pdf = base64.b64decode(doc["body"]["document"]["content_base64"])
    doc["body"]["document"]["content_base64"] = ""
    room_b64 = size - size_of(dumps(doc))
    pad = max(0, room_b64 * 3 // 4 - len(pdf) - 2)
    doc["body"]["document"]["content_base64"] = base64.b64encode(pdf + b"%" + b"0" * pad + b"\n").decode()
    return dumps(doc)


def order_template(bank: str = "BANK-VCB") -> str:
    """An account-blocking order to ``bank`` under a new enforcement decision each time (its natural key)."""
    doc = orders.blocking(bank, 350_000_000)
    doc["message_id"] = MSGID
    doc["body"]["decision"] = dict(doc["body"]["decision"], number=f"45/QĐ-CCTHADS-{UNIQ}")
    return dumps(doc)


def write(template: str, path: Path) -> Path:
    path.write_text(template, "utf-8")
    return path
