"""The format checks the message schemas rely on: Draft 2020-12's own, a strict ``uuid``, and
``vn-personal-id``, which is :func:`gateway.domain.identifiers.is_personal_id` (the one definition of a
personal ID)."""

from __future__ import annotations

from typing import Any, Final

from jsonschema import (  # type: ignore[import-untyped,unused-ignore]
    Draft202012Validator,
    FormatChecker,
)

from gateway.domain.identifiers import UUID, is_personal_id

# Without the format-nongpl extras jsonschema silently skips date-time and uri; refuse to start instead.
REQUIRED_FORMATS: Final = ("date", "date-time", "uuid", "uri", "vn-personal-id")


def is_canonical_uuid(value: str) -> bool:
    """Whether ``value`` is a UUID in the 36-character hyphenated form (either letter case).

    Stricter than :class:`uuid.UUID`, which also takes braces, ``urn:uuid:`` prefixes and stray
    hyphens; message IDs double as idempotency keys, so only one spelling per UUID is wanted.
    """
    return UUID.fullmatch(value) is not None


def _check_personal_id(instance: object) -> bool:
    # Formats only constrain strings; the schema's "type" catches the rest.
    return not isinstance(instance, str) or is_personal_id(instance)


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
