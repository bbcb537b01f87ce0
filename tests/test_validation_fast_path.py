"""The compiled validator (jsonschema-rs) decides only "valid"; a document it rejects is listed by jsonschema.
So the error lists cannot differ — but the verdicts must agree, or a document jsonschema would reject could
be accepted. Checked on every example document against every message type, and on hundreds of mutations
of each valid example (a key removed, a value replaced by another type, a bad date, a bad ID, an unknown
property), each compared with jsonschema's verdict."""

from __future__ import annotations

import copy
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from gateway.validation import catalog

EXAMPLES = Path(__file__).parents[1] / "gateway" / "schemas" / "examples"
REPLACEMENTS: list[object] = [
    None,
    0,
    -1,
    1.5,
    True,
    "",
    "x" * 600,
    "2026-02-30",
    "2026-01-01T10:00:00",
    "not a uri",
    "079123456789",
    "00000000-0000-0000-0000-00000000000G",
    [],
    {},
    float("nan"),
    10**30,
]


def example_documents() -> list[tuple[str, Any]]:
    return [
        (f"{path.parent.name}/{path.name}", json.loads(path.read_text(encoding="utf-8")))
        for path in sorted(EXAMPLES.glob("*/*.json"))
        if path.name != "expectations.json"
    ]


def python_verdict(message_type: str, document: object) -> bool:
    validator = catalog()._validators[message_type]
    return next(iter(validator.iter_errors(document)), None) is None


def paths(node: object, here: tuple[Any, ...] = ()) -> Iterator[tuple[Any, ...]]:
    yield here
    if isinstance(node, dict):
        for key, value in node.items():
            yield from paths(value, (*here, key))
    elif isinstance(node, list):
        for index, value in enumerate(node):
            yield from paths(value, (*here, index))


def mutations(document: object) -> Iterator[tuple[str, object]]:
    for path in paths(document):
        if not path:
            continue
        *parents, last = path
        for replacement in REPLACEMENTS:
            mutated = copy.deepcopy(document)
            node: Any = mutated
            for step in parents:
                node = node[step]
            node[last] = replacement
            yield f"{path} = {replacement!r:.20}", mutated
        mutated = copy.deepcopy(document)
        node = mutated
        for step in parents:
            node = node[step]
        if isinstance(node, dict):
            del node[last]
            yield f"del {path}", mutated
            node["unexpected_property"] = 1
            yield f"{path[:-1]} + unexpected_property", mutated


@pytest.mark.parametrize("message_type", catalog().message_types())
def test_every_example_gets_the_same_verdict_from_both(message_type: str) -> None:
    for name, document in example_documents():
        expected = python_verdict(message_type, document)
        assert catalog().surely_valid(message_type, document) == expected, (message_type, name)


def test_mutations_of_valid_examples_get_the_same_verdict_from_both() -> None:
    compared = rejected = 0
    for name, document in example_documents():
        message_type = document.get("message_type") if isinstance(document, dict) else None
        if message_type not in catalog().message_types() or not python_verdict(message_type, document):
            continue
        for change, mutated in mutations(document):
            expected = python_verdict(message_type, mutated)
            assert catalog().surely_valid(message_type, mutated) == expected, (name, change)
            compared += 1
            rejected += not expected
    assert compared > 1000 and rejected > compared // 2  # the corpus is large and mostly invalid
