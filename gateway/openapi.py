"""The HTTP API as an OpenAPI 3.1 document, served at ``GET /openapi.json``.

Generated, not written: ``paths`` from the operation declarations (:mod:`gateway.web.operation`), every
request and response body from its JSON Schema file in ``gateway/schemas`` (:mod:`gateway.openapi_schemas`),
the problem responses, headers and security scheme from :mod:`gateway.openapi_components`.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from importlib import metadata
from typing import Final

from gateway.domain.inquiry import SOURCE_KINDS
from gateway.domain.registry import REGISTRY
from gateway.openapi_components import shared_components
from gateway.openapi_paths import paths
from gateway.openapi_schemas import JSON, component_name, components_from_files, message_schemas
from gateway.partners import load_partners
from gateway.reference_data import load_legal_bases
from gateway.settings import Settings
from gateway.web.operation import Operation

__all__ = [
    "OPENAPI_VERSION",
    "TAGS",
    "build_document",
    "component_name",
    "components_from_files",
    "message_schemas",
]

OPENAPI_VERSION: Final = "3.1.0"
PACKAGE: Final = "thads-gateway"
FALLBACK_VERSION: Final = "0.1.0"

#: Every operation's tag, in the order the document lists them.
TAGS: Final = {
    "Documents": "Send any document type: orders, reports, revocations, judgments.",
    "Judgments": "Courts push judgments.",
    "Messages": "Follow, confirm and revoke messages.",
    "Keys": "The gateway's public keys.",
    "Asset inquiries": "Look up a debtor's assets.",
    "Partners": "Partner agencies answering later.",
    "SOAP": "The courts' legacy SOAP 1.1 endpoint.",
    "Directory": "What the calling client may use, and the JSON Schemas.",
    "Events": "Status events pushed to subscribers: their own queue or a signed webhook.",
    "Citizens": "Consents to notices through VNeID, and a person's data-access report.",
    "Operations": "Health, readiness, metrics, and this document (for people: `/docs`).",
}

DESCRIPTION: Final = (
    "Electronic exchange between the enforcement case system and its partner agencies. Courts push legally "
    "effective judgments (`POST /v1/judgments`, or SOAP at `POST /soap/courts`); the case system receives "
    "each one exactly once in effect and confirms it with its enforcement case number; senders and "
    "recipients follow a message's status, evidence and replies. The case system sends orders to banks and "
    "registries and receives their reports (`POST /v1/documents`), and looks up a debtor's assets in every "
    "register at once (`POST /v1/asset-inquiries`).\n\n"
    "Messages are validated against the JSON Schemas (Draft 2020-12) in `components.schemas`, stored before "
    "they are acknowledged, and answered with a receipt signed with the gateway's Ed25519 key "
    "(`GET /v1/keys`). Errors are RFC 9457 `application/problem+json` documents whose `errors` list every "
    "violation with its JSON path."
)


def package_version() -> str:
    try:
        return metadata.version(PACKAGE)
    except metadata.PackageNotFoundError:
        return FALLBACK_VERSION


def build_document(settings: Settings, operations: Sequence[Operation]) -> JSON:
    """The OpenAPI 3.1 document of ``operations``, as served to ``settings.api.public_url``.

    ``ValueError`` for an operation naming an unknown tag or schema file, or a generated component
    whose name a schema file already takes.
    """
    schemas = message_schemas()
    _check(operations, set(schemas))
    public_url = settings.api.public_url.rstrip("/")
    generated_paths, unions = paths(operations, public_url)
    from_files = components_from_files(schemas)
    _state_configured_code_lists(from_files, settings)
    _state_registered_types(from_files)
    clashes = sorted(set(from_files) & set(unions))
    if clashes:
        raise ValueError(f"schema files and generated request bodies share component names: {clashes}")
    used = {operation.tag for operation in operations}
    document: JSON = {
        "openapi": OPENAPI_VERSION,
        "info": {
            "title": "Civil judgment enforcement data-exchange gateway",
            "version": package_version(),
            "description": DESCRIPTION,
        },
        "servers": [{"url": public_url}],
        "tags": [{"name": name, "description": text} for name, text in TAGS.items() if name in used],
        "paths": generated_paths,
        "components": {"schemas": from_files | unions, **shared_components(settings)},
    }
    # Nothing shared with the declarations or the constants: a caller may change its document freely.
    return copy.deepcopy(document)


def _state_registered_types(components: JSON) -> None:
    """A subscription may name registered message types only (422 otherwise): the document says which."""
    request = components.get(component_name("subscription.request"))
    if request is not None:
        request["properties"]["message_types"]["items"]["enum"] = sorted(REGISTRY)


def _state_configured_code_lists(components: JSON, settings: Settings) -> None:
    """What this installation's configuration allows where the schema files allow any code: the legal
    bases of ``legal_bases.toml`` and the partners of ``partners.toml`` an asset inquiry may name. The
    service refuses anything else (422), so the document says so. A list left empty by a missing file
    is not stated: such an installation looks nothing up, and says so at every inquiry."""
    inquiry = components.get(component_name("asset.inquiry"))
    if inquiry is None:
        return
    bases = sorted(load_legal_bases(settings.config_dir))
    if bases:
        inquiry["properties"]["legal_basis"]["enum"] = bases
        # A bulk lookup states one legal basis for all its debtors, checked against the same list (its
        # sources refer to the inquiry's definitions, stated below).
        bulk = components.get(component_name("asset.inquiry.bulk"))
        if bulk is not None:
            described = bulk["properties"]["legal_basis"].get("description", "")
            bulk["properties"]["legal_basis"] = {"type": "string", "enum": bases, "description": described}
    partners = load_partners(settings.config_dir)
    if not partners:
        return
    definitions = inquiry["$defs"]
    configured = {partner.kind for partner in partners}
    definitions["source_kind"]["enum"] = [kind for kind in SOURCE_KINDS if kind in configured]
    banks = sorted(partner.code for partner in partners if partner.kind == "bank")
    if banks:
        definitions["bank_selection"]["properties"]["bank"]["items"]["enum"] = banks
    else:
        definitions["bank_selection"] = {"description": "No bank is configured.", "not": {}}


def _check(operations: Sequence[Operation], stems: set[str]) -> None:
    for operation in operations:
        if operation.tag not in TAGS:
            raise ValueError(f"{operation.name}: tag {operation.tag!r} is not in TAGS")
        named = [*operation.request_schemas, *(r.schema for r in operation.responses.values() if r.schema)]
        unknown = [stem for stem in named if stem not in stems]
        if unknown:
            raise ValueError(f"{operation.name}: no schema file for {unknown} in gateway/schemas")
