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

One module per job: :mod:`.catalog` (loading the schemas, the verdict), :mod:`.formats` (the format
checks), :mod:`.wording` (what a violation says), :mod:`.bounds` (how many are listed and counted) and
:mod:`.budget` (the time budget, off the event loop).
"""

from gateway.validation.bounds import BudgetExceeded, Violations, bounded_violations
from gateway.validation.budget import off_loop, remember_verdict
from gateway.validation.catalog import (
    SCHEMA_BASE,
    SCHEMA_SUFFIX,
    SchemaCatalog,
    catalog,
    judge_off_loop,
    validate_push,
)
from gateway.validation.formats import format_checker, is_canonical_uuid

__all__ = [
    "SCHEMA_BASE",
    "SCHEMA_SUFFIX",
    "BudgetExceeded",
    "SchemaCatalog",
    "Violations",
    "bounded_violations",
    "catalog",
    "format_checker",
    "is_canonical_uuid",
    "judge_off_loop",
    "off_loop",
    "remember_verdict",
    "validate_push",
]
