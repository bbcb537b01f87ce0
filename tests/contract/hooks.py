"""Schemathesis hooks of the contract suite (loaded by ``schemathesis.toml``).

``positive_data_acceptance`` is configured to let a few operations answer a schema-valid request with
422: their documents must also satisfy rules that no schema can state (a party referenced by id, an
earlier document that must exist, a recipient that must be registered, dates in order, a PDF). This
check keeps that allowance narrow: such a 422 may cite those rules only. A violation of a JSON Schema
keyword means the document and the gateway disagree, and fails here.
"""

from __future__ import annotations

import json
from typing import Any

import schemathesis

#: Rules the gateway checks beyond the schema: a positive case may be refused for these only.
RULES_BEYOND_THE_SCHEMA = frozenset(
    {
        "amount",
        "answer",
        "chronology",
        "contentEncoding",
        "contentMediaType",
        "copy",
        "court",
        "issuer",
        "maxSize",
        "outcome",
        "partner",
        "reason",
        "recipient",
        "reference",
        "routing",
        "scope",
        "unique",
    }
)


@schemathesis.check
def refused_only_for_rules_beyond_the_schema(ctx: Any, response: Any, case: Any) -> bool | None:
    meta = case.meta
    if meta is None or not meta.generation.mode.is_positive or response.status_code != 422:
        return None
    try:
        errors = json.loads(response.text).get("errors", [])
    except (ValueError, AttributeError):
        errors = []
    outside = sorted({str(e.get("rule")) for e in errors} - RULES_BEYOND_THE_SCHEMA)
    if outside or not errors:
        raise AssertionError(
            "A schema-valid request was refused for a reason the schema could state "
            f"(rules {outside or 'none given'}): {response.text[:500]}"
        )
    return None
