"""The message schemas, loaded once into one registry, and the verdict on a document: surely valid from the
compiled validator, else its violations listed by ``jsonschema`` (bounded), under the budget when asked."""

from __future__ import annotations

import copy
import functools
import json
from importlib.resources import files
from importlib.resources.abc import Traversable
from typing import TYPE_CHECKING, Any, Final

import jsonschema_rs
from jsonschema import Draft202012Validator  # type: ignore[import-untyped,unused-ignore]
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012

from gateway.problems import Violation, max_listed
from gateway.validation.bounds import Violations, bounded_violations
from gateway.validation.budget import off_loop, remember_verdict, remembered
from gateway.validation.formats import format_checker
from gateway.validation.wording import described, show

if TYPE_CHECKING:
    from gateway.settings import LimitsSettings

SCHEMA_BASE: Final = "https://gateway.thads.example/schemas/"
SCHEMA_SUFFIX: Final = ".schema.json"
SHARED_SCHEMAS: Final = frozenset({"common", "envelope", "orders"})


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
        held = remembered(document, message_type)
        if held is not None:
            return held
        validator = self._validators[message_type]
        if self.surely_valid(message_type, document):
            return Violations()
        found = described(validator.iter_errors(document))
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
            message = f"{show(message_type)} is not a known message type; known types: {known}"
            return None, [Violation("$.message_type", message, "enum")]
        return message_type, self.violations(message_type, document)


@functools.cache
def catalog() -> SchemaCatalog:
    """The process-wide catalog of the installed schemas, loaded on first use."""
    return SchemaCatalog()


def validate_push(document: object) -> tuple[str | None, list[Violation]]:
    """:meth:`SchemaCatalog.validate_push` on the process-wide :func:`catalog`."""
    return catalog().validate_push(document)


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
