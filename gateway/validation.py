"""JSON Schema validation of pushed messages.

Every ``<message_type>.schema.json`` in ``gateway/schemas`` describes one message type;
``common.schema.json`` and ``envelope.schema.json`` hold the shared pieces the others ``$ref``.
All files go into one :class:`referencing.Registry` keyed by their ``$id``, so relative references
such as ``common.schema.json#/$defs/uuid`` resolve offline, and each message type gets one
prebuilt Draft 2020-12 validator with format checking switched on.

Violations are reported in full, not just the first one, and their messages are safe to send back
and to log: long values are truncated and personal ID numbers are never echoed.

Most documents are valid, and for those the verdict comes from ``jsonschema-rs`` (compiled, about ten
times faster than walking the schema in Python: validation was over a third of the api's time per push).
Only a document it rejects is walked by ``jsonschema``, which lists the violations — so the list a client
gets is always ``jsonschema``'s. The two share the same format checks (the Python ones, handed to
``jsonschema-rs``), and ``tests/test_validation_fast_path.py`` proves they agree document by document.

The work per document is bounded: at most ``limit`` violations are composed (one per path and rule), the
rest only counted, and that count stops too (at ten times the limit); a deadline is checked between
violations. :func:`judge_off_loop` runs a large body's validation in a validation thread under the
``[limits] validation_budget_seconds`` budget and remembers the verdict for the document service, which asks
:meth:`SchemaCatalog.violations` again for the same document object in the same request.
"""

from __future__ import annotations

import asyncio
import contextvars
import copy
import functools
import gc
import json
import re
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from importlib.resources import files
from importlib.resources.abc import Traversable
from typing import TYPE_CHECKING, Any, Final, TypeVar

import jsonschema_rs
from jsonschema import (  # type: ignore[import-untyped,unused-ignore]
    Draft202012Validator,
    FormatChecker,
)
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012

from gateway.domain.identifiers import UUID, is_personal_id, scrub
from gateway.problems import Violation, max_listed, too_complex

if TYPE_CHECKING:
    from gateway.settings import LimitsSettings

__all__ = [
    "SCHEMA_BASE",
    "BudgetExceeded",
    "SchemaCatalog",
    "Violations",
    "bounded_violations",
    "catalog",
    "format_checker",
    "is_canonical_uuid",
    "is_vn_personal_id",
    "judge_off_loop",
    "off_loop",
    "remember_verdict",
    "validate_push",
]

SCHEMA_BASE: Final = "https://gateway.thads.example/schemas/"
SCHEMA_SUFFIX: Final = ".schema.json"
SHARED_SCHEMAS: Final = frozenset({"common", "envelope", "orders"})

# Without the format-nongpl extras jsonschema silently skips date-time and uri; refuse to start instead.
REQUIRED_FORMATS: Final = ("date", "date-time", "uuid", "uri", "vn-personal-id")

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

#: Past the listed violations, at most this many times the limit are counted, then "at least N more".
#: Counting is not free: jsonschema still walks each bad item (about 1 ms each for a judgment's items).
COUNT_FACTOR: Final = 10

# Keywords whose larger / smaller value is the stricter one: of two such violations at one path, the stricter
# is kept (a negative pay_money amount breaks "minimum 0" and "minimum 1": the client needs to hear "1").
_LARGER_IS_STRICTER: Final = frozenset({"minimum", "exclusiveMinimum", "minLength", "minItems"})
_SMALLER_IS_STRICTER: Final = frozenset({"maximum", "exclusiveMaximum", "maxLength", "maxItems"})

T = TypeVar("T")


class BudgetExceeded(Exception):
    """The validation ran past its deadline (``[limits] validation_budget_seconds``)."""


class Violations(list[Violation]):
    """Violations, possibly cut short: ``omitted`` more were found; ``counted_all`` is ``False`` when the
    counting itself stopped, so ``omitted`` is a lower bound."""

    omitted: int = 0
    counted_all: bool = True


def bounded_violations(
    found: Iterable[tuple[str, str, Callable[[], str], object]], limit: int, deadline: float | None
) -> Violations:
    """Collect ``(path, rule, message, strictness)`` items, one per path and rule, at most ``limit`` listed.

    ``message`` is called only for a listed violation (composing is the costly part); further ones are
    counted up to ``limit * COUNT_FACTOR``. Raises :class:`BudgetExceeded` once ``time.monotonic()`` passes
    ``deadline``. ``strictness`` (comparable or ``None``) picks which of two at one path and rule is kept.
    """
    listed: dict[tuple[str, str], tuple[Callable[[], str], object]] = {}
    more: set[tuple[str, str]] = set()
    counted_all = True
    for path, rule, message, strictness in found:
        if deadline is not None and time.monotonic() > deadline:
            raise BudgetExceeded
        key = (path, rule)
        if key in listed:
            if _stricter(strictness, listed[key][1]):
                listed[key] = (message, strictness)
            continue
        if len(listed) < limit:
            listed[key] = (message, strictness)
        elif key not in more:
            more.add(key)
            if len(more) >= limit * COUNT_FACTOR:
                counted_all = False
                break
    out = Violations(
        sorted(
            (Violation(path, message(), rule) for (path, rule), (message, _) in listed.items()),
            key=lambda v: (v.path, v.message, v.rule),
        )
    )
    out.omitted = len(more)
    out.counted_all = counted_all
    return out


def _stricter(new: object, old: object) -> bool:
    if not isinstance(new, tuple) or not isinstance(old, tuple):
        return False
    try:
        return bool(new > old)
    except TypeError:
        return False


_PREJUDGED: contextvars.ContextVar[tuple[object, str, Violations] | None] = contextvars.ContextVar(
    "gateway_prejudged", default=None
)


def remember_verdict(document: object, message_type: str, violations: Violations) -> None:
    """Make :meth:`SchemaCatalog.violations` answer ``violations`` for this very ``document`` object (by
    identity) and type, for the rest of the current request's context: the verdict was reached off the event
    loop, and the service asking again must not walk the document a second time on it. Every service asks
    before it changes anything in the document (the web layer hands it over as parsed), which is what makes
    the verdict still hold."""
    _PREJUDGED.set((document, message_type, violations))


@functools.cache
def _executor(threads: int) -> ThreadPoolExecutor:
    # Threads rather than processes: the document is already a Python object here (a process would need it
    # pickled there and parsed again: 60% slower), and pure-Python validation gives the GIL up every switch
    # interval, so the event loop keeps answering (docs/architecture.md, "Bounded work per request").
    # What still paused the loop were full garbage collections walking every long-lived object (schemas,
    # modules, services) mid-validation, up to 600 ms; frozen, they are no longer walked (about 100 ms).
    gc.freeze()
    return ThreadPoolExecutor(max_workers=threads, thread_name_prefix="validation")


async def off_loop(work: Callable[[float], T], *, size: int, limits: LimitsSettings) -> T:
    """``work(deadline)`` within ``[limits] validation_budget_seconds``: inline for a body of at most
    ``inline_validation_bytes`` (a thread hop costs more than validating it), else in a validation thread.

    Over the budget: a 413 ``too-complex`` problem naming it. ``work`` should check the deadline itself
    (a thread cannot be stopped from outside): the 413 is answered at the deadline either way.
    """
    budget = limits.validation_budget_seconds
    deadline = time.monotonic() + budget
    try:
        if size <= limits.inline_validation_bytes:
            return work(deadline)
        loop = asyncio.get_running_loop()
        context = contextvars.copy_context()
        future = loop.run_in_executor(_executor(limits.validation_threads), context.run, work, deadline)
        async with asyncio.timeout(budget):
            return await future
    except (BudgetExceeded, TimeoutError) as exc:
        raise too_complex(
            "validation_budget_seconds", budget, "validating the message took longer than one request may"
        ) from exc


async def judge_off_loop(
    message_type: str, document: object, *, size: int, limits: LimitsSettings, schemas: SchemaCatalog | None
) -> Violations:
    """The (capped) violations of ``document`` as ``message_type``, found under the budget by
    :func:`off_loop`, and remembered (:func:`remember_verdict`) for the service that asks again."""
    used = schemas or catalog()
    verdict = await off_loop(
        lambda deadline: used.violations(message_type, document, limit=limits.max_errors, deadline=deadline),
        size=size,
        limits=limits,
    )
    remember_verdict(document, message_type, verdict)
    return verdict


def is_vn_personal_id(value: str) -> bool:
    """Whether ``value`` looks like a Vietnamese 12-digit personal identification number.

    Layout: digits 1-3 are the province code of the birth registration (001..096), digit 4
    encodes century of birth and sex (0/1 = 1900s male/female, 2/3 = 2000s, 4/5 = 2100s,
    6/7 = 2200s, 8/9 = 2300s, so every digit 0-9 is legitimate), digits 5-6 are the last two
    digits of the year of birth, and the last six are a serial number. Only the length, the ASCII
    digits and the province range are checked: the birth-year digits cannot be verified without
    the date of birth.
    """
    return is_personal_id(value)


def is_canonical_uuid(value: str) -> bool:
    """Whether ``value`` is a UUID in the 36-character hyphenated form (either letter case).

    Stricter than :class:`uuid.UUID`, which also takes braces, ``urn:uuid:`` prefixes and stray
    hyphens; message IDs double as idempotency keys, so only one spelling per UUID is wanted.
    """
    return UUID.fullmatch(value) is not None


def _check_personal_id(instance: object) -> bool:
    # Formats only constrain strings; the schema's "type" catches the rest.
    return not isinstance(instance, str) or is_vn_personal_id(instance)


def _check_uuid(instance: object) -> bool:
    return not isinstance(instance, str) or is_canonical_uuid(instance)


def format_checker() -> Any:
    """A fresh ``FormatChecker``: the Draft 2020-12 checks plus ``vn-personal-id`` and a strict ``uuid``.

    A copy, so the checker shared by every jsonschema user in the process is left untouched.
    """
    checker = FormatChecker(formats=())
    checker.checkers.update(Draft202012Validator.FORMAT_CHECKER.checkers)
    checker.checks("vn-personal-id")(_check_personal_id)
    checker.checks("uuid")(_check_uuid)
    missing = [name for name in REQUIRED_FORMATS if name not in checker.checkers]
    if missing:
        raise RuntimeError(
            f"format checks unavailable: {', '.join(missing)}; install jsonschema[format-nongpl]"
        )
    return checker


def _conforms(checker: Any, name: str) -> Any:
    def check(value: object) -> bool:
        return bool(checker.conforms(value, name))

    return check


class SchemaCatalog:
    """The message schemas, their shared registry and one prebuilt validator per message type."""

    def __init__(self, root: Traversable | None = None) -> None:
        """Load every ``*.schema.json`` under ``root`` (default: the installed ``gateway/schemas``).

        Raises ``ValueError`` for a schema without ``$id`` or with a duplicate one, and
        ``jsonschema.SchemaError`` for a schema that is not valid Draft 2020-12.
        """
        directory = root if root is not None else files("gateway").joinpath("schemas")
        by_name: dict[str, dict[str, Any]] = {}
        ids: set[str] = set()
        for entry in sorted(directory.iterdir(), key=lambda e: e.name):
            if not entry.is_file() or not entry.name.endswith(SCHEMA_SUFFIX):
                continue
            contents = json.loads(entry.read_text(encoding="utf-8"))
            schema_id = contents.get("$id") if isinstance(contents, dict) else None
            if not isinstance(schema_id, str) or not schema_id:
                raise ValueError(f"{entry.name}: a schema needs a string $id")
            if schema_id in ids:
                raise ValueError(f"{entry.name}: duplicate $id {schema_id}")
            Draft202012Validator.check_schema(contents)
            ids.add(schema_id)
            by_name[entry.name.removesuffix(SCHEMA_SUFFIX)] = contents

        self.registry: Registry[Any] = Registry().with_resources(
            (schema["$id"], Resource.from_contents(schema, default_specification=DRAFT202012))
            for schema in by_name.values()
        )
        checker = format_checker()
        self._schemas = {name: s for name, s in by_name.items() if name not in SHARED_SCHEMAS}
        self._validators: dict[str, Any] = {
            name: Draft202012Validator(schema, registry=self.registry, format_checker=checker)
            for name, schema in self._schemas.items()
        }
        fast_registry = jsonschema_rs.Registry([(schema["$id"], schema) for schema in by_name.values()])
        fast_formats = {name: _conforms(checker, name) for name in checker.checkers}
        self._fast: dict[str, Any] = {
            name: jsonschema_rs.Draft202012Validator(
                schema,
                registry=fast_registry,
                validate_formats=True,
                formats=fast_formats,
                ignore_unknown_formats=False,
            )
            for name, schema in self._schemas.items()
        }

    def surely_valid(self, message_type: str, document: object) -> bool:
        """Whether the compiled validator finds ``document`` valid. ``False`` is not a verdict: it means
        ask :meth:`violations` (which a value it cannot take, such as NaN or a huge integer, also gets)."""
        try:
            return bool(self._fast[message_type].is_valid(document))
        except Exception:  # any trouble in the fast path (NaN, a huge integer): the full walk decides
            return False

    def message_types(self) -> list[str]:
        """The known message types, sorted."""
        return sorted(self._schemas)

    def schema(self, message_type: str) -> dict[str, Any]:
        """A copy of the schema for ``message_type``; ``KeyError`` if unknown."""
        return copy.deepcopy(self._schemas[message_type])

    def violations(
        self, message_type: str, document: object, *, limit: int | None = None, deadline: float | None = None
    ) -> Violations:
        """How ``document`` breaks the ``message_type`` schema, sorted by path then message: one violation per
        path and rule, at most ``limit`` (default: :func:`gateway.problems.max_listed`) listed and the rest
        counted (:class:`Violations`). A missing member is located at its own path (``$.body.amount_vnd``).

        ``KeyError`` if the message type is unknown; :class:`BudgetExceeded` past ``deadline`` (a
        ``time.monotonic()`` value). An empty list means the document is valid.
        """
        held = _PREJUDGED.get()
        if held is not None and held[0] is document and held[1] == message_type:
            return held[2]
        validator = self._validators[message_type]
        if self.surely_valid(message_type, document):
            return Violations()
        found = (
            (_path(leaf), _rule(leaf), functools.partial(_message, leaf), _strictness(leaf))
            for leaf in _leaves(validator.iter_errors(document))
        )
        return bounded_violations(found, limit if limit is not None else max_listed(), deadline)

    def validate_push(self, document: object) -> tuple[str | None, list[Violation]]:
        """Validate a complete pushed message against the schema its ``message_type`` names.

        Returns the message type (``None`` when it cannot be determined) and the violations.
        """
        known = ", ".join(repr(t) for t in self.message_types())
        if not isinstance(document, dict):
            return None, [Violation("$", f"The message must be a JSON object; known types: {known}", "type")]
        if "message_type" not in document:
            message = f"'message_type' is a required property; known types: {known}"
            return None, [Violation("$.message_type", message, "required")]
        message_type = document["message_type"]
        if not isinstance(message_type, str) or message_type not in self._validators:
            message = f"{_show(message_type)} is not a known message type; known types: {known}"
            return None, [Violation("$.message_type", message, "enum")]
        return message_type, self.violations(message_type, document)


@functools.cache
def catalog() -> SchemaCatalog:
    """The process-wide catalog of the installed schemas, loaded on first use."""
    return SchemaCatalog()


def validate_push(document: object) -> tuple[str | None, list[Violation]]:
    """:meth:`SchemaCatalog.validate_push` on the process-wide :func:`catalog`."""
    return catalog().validate_push(document)


def _leaves(errors: Iterable[Any]) -> Iterator[Any]:
    for error in errors:
        yield from _leaf_errors(error)


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


def _redact(text: str) -> str:
    return scrub(text)


def _show(value: object) -> str:
    """A value as it may appear in a message: personal IDs masked, at most 40 characters kept."""
    if isinstance(value, str):
        text = _redact(value)
        return repr(text if len(text) <= MAX_SHOWN_CHARS else text[:MAX_SHOWN_CHARS] + "…")
    text = _redact(json.dumps(value, ensure_ascii=False, default=str))
    return text if len(text) <= MAX_SHOWN_CHARS else text[:MAX_SHOWN_CHARS] + "…"


def _number(value: object) -> str:
    # Grouped digits read better for dong amounts, and a grouped number is no ID-like digit run.
    if isinstance(value, int) and not isinstance(value, bool):
        return f"{value:,}"
    return _show(value)


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
                f"{name} {_show(sub['const'])}"
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
    return ", ".join(_show(v) for v in values)


def _message(error: Any) -> str:
    """A clear English message for one leaf error, never echoing long values or personal IDs."""
    return _redact(_compose(error))


def _compose(error: Any) -> str:
    keyword = error.validator
    value = error.validator_value
    instance = error.instance
    shown = _show(instance)
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
        return f"{shown} is not the expected value {_show(value)}"
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
