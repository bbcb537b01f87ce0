"""The domain's errors, and the one table that says which problem (and HTTP status) each one is."""

from __future__ import annotations

import inspect
from collections.abc import Iterator

import grimp
import pytest
from lxml import etree

from gateway.domain import errors
from gateway.domain.errors import (
    Conflict,
    DomainError,
    Forbidden,
    NotFound,
    Refused,
    TooComplex,
    Unavailable,
    set_max_listed,
)
from gateway.domain.violations import Violation
from gateway.openapi_components import PROBLEMS
from gateway.problems import PROBLEM_BASE, STATUS_OF, max_listed, problem_for
from gateway.soap import COURTS_NS, faults


@pytest.fixture
def listing_two() -> Iterator[None]:
    before = max_listed()
    set_max_listed(2)
    try:
        yield
    finally:
        set_max_listed(before)


def test_every_domain_error_has_its_status() -> None:
    kinds = [
        kind
        for _, kind in inspect.getmembers(errors, inspect.isclass)
        if issubclass(kind, DomainError) and kind is not DomainError
    ]
    assert kinds and all(kind in STATUS_OF for kind in kinds), [k for k in kinds if k not in STATUS_OF]


@pytest.mark.parametrize(
    ("error", "status"),
    [
        (Refused([Violation("$.a", "is wrong", "rule")]), 422),
        (Forbidden("not granted"), 403),
        (NotFound(), 404),
        (Conflict("already used"), 409),
    ],
)
def test_a_domain_error_is_the_problem_the_api_documents(error: DomainError, status: int) -> None:
    problem = problem_for(error)
    _, kind, title, _ = PROBLEMS[status]
    assert (problem.status, problem.kind, problem.title) == (status, kind, title)
    assert problem.body("/v1/x")["type"] == PROBLEM_BASE + error.slug
    assert problem.detail == error.detail


def test_a_refusal_lists_its_violations_once_in_order_and_says_how_many() -> None:
    late, early = Violation("$.b", "is wrong", "rule"), Violation("$.a", "is missing", "required")
    body = problem_for(Refused([late, early, late])).body()
    assert body["errors"] == [early.as_dict(), late.as_dict()]
    assert body["detail"] == "2 violation(s); fix all of them and send again."
    assert "errors_omitted" not in body


@pytest.mark.usefixtures("listing_two")
def test_a_refusal_lists_at_most_the_limit_and_counts_the_rest() -> None:
    refused = Refused([Violation(f"$.v{n}", "is wrong") for n in range(5)])
    assert [v.path for v in refused.violations] == ["$.v0", "$.v1"] and refused.omitted == 3
    assert refused.detail == "5 violation(s), the first 2 listed, 3 more; fix all of them and send again."
    assert problem_for(refused).body()["errors_omitted"] == 3


def test_an_unavailable_dependency_says_when_to_retry_and_what_is_down() -> None:
    problem = problem_for(Unavailable("nothing was changed", retry_after=7, slug="broker-unavailable"))
    assert (problem.status, problem.kind, problem.title) == (
        503,
        "broker-unavailable",
        "The message broker is unavailable",
    )
    assert problem.headers == {"Retry-After": "7"}
    assert problem_for(Unavailable("down")).kind == "unavailable"


def test_too_complex_names_the_limit() -> None:
    problem = problem_for(TooComplex("xml_max_depth", 64, "the XML is nested too deep"))
    assert problem.status == 413 and problem.kind == "too-complex"
    assert problem.extra == {"limit": "xml_max_depth", "limit_value": 64}
    assert problem.detail == "the XML is nested too deep (limit xml_max_depth = 64); send a smaller message."


def test_a_soap_fault_carries_the_same_status_and_type() -> None:
    fault = etree.fromstring(faults.from_problem(problem_for(Conflict("already used"))))
    ns = {"gw": COURTS_NS}
    assert fault.findtext(".//faultcode") == "soap:Client"
    assert fault.findtext(".//gw:HttpStatus", namespaces=ns) == "409"
    assert fault.findtext(".//gw:Type", namespaces=ns) == PROBLEM_BASE + "conflict"


def test_services_and_the_worker_know_nothing_of_http_problems() -> None:
    graph = grimp.build_graph("gateway", exclude_type_checking_imports=True, cache_dir=None)
    chains = [
        chain
        for package in ("gateway.domain", "gateway.services", "gateway.worker")
        for module in sorted(graph.find_descendants(package) | {package})
        for http in ("gateway.problems", "gateway.web")
        if (chain := graph.find_shortest_chain(module, http))
    ]
    assert chains == []
