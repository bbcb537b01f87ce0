"""The message schemas, their examples, and what gateway.validation promises about violations."""

from __future__ import annotations

import base64
import json
import re
from pathlib import Path
from typing import Any

import pytest
from jsonschema import Draft202012Validator

import gateway
from gateway.domain.identifiers import is_personal_id
from gateway.schema_examples import valid_examples
from gateway.validation import (
    SCHEMA_BASE,
    SchemaCatalog,
    catalog,
    is_canonical_uuid,
    validate_push,
)

SCHEMA_DIR = Path(gateway.__file__).parent / "schemas"
EXAMPLE_DIR = SCHEMA_DIR / "examples"
SCHEMA_FILES = sorted(SCHEMA_DIR.glob("*.schema.json"))
TWELVE_DIGITS = re.compile(r"[0-9]{12}")


def message_type_of(directory: Path) -> str:
    """Example folders are named after their message type, with '-' for '.' (``asset-inquiry``)."""
    return directory.name.replace("-", ".")


def _examples(prefix: str) -> list[tuple[str, Path]]:
    return [
        (message_type_of(directory), path)
        for directory in sorted(p for p in EXAMPLE_DIR.iterdir() if p.is_dir())
        for path in sorted(directory.glob(f"{prefix}-*.json"))
    ]


VALID = _examples("valid")
INVALID = _examples("invalid")


def _load(path: Path) -> Any:
    return json.loads(path.read_text(encoding="utf-8"))


def _id(case: tuple[str, Path]) -> str:
    return f"{case[0]}/{case[1].name}"


def _judgment() -> dict[str, Any]:
    """A fresh valid judgment delivery to break one thing at a time."""
    doc: dict[str, Any] = _load(EXAMPLE_DIR / "judgment.delivery" / "valid-civil-judgment-two-persons.json")
    return doc


def _set(doc: dict[str, Any], dotted: str, value: object) -> None:
    *parents, last = dotted.split(".")
    node: Any = doc
    for key in parents:
        node = node[int(key)] if key.isdigit() else node[key]
    node[int(last) if last.isdigit() else last] = value


def _json_path(dotted: str) -> str:
    return "$" + "".join(f"[{k}]" if k.isdigit() else f".{k}" for k in dotted.split("."))


def test_every_example_directory_is_a_known_message_type() -> None:
    directories = sorted(message_type_of(p) for p in EXAMPLE_DIR.iterdir() if p.is_dir())
    assert directories
    assert set(directories) <= set(catalog().message_types())
    assert len(VALID) >= 4
    assert len(INVALID) >= 8


@pytest.mark.parametrize("case", VALID, ids=_id)
def test_valid_example_has_no_violations(case: tuple[str, Path]) -> None:
    message_type, path = case
    doc = _load(path)
    assert catalog().violations(message_type, doc) == []
    if message_type in ENVELOPE_TYPES:  # messages, as opposed to API bodies and partner results
        assert validate_push(doc) == (message_type, [])


def test_examples_a_schema_lists_are_valid_documents_of_its_type() -> None:
    """A type may keep a valid example in its schema (JSON Schema's ``examples``) instead of a file: each
    is held to what a ``valid-*.json`` is."""
    for message_type in catalog().message_types():
        for name, doc in valid_examples(message_type):
            if "#/examples/" not in name:
                continue
            assert catalog().violations(message_type, doc) == [], name
            if message_type in ENVELOPE_TYPES:
                assert validate_push(doc) == (message_type, []), name


@pytest.mark.parametrize("case", INVALID, ids=_id)
def test_invalid_example_is_rejected_at_the_expected_paths(case: tuple[str, Path]) -> None:
    message_type, path = case
    expectations = _load(path.parent / "expectations.json")
    assert path.name in expectations, "every invalid example must list its expected paths"
    violations = catalog().violations(message_type, _load(path))
    assert violations
    found = [v.path for v in violations]
    for expected in expectations[path.name]:
        assert any(p.startswith(expected) for p in found), f"no violation under {expected}: {violations}"


@pytest.mark.parametrize("directory", sorted(p for p in EXAMPLE_DIR.iterdir() if p.is_dir()), ids=str)
def test_expectations_name_existing_invalid_examples(directory: Path) -> None:
    expectations_file = directory / "expectations.json"
    if not expectations_file.exists():
        assert not list(directory.glob("invalid-*.json"))
        return
    expectations = _load(expectations_file)
    assert set(expectations) == {p.name for p in directory.glob("invalid-*.json")}
    assert all(paths and all(p.startswith("$") for p in paths) for paths in expectations.values())


def test_examples_have_distinct_message_ids_and_judgment_numbers() -> None:
    docs = [_load(path) for _, path in VALID + INVALID]
    message_ids = [d["message_id"] for d in docs if "message_id" in d]
    assert len(message_ids) == len(set(message_ids))
    # Judgment deliveries only: court events and clarification requests name the judgment they concern.
    judgments = [d for d in docs if d.get("message_type") == "judgment.delivery"]
    numbers = [d["body"]["judgment"]["number"] for d in judgments if "judgment" in d.get("body", {})]
    assert len(numbers) == len(set(numbers))


@pytest.mark.parametrize("case", [c for c in VALID if c[0] == "judgment.delivery"], ids=_id)
def test_valid_judgments_come_from_the_hanoi_court_with_a_small_real_pdf(case: tuple[str, Path]) -> None:
    doc = _load(case[1])
    assert (doc["sender"], doc["recipient"]) == ("TAND-HN", "THADS-HN")
    assert doc["body"]["court"]["code"] == doc["sender"]
    document = doc["body"]["document"]
    if "content_base64" in document:
        pdf = base64.b64decode(document["content_base64"], validate=True)
        assert pdf.startswith(b"%PDF-")
        assert pdf.rstrip().endswith(b"%%EOF")
        assert len(document["content_base64"]) < 1024


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("created_at", "2026-13-01T00:00:00+07:00"),
        ("created_at", "2026-02-30T10:00:00+07:00"),
        ("created_at", "2026-03-02T25:00:00Z"),
        ("body.judgment.date", "2026-02-30"),
        ("body.judgment.date", "2026-2-03"),
        ("message_id", "550e8400e29b41d4a716446655440000"),
        ("message_id", "{550e8400-e29b-41d4-a716-446655440000}"),
        ("message_id", "550e8400-e29b-41d4-a716-446655440000}"),
        ("message_id", "urn:uuid:550e8400-e29b-41d4-a716-446655440000"),
        ("message_id", "550e8400-e29b-41d4-a716-44665544000-0"),
        ("body.document.uri", "https://luutru.tand-hn.example/ban an.pdf"),
        ("body.parties.1.person.id_number", "097079004321"),
    ],
)
def test_formats_are_checked(field: str, value: str) -> None:
    doc = _judgment()
    if field == "body.document.uri":
        # The URI alternative of the document needs a hash instead of inline content.
        del doc["body"]["document"]["content_base64"]
        doc["body"]["document"]["sha256"] = "0" * 64
    _set(doc, field, value)
    violations = catalog().violations("judgment.delivery", doc)
    assert [v for v in violations if v.path == _json_path(field) and v.rule == "format"], violations


def test_canonical_uuid_in_upper_case_is_accepted() -> None:
    doc = _judgment()
    doc["message_id"] = doc["message_id"].upper()
    assert catalog().violations("judgment.delivery", doc) == []


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("001085012345", True),
        ("096199123456", True),
        ("079300000001", True),
        ("000085012345", False),
        ("097085012345", False),
        ("00108501234", False),
        ("0010850123456", False),
        ("00108501234a", False),
        ("001085012345\n", False),
        ("００１０８５０１２３４５", False),
        ("", False),
    ],
)
def test_vn_personal_id(value: str, expected: bool) -> None:
    assert is_personal_id(value) is expected


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("550e8400-e29b-41d4-a716-446655440000", True),
        ("550E8400-E29B-41D4-A716-446655440000", True),
        ("550e8400e29b41d4a716446655440000", False),
        ("550e8400-e29b-41d4-a716-446655440000\n", False),
        ("550e8400-e29b-41d4-a716-44665544000g", False),
    ],
)
def test_canonical_uuid(value: str, expected: bool) -> None:
    assert is_canonical_uuid(value) is expected


def test_all_violations_are_reported_sorted_and_once() -> None:
    doc = _judgment()
    doc["sender"] = "tand-hn"
    doc["body"]["judgment"]["type"] = "ban_an"
    del doc["body"]["items"][0]["amount_vnd"]
    violations = catalog().violations("judgment.delivery", doc)
    assert len(violations) >= 3
    assert violations == sorted(violations, key=lambda v: (v.path, v.message))
    assert len(violations) == len(set(violations))
    assert {"$.sender", "$.body.judgment.type", "$.body.items[0].amount_vnd"} <= {v.path for v in violations}


def test_failed_alternative_reports_what_to_fix() -> None:
    doc = _judgment()
    del doc["body"]["parties"][0]["person"]
    violations = catalog().violations("judgment.delivery", doc)
    assert [(v.path, v.message, v.rule) for v in violations] == [
        ("$.body.parties[0].person", "'person' is a required property", "required")
    ]


def test_both_alternatives_at_once_are_rejected() -> None:
    doc = _judgment()
    doc["body"]["parties"][0]["organisation"] = {
        "enterprise_code": "0108765432",
        "name": "Công ty TNHH Minh Phát",
        "address": "Số 8 phố Lý Thường Kiệt, phường Cửa Nam, thành phố Hà Nội",
    }
    violations = catalog().violations("judgment.delivery", doc)
    assert [(v.path, v.rule) for v in violations] == [("$.body.parties[0]", "oneOf")]
    assert "person" in violations[0].message and "organisation" in violations[0].message


def test_messages_never_echo_personal_ids_or_long_values() -> None:
    doc = _judgment()
    doc["officer_id"] = "0010850123456"
    doc["body"]["parties"][1]["person"]["id_number"] = "001079004321001"
    doc["body"]["parties"][0]["party_id"] = "001185012345" * 3
    doc["body"]["court"]["code"] = "CCCD 001185012345"
    doc["body"]["court"]["name"] = "Tòa án " * 60 + "001185012345"
    doc["body"]["judgment"]["number"] = "001185012345"
    doc["body"]["judgment"]["summary"] = {"id_number": "001185012345"}
    doc["body"]["items"][0]["amount_vnd"] = 10**16
    doc["body"]["items"][1]["description"] = ["001185012345"]
    violations = catalog().violations("judgment.delivery", doc)
    assert len(violations) >= 9
    for _, path in INVALID:
        violations += catalog().violations("judgment.delivery", _load(path))
    for violation in violations:
        assert not TWELVE_DIGITS.search(violation.message), violation
        assert len(violation.message) < 200, violation
    id_errors = [v for v in violations if v.path.endswith(("officer_id", "id_number"))]
    assert id_errors
    assert all(v.message == "The value is not a valid 12-digit personal ID number" for v in id_errors)


@pytest.mark.parametrize(
    ("document", "path", "rule"),
    [
        ([], "$", "type"),
        ("judgment.delivery", "$", "type"),
        ({"body": {}}, "$.message_type", "required"),
        ({"message_type": "judgment.receipt"}, "$.message_type", "enum"),
        ({"message_type": ["judgment.delivery"]}, "$.message_type", "enum"),
    ],
)
def test_push_without_a_known_message_type(document: object, path: str, rule: str) -> None:
    message_type, violations = validate_push(document)
    assert message_type is None
    assert [(v.path, v.rule) for v in violations] == [(path, rule)]
    assert "'judgment.delivery'" in violations[0].message


def test_push_of_a_known_type_runs_its_schema() -> None:
    doc = _judgment()
    del doc["body"]["parties"]
    message_type, violations = validate_push(doc)
    assert message_type == "judgment.delivery"
    assert [(v.path, v.message) for v in violations] == [
        ("$.body.parties", "'parties' is a required property")
    ]


def test_catalog_is_built_once_and_hands_out_copies() -> None:
    assert catalog() is catalog()
    schema = catalog().schema("judgment.delivery")
    schema["properties"].clear()
    assert catalog().schema("judgment.delivery")["properties"]
    assert isinstance(SchemaCatalog(), SchemaCatalog)


@pytest.mark.parametrize("path", SCHEMA_FILES, ids=lambda p: p.name)
def test_schema_file_is_valid_draft_2020_12(path: Path) -> None:
    schema = _load(path)
    Draft202012Validator.check_schema(schema)
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    assert schema["$id"] == SCHEMA_BASE + path.name


def test_schema_ids_are_unique() -> None:
    ids = [_load(path)["$id"] for path in SCHEMA_FILES]
    assert len(ids) == len(set(ids))


ENVELOPE_TYPES = [
    t for t in catalog().message_types() if catalog().schema(t).get("$ref") == "envelope.schema.json"
]


@pytest.mark.parametrize("message_type", ENVELOPE_TYPES)
def test_message_type_is_pinned_to_its_file_name(message_type: str) -> None:
    properties = catalog().schema(message_type)["properties"]
    assert properties["message_type"].get("const") == message_type


def test_format_checks_do_not_leak_into_jsonschema_defaults() -> None:
    catalog()
    assert "vn-personal-id" not in Draft202012Validator.FORMAT_CHECKER.checkers
