"""The JSON Schema files of ``gateway/schemas`` as OpenAPI components.

OpenAPI 3.1 schemas are JSON Schema Draft 2020-12, the dialect of the files, so every file (the shared
``common`` and ``envelope`` too) is copied into ``components.schemas`` under a component name
(``judgment.delivery`` -> ``JudgmentDelivery``). Their ``$ref``s between files are rewritten to the
components they point to (``common.schema.json#/$defs/uuid`` -> ``#/components/schemas/Common/$defs/uuid``)
and their ``$id`` is kept as ``x-schema-id``: OpenAPI tools resolve ``$ref`` against the document and mostly
ignore embedded ``$id``s, so references that depend on no ``$id`` work the same everywhere.
"""

from __future__ import annotations

import json
import re
from importlib.resources import files
from typing import Any
from urllib.parse import urldefrag, urljoin

from gateway.domain.identifiers import PERSONAL_ID
from gateway.schema_examples import valid_examples
from gateway.validation import SCHEMA_SUFFIX

__all__ = [
    "FORMAT_PATTERNS",
    "JSON",
    "component_name",
    "component_ref",
    "components_from_files",
    "example",
    "message_schemas",
]

JSON = dict[str, Any]

#: The gateway's own formats, stated as the pattern they amount to: a client (or a generator of test
#: data) that knows only standard JSON Schema then sees exactly what the gateway accepts. The format
#: stays beside it, naming the check (:func:`gateway.domain.identifiers.is_personal_id`).
FORMAT_PATTERNS: dict[str, str] = {
    # 12 ASCII digits whose first three, the province code of the birth registration, are 001-096.
    "vn-personal-id": PERSONAL_ID.pattern,
}


def component_name(stem: str) -> str:
    """``judgment.delivery`` -> ``JudgmentDelivery``; ``asset.result.bank`` -> ``AssetResultBank``."""
    return "".join(part[:1].upper() + part[1:] for part in re.split(r"[._-]+", stem) if part)


def component_ref(name: str, fragment: str = "") -> str:
    return f"#/components/schemas/{name}{fragment}"


def message_schemas() -> dict[str, JSON]:
    """Every ``*.schema.json`` of the installed ``gateway/schemas``, by file stem, as written."""
    directory = files("gateway").joinpath("schemas")
    out: dict[str, JSON] = {}
    for entry in sorted(directory.iterdir(), key=lambda e: e.name):
        if entry.is_file() and entry.name.endswith(SCHEMA_SUFFIX):
            contents = json.loads(entry.read_text(encoding="utf-8"))
            if not isinstance(contents, dict) or not isinstance(contents.get("$id"), str):
                raise ValueError(f"{entry.name}: a schema needs a string $id")
            out[entry.name.removesuffix(SCHEMA_SUFFIX)] = contents
    return out


def example(directory: str, name: str | None) -> tuple[str, Any]:
    """An example file of ``gateway/schemas/examples/<directory>`` (no name: its first valid example, a
    ``valid-*.json`` or else the first its schema lists, :func:`gateway.schema_examples.valid_examples`),
    as (file name, contents). ``ValueError`` when there is none."""
    if name is None:
        valid = valid_examples(directory)
        if not valid:
            raise ValueError(
                f"no valid-*.json example in gateway/schemas/examples/{directory}, "
                "nor one its schema lists under examples"
            )
        return valid[0]
    folder = files("gateway").joinpath("schemas", "examples", directory)
    return name, json.loads(folder.joinpath(name).read_text(encoding="utf-8"))


def components_from_files(schemas: dict[str, JSON]) -> dict[str, JSON]:
    """The schema files as components: ``$ref``s rewritten to components, ``$id`` kept as ``x-schema-id``.

    Raises ``ValueError`` for a reference to no known file or to an anchor, and for keywords that would
    need ``$id`` semantics (nested ``$id``, ``$anchor``, dynamic references).
    """
    names = {str(schema["$id"]): component_name(stem) for stem, schema in schemas.items()}

    def rewrite(node: Any, base: str) -> Any:
        if isinstance(node, list):
            return [rewrite(item, base) for item in node]
        if not isinstance(node, dict):
            return node
        out: JSON = {}
        for key, value in node.items():
            if key == "$ref" and isinstance(value, str):
                target, fragment = urldefrag(urljoin(base, value))
                if target not in names:
                    raise ValueError(f"{base}: $ref {value!r} points to no schema file")
                if fragment and not fragment.startswith("/"):
                    raise ValueError(f"{base}: $ref {value!r} names an anchor; use a JSON pointer")
                out[key] = component_ref(names[target], fragment)
            elif key in ("$id", "$anchor", "$dynamicRef", "$dynamicAnchor") and isinstance(value, str):
                raise ValueError(f"{base}: {key} inside a schema file is not supported here")
            else:
                out[key] = rewrite(value, base)
        own_format = node.get("format")
        if isinstance(own_format, str) and own_format in FORMAT_PATTERNS:
            if "pattern" in node:
                raise ValueError(f"{base}: format {own_format!r} comes with its own pattern")
            out["pattern"] = FORMAT_PATTERNS[own_format]
        return out

    components: dict[str, JSON] = {}
    for schema in schemas.values():
        schema_id = str(schema["$id"])
        body = {k: v for k, v in schema.items() if k not in ("$id", "$schema")}
        components[names[schema_id]] = {"x-schema-id": schema_id, **rewrite(body, schema_id)}
    return components
