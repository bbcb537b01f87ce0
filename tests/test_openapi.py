"""GET /openapi.json: a valid OpenAPI 3.1 document generated from the operation declarations, that
describes every route the app serves, whose request and response schemas are the schema files and match
what the gateway accepts and answers."""

from __future__ import annotations

import json
import re
import shutil
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient
from jsonschema import Draft202012Validator
from openapi_spec_validator import OpenAPIV31SpecValidator, validate
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012

from gateway.domain.identifiers import is_personal_id
from gateway.domain.inquiry import SOURCE_KINDS, InquiryStatus, SourceStatus
from gateway.domain.registry import REGISTRY
from gateway.domain.status import Status
from gateway.openapi import build_document, component_name, message_schemas
from gateway.openapi_schemas import FORMAT_PATTERNS
from gateway.partners import load_partners
from gateway.problems import PROBLEM_BASE
from gateway.reference_data import load_legal_bases
from gateway.schema_examples import valid_examples
from gateway.security.clients import ClientStore
from gateway.security.keys import generate_keypair, public_pem
from gateway.security.tokens import ACCEPTED_ALGORITHMS, REQUIRED_CLAIMS
from gateway.services.document_records import SIGNED_FIELDS
from gateway.validation import catalog, format_checker
from gateway.web import routes_openapi
from gateway.web.app import create_app
from gateway.web.operation import ANY_CLIENT
from gateway.web.operations import OPERATIONS
from tests.conftest import CASE_SYSTEM, EXAMPLES, ROOT, Party, World, example, fresh_judgment

DOCUMENT_URI = "urn:thads-gateway:openapi"
HTTP_METHODS = ("get", "put", "post", "delete", "options", "head", "patch", "trace")
PROBLEM_JSON = "application/problem+json"
CASE_GRANTS = ["messages.read", "messages.confirm"]
NO_GRANTS = Party("NO-GRANTS", generate_keypair("ed25519"))


@pytest.fixture
async def gateway_api(world: World, aiohttp_client: Callable[..., Any]) -> TestClient[Any, Any]:
    """The full app with the bundled partners and reference data. The case system may also look up
    assets; ``NO-GRANTS`` is a registered client granted nothing."""
    for name in ("partners.toml", "legal_bases.toml", "holidays.toml"):
        shutil.copy(ROOT / "config" / name, world.settings.config_dir / name)
    store = ClientStore(world.settings.clients_dir)
    store.add(CASE_SYSTEM, public_pem(world.case_system.key.public_key()), [*CASE_GRANTS, "assets.inquire"])
    store.add(NO_GRANTS.id, public_pem(NO_GRANTS.key.public_key()), [])
    client: TestClient[Any, Any] = await aiohttp_client(create_app(world.settings))
    return client


@pytest.fixture
def document(world: World) -> dict[str, Any]:
    return build_document(world.settings, OPERATIONS)


def pointer(*segments: str) -> str:
    return "".join("/" + s.replace("~", "~0").replace("/", "~1") for s in segments)


def validator(document: dict[str, Any], location: str) -> Draft202012Validator:
    """A validator for the schema at JSON pointer ``location`` of ``document``, refs resolved in it."""
    resource = Resource.from_contents(document, default_specification=DRAFT202012)
    registry: Registry[Any] = Registry().with_resource(DOCUMENT_URI, resource)
    return Draft202012Validator(
        {"$ref": f"{DOCUMENT_URI}#{location}"}, registry=registry, format_checker=format_checker()
    )


def operations(document: dict[str, Any]) -> Iterator[tuple[str, str, dict[str, Any]]]:
    for path, item in document["paths"].items():
        for method in HTTP_METHODS:
            if method in item:
                yield path, method, item[method]


def requires_bearer(document: dict[str, Any], operation: dict[str, Any]) -> bool:
    security = operation.get("security", document.get("security", []))
    return any("bearer" in requirement for requirement in security)


def body_schema(path: str, method: str = "post", media: str = "application/json") -> str:
    return pointer("paths", path, method, "requestBody", "content", media, "schema")


def refs(node: Any) -> Iterator[str]:
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "$ref" and isinstance(value, str):
                yield value
            else:
                yield from refs(value)
    elif isinstance(node, list):
        for item in node:
            yield from refs(item)


def resolve(document: dict[str, Any], ref: str) -> Any:
    node: Any = document
    for raw in ref.removeprefix("#/").split("/"):
        key = raw.replace("~1", "/").replace("~0", "~")
        node = node[int(key)] if isinstance(node, list) else node[key]
    return node


def test_document_is_valid_openapi_3_1(document: dict[str, Any]) -> None:
    assert document["openapi"].startswith("3.1.")
    validate(document, cls=OpenAPIV31SpecValidator)


def test_every_reference_stays_inside_the_document(document: dict[str, Any]) -> None:
    found = set(refs(document))
    assert found
    for ref in found:
        assert ref.startswith("#/"), ref
        assert resolve(document, ref) is not None


def test_bearer_scheme_states_the_token_rules(document: dict[str, Any], world: World) -> None:
    scheme = document["components"]["securitySchemes"]["bearer"]
    assert (scheme["type"], scheme["scheme"], scheme["bearerFormat"]) == ("http", "bearer", "JWT")
    for claim in REQUIRED_CLAIMS:
        assert f"`{claim}`" in scheme["description"]
    for alg in ACCEPTED_ALGORITHMS:
        assert alg in scheme["description"]
    assert world.settings.auth.audience in scheme["description"]


async def test_served_without_authentication_and_cached(
    gateway_api: TestClient[Any, Any], world: World, document: dict[str, Any]
) -> None:
    first = await gateway_api.get("/openapi.json")
    assert first.status == 200
    assert first.content_type == "application/json"
    served = await first.json()
    assert served == json.loads(json.dumps(document))
    assert served["servers"] == [{"url": world.settings.api.public_url.rstrip("/")}]
    assert served["info"]["version"]
    again = await gateway_api.get("/openapi.json")
    assert await again.read() == await first.read()


async def test_every_route_is_documented_with_the_same_methods(
    gateway_api: TestClient[Any, Any], document: dict[str, Any]
) -> None:
    routed: dict[str, set[str]] = {}
    for resource in gateway_api.app.router.resources():
        path = resource.canonical
        if path == routes_openapi.PATH or isinstance(resource, web.PrefixedSubAppResource):
            continue  # mounted applications (the operators' console) are pages, not the API
        methods = {route.method.lower() for route in resource if route.method != "HEAD"}
        routed.setdefault(path, set()).update(methods)
    documented = {
        path: {m for m in HTTP_METHODS if m in item}
        for path, item in document["paths"].items()
        if path != routes_openapi.PATH
    }
    assert documented == routed
    assert set(document["paths"][routes_openapi.PATH]) == {"get"}


async def test_an_undeclared_method_is_405_naming_the_declared_ones(
    gateway_api: TestClient[Any, Any], document: dict[str, Any]
) -> None:
    values = {
        "message_id": str(uuid.uuid4()),
        "inquiry_id": str(uuid.uuid4()),
        "bulk_id": str(uuid.uuid4()),
        "asset": "docs.js",
        "schema": "receipt.schema.json",
        "subscription_id": str(uuid.uuid4()),
    }
    for path, item in document["paths"].items():
        declared = {m.upper() for m in HTTP_METHODS if m in item}
        for method in ("PATCH", "DELETE", "PUT"):
            if method in declared:
                continue
            resp = await gateway_api.request(method, path.format(**values))
            await resp.read()
            assert resp.status == 405, (path, method)
            assert resp.content_type == PROBLEM_JSON, (path, method)
            allowed = {m.strip() for m in resp.headers["Allow"].split(",")}
            assert allowed == declared | ({"HEAD"} if "GET" in declared else set()), (path, allowed)


def test_every_operation_requiring_a_token_lists_401(document: dict[str, Any]) -> None:
    secured = 0
    for path, method, operation in operations(document):
        assert operation.get("operationId"), (path, method)
        if requires_bearer(document, operation):
            secured += 1
            assert "401" in operation["responses"], (path, method)
            assert "429" in operation["responses"], (path, method)
        else:
            assert "401" not in operation["responses"], (path, method)
    assert secured >= 8


async def test_documented_security_is_what_the_app_enforces(
    gateway_api: TestClient[Any, Any], document: dict[str, Any]
) -> None:
    """Without a token, every secured operation answers 401 and no public one does."""
    values = {
        "message_id": str(uuid.uuid4()),
        "inquiry_id": str(uuid.uuid4()),
        "bulk_id": str(uuid.uuid4()),
        "asset": "docs.js",
        "schema": "receipt.schema.json",
        "subscription_id": str(uuid.uuid4()),
    }
    for path, method, operation in operations(document):
        resp = await gateway_api.request(method.upper(), path.format(**values))
        await resp.read()
        assert (resp.status == 401) is requires_bearer(document, operation), (path, method, resp.status)


@pytest.mark.parametrize(
    "value", ["001085012345", "096999999999", "000123456789", "097123456789", "00108501234", "0010850123456"]
)
def test_the_personal_id_format_is_stated_as_the_pattern_it_amounts_to(value: str) -> None:
    assert (re.fullmatch(FORMAT_PATTERNS["vn-personal-id"], value) is not None) is is_personal_id(value)


async def test_inquiries_name_only_what_this_installation_configures(
    gateway_api: TestClient[Any, Any], world: World
) -> None:
    """The legal bases and partners an inquiry may name are this installation's; the gateway refuses
    (422) any other, so the document lists them."""
    served = await (await gateway_api.get("/openapi.json")).json()
    inquiry = served["components"]["schemas"][component_name("asset.inquiry")]
    config = world.settings.config_dir
    assert inquiry["properties"]["legal_basis"]["enum"] == sorted(load_legal_bases(config))
    partners = load_partners(config)
    # Partners that only receive documents (police units, the e-ID notification service) are no source.
    assert set(inquiry["$defs"]["source_kind"]["enum"]) == {p.kind for p in partners} & set(SOURCE_KINDS)
    banks = inquiry["$defs"]["bank_selection"]["properties"]["bank"]["items"]["enum"]
    assert banks == sorted(p.code for p in partners if p.kind == "bank")


def test_every_schema_file_is_a_component(document: dict[str, Any]) -> None:
    components = document["components"]["schemas"]
    for stem, schema in message_schemas().items():
        component = components[component_name(stem)]
        assert component["x-schema-id"] == schema["$id"]
        assert "$id" not in component
    assert component_name("judgment.delivery") == "JudgmentDelivery"
    assert component_name("asset.result.bank") == "AssetResultBank"


def test_judgment_example_validates_against_the_documented_body(document: dict[str, Any]) -> None:
    body = validator(document, body_schema("/v1/judgments"))
    example = json.loads(
        (EXAMPLES / "judgment.delivery" / "valid-civil-judgment-two-persons.json").read_text("utf-8")
    )
    assert list(body.iter_errors(example)) == []
    # References into the shared schema files work: the personal ID format lives in common.schema.json.
    example["body"]["parties"][1]["person"]["id_number"] = "00108501234"
    paths = {e.json_path for e in body.iter_errors(example)}
    assert paths == {"$.body.parties[1].person.id_number"}


@pytest.mark.parametrize(
    ("path", "examples", "message_type"),
    [
        ("/v1/judgments", "judgment.delivery", "judgment.delivery"),
        ("/v1/asset-inquiries", "asset-inquiry", "asset.inquiry"),
    ],
)
def test_documented_bodies_judge_every_example_as_the_gateway_does(
    document: dict[str, Any], path: str, examples: str, message_type: str
) -> None:
    documented = validator(document, body_schema(path))
    schemas = catalog()
    own = Draft202012Validator(
        schemas.schema(message_type), registry=schemas.registry, format_checker=format_checker()
    )
    files = sorted(p for p in (EXAMPLES / examples).glob("*.json") if p.name != "expectations.json")
    assert files
    for file in files:
        instance = json.loads(file.read_text("utf-8"))
        # The same values refused; the document may say it twice (its own formats also as patterns).
        expected = {e.json_path for e in own.iter_errors(instance)}
        assert {e.json_path for e in documented.iter_errors(instance)} == expected, file.name
        assert (not expected) is file.name.startswith("valid-"), file.name


def test_every_documented_example_matches_its_schema(document: dict[str, Any]) -> None:
    contents: list[tuple[str, dict[str, Any]]] = []
    for path, method, operation in operations(document):
        for place in [operation.get("requestBody", {}), *operation["responses"].values()]:
            contents += [(f"{method} {path} {media}", c) for media, c in place.get("content", {}).items()]
    for name, response in document["components"]["responses"].items():
        contents += [(name, c) for c in response["content"].values()]
    checked = 0
    for where, content in contents:
        values = [content["example"]] if "example" in content else []
        values += [example["value"] for example in content.get("examples", {}).values()]
        for value in values:
            check = validator(document, content["schema"]["$ref"].removeprefix("#"))
            assert [e.message for e in check.iter_errors(value)] == [], where
            checked += 1
    assert checked >= 12


async def test_answers_match_the_documented_responses(
    gateway_api: TestClient[Any, Any], world: World, document: dict[str, Any]
) -> None:
    def check(status: int, body: Any, path: str, method: str, media: str = "application/json") -> None:
        response = document["paths"][path][method]["responses"][str(status)]
        if "$ref" in response:
            response = resolve(document, response["$ref"])
        assert media in response["content"], (path, method, status)
        schema = response["content"][media]["schema"]
        errors = list(validator(document, schema["$ref"].removeprefix("#")).iter_errors(body))
        assert errors == [], (path, method, status, [e.message for e in errors])

    doc = fresh_judgment()
    resp = await gateway_api.post("/v1/judgments", json=doc, headers=world.court_headers())
    assert resp.status == 202
    check(202, await resp.json(), "/v1/judgments", "post")
    resp = await gateway_api.post("/v1/judgments", json=doc, headers=world.court_headers())
    assert resp.status == 200
    check(200, await resp.json(), "/v1/judgments", "post")

    bad = fresh_judgment()
    bad["created_at"] = "2026-03-02T09:15:00"
    resp = await gateway_api.post("/v1/judgments", json=bad, headers=world.court_headers())
    assert resp.status == 422
    check(422, await resp.json(), "/v1/judgments", "post", PROBLEM_JSON)

    resp = await gateway_api.post("/v1/judgments", json=fresh_judgment())
    assert resp.status == 401
    check(401, await resp.json(), "/v1/judgments", "post", PROBLEM_JSON)

    resp = await gateway_api.get(f"/v1/messages/{doc['message_id']}", headers=world.court_headers())
    assert resp.status == 200
    check(200, await resp.json(), "/v1/messages/{message_id}", "get")

    resp = await gateway_api.get(f"/v1/messages/{uuid.uuid4()}", headers=world.court_headers())
    assert resp.status == 404
    check(404, await resp.json(), "/v1/messages/{message_id}", "get", PROBLEM_JSON)

    for path in ("/v1/keys", "/healthz", "/readyz"):
        resp = await gateway_api.get(path)
        assert resp.status == 200
        check(200, await resp.json(), path, "get")

    inquiry = example("asset-inquiry", "valid-all-registers.json")
    headers = {**world.case_headers(), "Idempotency-Key": "openapi-test-0001"}
    resp = await gateway_api.post("/v1/asset-inquiries", json=inquiry, headers=headers)
    assert resp.status == 202, await resp.text()
    check(202, await resp.json(), "/v1/asset-inquiries", "post")
    view = await resp.json()
    resp = await gateway_api.get(resp.headers["Location"], headers=world.case_headers())
    assert resp.status == 200
    check(200, await resp.json(), "/v1/asset-inquiries/{inquiry_id}", "get")
    resp = await gateway_api.get(
        "/v1/asset-inquiries", params={"case_ref": view["case_ref"]}, headers=world.case_headers()
    )
    assert resp.status == 200
    listed = await resp.json()
    assert [i["inquiry_id"] for i in listed["inquiries"]] == [view["inquiry_id"]]
    check(200, listed, "/v1/asset-inquiries", "get")
    resp = await gateway_api.post("/v1/asset-inquiries", json=inquiry, headers=world.court_headers())
    assert resp.status == 403
    check(403, await resp.json(), "/v1/asset-inquiries", "post", PROBLEM_JSON)


def test_every_route_is_declared_and_every_declaration_routed(gateway_api: TestClient[Any, Any]) -> None:
    routed = {
        (route.method, route.resource.canonical, route.name)
        for resource in gateway_api.app.router.resources()
        if not isinstance(resource, web.PrefixedSubAppResource)  # pages, not the API
        for route in resource
        if route.method != "HEAD" and route.resource is not None
    }
    declared = {(operation.method, operation.path, operation.name) for operation in OPERATIONS}
    assert routed == declared
    assert len({operation.name for operation in OPERATIONS}) == len(OPERATIONS)
    assert len({operation.operation_id for operation in OPERATIONS}) == len(OPERATIONS)


def test_every_declared_body_has_its_schema_file() -> None:
    stems = set(message_schemas())
    for operation in OPERATIONS:
        responses = operation.responses.values()
        for stem in [*operation.request_schemas, *(r.schema for r in responses if r.schema)]:
            assert stem in stems, (operation.name, stem)
        for response in responses:
            assert response.schema or response.media_type != "application/json", operation.name
        if operation.method == "POST" and operation.request_media == "application/json":
            assert operation.request_schemas, operation.name


def test_documents_body_is_one_of_every_registered_type(document: dict[str, Any]) -> None:
    content = document["paths"]["/v1/documents"]["post"]["requestBody"]["content"]["application/json"]
    union = resolve(document, content["schema"]["$ref"])
    assert [branch["$ref"] for branch in union["oneOf"]] == [
        f"#/components/schemas/{component_name(message_type)}" for message_type in REGISTRY
    ]
    assert [e["value"]["message_type"] for e in content["examples"].values()] == list(REGISTRY)
    body = validator(document, body_schema("/v1/documents"))
    for message_type in REGISTRY:
        valid = valid_examples(message_type)
        assert valid, message_type
        for name, doc in valid:
            assert list(body.iter_errors(doc)) == [], name


def test_response_schemas_name_every_value_the_domain_has() -> None:
    schemas = message_schemas()
    assert schemas["message.status"]["$defs"]["status"]["enum"] == [s.value for s in Status]
    inquiry = schemas["inquiry"]
    assert inquiry["properties"]["status"]["enum"] == [s.value for s in InquiryStatus]
    assert inquiry["$defs"]["source"]["properties"]["status"]["enum"] == [s.value for s in SourceStatus]
    assert schemas["receipt"]["properties"]["signed_fields"]["examples"] == [list(SIGNED_FIELDS)]
    assert schemas["problem"]["properties"]["type"]["examples"][0].startswith(PROBLEM_BASE)


async def test_grants_are_enforced_as_declared(gateway_api: TestClient[Any, Any], world: World) -> None:
    """A registered client granted nothing is refused (403) wherever a grant is declared, before or once
    the body is read, and is let through (then answered by the handler) where any client may call."""
    values = {
        "message_id": str(uuid.uuid4()),
        "inquiry_id": str(uuid.uuid4()),
        "bulk_id": str(uuid.uuid4()),
        "subscription_id": str(uuid.uuid4()),
    }
    checked = 0
    for operation in OPERATIONS:
        if operation.grant is None or operation.errors == "soap-fault":
            continue
        body = None
        if operation.grant_check == "service" and operation.examples:
            declared = operation.examples[0]
            body = example(declared.directory, declared.file) if declared.file else None
            body = body if body is not None else valid_examples(declared.directory)[0][1]
        resp = await gateway_api.request(
            operation.method,
            operation.path.format(**values),
            json=body,
            headers=NO_GRANTS.headers(world.settings),
        )
        await resp.read()
        expected_refused = operation.grant != ANY_CLIENT
        assert (resp.status == 403) is expected_refused, (operation.name, resp.status)
        assert resp.status != 401, operation.name
        checked += 1
    assert checked >= 9
