"""A document type's valid examples: the ``valid-*.json`` files of ``gateway/schemas/examples/<type>/``,
then the documents its schema lists under JSON Schema's own ``examples`` keyword. A type whose one example
needs no file of its own (an answer shown once in the API documentation) keeps it in its schema."""

from __future__ import annotations

import json
from importlib.resources import files
from typing import Any

SCHEMA_EXAMPLE = "{stem}.schema.json#/examples/{n}"


def valid_examples(directory: str) -> list[tuple[str, Any]]:
    """(name, document) of every valid example of ``directory`` (a message type, or an examples folder
    named with ``-`` for ``.``); the folder's files first, in name order, then the schema's."""
    schemas = files("gateway").joinpath("schemas")
    folder = schemas.joinpath("examples", directory)
    out: list[tuple[str, Any]] = []
    if folder.is_dir():
        for name in sorted(e.name for e in folder.iterdir() if e.name.startswith("valid-")):
            out.append((name, json.loads(folder.joinpath(name).read_text(encoding="utf-8"))))
    stem = directory.replace("-", ".")
    schema = schemas.joinpath(f"{stem}.schema.json")
    if schema.is_file():
        listed = json.loads(schema.read_text(encoding="utf-8")).get("examples") or []
        out += [(SCHEMA_EXAMPLE.format(stem=stem, n=n), doc) for n, doc in enumerate(listed)]
    return out
