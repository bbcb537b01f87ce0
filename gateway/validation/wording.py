"""From jsonschema's errors to the violations a client reads: located at the member's own path, the
closest alternative of a ``oneOf`` blamed rather than the wrapper, in plain English, never echoing a
long value or a personal ID."""

from __future__ import annotations

import functools
import json
import re
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import Any, Final

from gateway.domain.identifiers import scrub

MAX_SHOWN_CHARS: Final = 40

_FORMAT_NAMES: Final = {
    "date": "a valid date (YYYY-MM-DD)",
    "date-time": "a valid RFC 3339 date-time with a UTC offset",
    "uuid": "a UUID in canonical 8-4-4-4-12 hexadecimal form",
    "uri": "a valid absolute URI",
}
_PERSONAL_ID_MESSAGE: Final = "The value is not a valid 12-digit personal ID number"

# Errors that mean "this alternative is a different shape altogether", so a poor match.
_MISMATCH_KEYWORDS: Final = frozenset({"type", "const", "enum"})

# Keywords whose larger / smaller value is the stricter one: of two such violations at one path, the stricter
# is kept (a negative pay_money amount breaks "minimum 0" and "minimum 1": the client needs to hear "1").
_LARGER_IS_STRICTER: Final = frozenset({"minimum", "exclusiveMinimum", "minLength", "minItems"})
_SMALLER_IS_STRICTER: Final = frozenset({"maximum", "exclusiveMaximum", "maxLength", "maxItems"})


def described(errors: Iterable[Any]) -> Iterator[tuple[str, str, Callable[[], str], object]]:
    """Each leaf of ``errors`` as ``(path, rule, message, strictness)``, what
    :func:`~gateway.validation.bounds.bounded_violations` collects: ``message`` composes the text only when
    called."""
    for error in errors:
        for leaf in _leaf_errors(error):
            yield _path(leaf), _rule(leaf), functools.partial(_message, leaf), _strictness(leaf)


def _path(error: Any) -> str:
    """The JSON path of a violation; for a missing member, the member's own path rather than its parent's."""
    base = str(error.json_path)
    if error.validator in ("required", "dependentRequired") and isinstance(error.instance, dict):
        missing = _missing_member(error)
        if missing is not None:
            return f"{base}.{missing}"
    return base


def _missing_member(error: Any) -> str | None:
    # jsonschema yields one error per missing name, its message starting with the name's repr.
    wanted = error.validator_value
    names: Iterable[object] = (
        [name for names in wanted.values() for name in names] if isinstance(wanted, Mapping) else wanted
    )
    message = str(error.message)
    for name in names:
        if isinstance(name, str) and name not in error.instance and message.startswith(repr(name)):
            return name
    return None


def _strictness(error: Any) -> tuple[int, Any] | None:
    value = error.validator_value
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    if error.validator in _LARGER_IS_STRICTER:
        return (0, value)
    if error.validator in _SMALLER_IS_STRICTER:
        return (0, -value)
    return None


def _leaf_errors(error: Any) -> list[Any]:
    """Replace a failed ``oneOf``/``anyOf`` by the errors of its closest alternative.

    The closest alternative is the one with the fewest shape mismatches (type/const/enum), then
    the fewest errors, then the first listed: the sender most likely meant that one, and its
    errors say what to fix ("'person' is a required property") where the wrapper only says
    "is not valid under any of the given schemas".
    """
    if error.validator not in ("oneOf", "anyOf") or not error.context:
        return [error]
    branches: dict[int, list[Any]] = {}
    for sub in error.context:
        index = sub.relative_schema_path[0] if sub.relative_schema_path else 0
        branches.setdefault(index if isinstance(index, int) else 0, []).append(sub)

    def closeness(item: tuple[int, list[Any]]) -> tuple[int, int, int]:
        index, errors = item
        mismatches = sum(1 for e in errors if e.validator in _MISMATCH_KEYWORDS)
        return mismatches, len(errors), index

    _, closest = min(branches.items(), key=closeness)
    return [leaf for sub in closest for leaf in _leaf_errors(sub)]


def _rule(error: Any) -> str:
    # A ``false`` subschema has no keyword to blame.
    return error.validator if isinstance(error.validator, str) else "false"


def show(value: object) -> str:
    """A value as it may appear in a message: personal IDs masked, at most 40 characters kept."""
    if isinstance(value, str):
        text = scrub(value)
        return repr(text if len(text) <= MAX_SHOWN_CHARS else text[:MAX_SHOWN_CHARS] + "…")
    text = scrub(json.dumps(value, ensure_ascii=False, default=str))
    return text if len(text) <= MAX_SHOWN_CHARS else text[:MAX_SHOWN_CHARS] + "…"


def _number(value: object) -> str:
    # Grouped digits read better for dong amounts, and a grouped number is no ID-like digit run.
    if isinstance(value, int) and not isinstance(value, bool):
        return f"{value:,}"
    return show(value)


def _plural(count: int, word: str) -> str:
    return f"{count} {word}" if count == 1 else f"{count} {word}s"


def _unexpected_properties(error: Any) -> list[str]:
    instance = error.instance
    if not isinstance(instance, dict):
        return []
    if error.validator == "additionalProperties" and isinstance(error.schema, dict):
        declared = error.schema.get("properties", {})
        patterns = error.schema.get("patternProperties", {})
        return sorted(
            str(k) for k in instance if k not in declared and not any(re.search(p, k) for p in patterns)
        )
    # jsonschema names unevaluated properties only in its own message.
    return sorted(str(k) for k in instance if repr(k) in error.message)


def _describe_items(schema: object) -> str:
    """``{"properties": {"role": {"const": "debtor"}}}`` -> ``"with role 'debtor'"``."""
    if isinstance(schema, Mapping):
        properties = schema.get("properties")
        if isinstance(properties, Mapping):
            wanted = [
                f"{name} {show(sub['const'])}"
                for name, sub in properties.items()
                if isinstance(sub, Mapping) and "const" in sub
            ]
            if wanted:
                return "with " + " and ".join(wanted)
    return "matching the 'contains' rule"


def _alternatives(branches: object) -> str:
    """Name the alternatives of a ``oneOf`` when each is told apart by its required properties."""
    if isinstance(branches, list) and all(isinstance(b, Mapping) and b.get("required") for b in branches):
        return " (" + " | ".join(" + ".join(b["required"]) for b in branches) + ")"
    return ""


def _quoted_list(values: Iterable[object]) -> str:
    return ", ".join(show(v) for v in values)


def _message(error: Any) -> str:
    """A clear English message for one leaf error, never echoing long values or personal IDs."""
    return scrub(_compose(error))


def _compose(error: Any) -> str:
    keyword = error.validator
    value = error.validator_value
    instance = error.instance
    shown = show(instance)
    if not isinstance(keyword, str):
        return f"{shown} is not allowed here"
    if keyword in ("required", "dependentRequired"):
        # Names only schema property names, never the instance.
        return str(error.message)
    if keyword in ("additionalProperties", "unevaluatedProperties"):
        extras = _unexpected_properties(error)
        if not extras:
            return "Additional properties are not allowed"
        verb = "was" if len(extras) == 1 else "were"
        return f"Additional properties are not allowed ({_quoted_list(extras)} {verb} unexpected)"
    if keyword == "type":
        types = [value] if isinstance(value, str) else list(value)
        return f"{shown} is not of type {' or '.join(repr(t) for t in types)}"
    if keyword == "format":
        if value == "vn-personal-id":
            return _PERSONAL_ID_MESSAGE
        return f"{shown} is not {_FORMAT_NAMES.get(value, f'a valid {value!r}')}"
    if keyword == "pattern":
        return f"{shown} does not match the pattern {value}"
    if keyword == "const":
        return f"{shown} is not the expected value {show(value)}"
    if keyword == "enum":
        return f"{shown} is not one of {_quoted_list(value)}"
    if keyword == "minLength":
        return f"{shown} is too short (minimum {_plural(value, 'character')})"
    if keyword == "maxLength":
        return f"{shown} is too long ({len(instance)} characters, maximum {value})"
    if keyword == "minItems":
        return f"has {_plural(len(instance), 'item')}, but at least {value} are required"
    if keyword == "maxItems":
        return f"has {_plural(len(instance), 'item')}, but at most {value} are allowed"
    if keyword == "minimum":
        return f"{_number(instance)} is less than the minimum of {_number(value)}"
    if keyword == "maximum":
        return f"{_number(instance)} is greater than the maximum of {_number(value)}"
    if keyword == "exclusiveMinimum":
        return f"{_number(instance)} is not greater than {_number(value)}"
    if keyword == "exclusiveMaximum":
        return f"{_number(instance)} is not less than {_number(value)}"
    if keyword == "multipleOf":
        return f"{_number(instance)} is not a multiple of {_number(value)}"
    if keyword == "uniqueItems":
        return "has duplicate items, but all items must be different"
    if keyword == "contains":
        if str(error.message).startswith("Too "):
            # minContains / maxContains: jsonschema's message gives counts only.
            return str(error.message)
        return f"does not contain an item {_describe_items(value)}"
    if keyword == "not":
        if isinstance(value, Mapping) and set(value) == {"required"}:
            names = value["required"]
            if len(names) == 1:
                return f"must not have the property {names[0]!r}"
            return f"must not have all of the properties {_quoted_list(names)} together"
        return f"{shown} matches a schema it must not match"
    if keyword == "oneOf":
        if error.context:
            return "does not match any of the alternatives"
        return f"must match exactly one of the alternatives{_alternatives(value)}, but matches several"
    if keyword == "anyOf":
        return "does not match any of the alternatives"
    return f"does not satisfy the {keyword!r} rule"
