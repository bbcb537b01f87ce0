"""Every document that states a legal basis has it checked against ``config/legal_bases.toml``, as
lookups do: an order citing a basis not on the list is refused with 422 at ``$.legal_basis``; the shipped
examples cite bases that are on it (SQLite and PostgreSQL)."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from gateway.reference_data import load_legal_bases
from gateway.web.context import Services
from tests.conftest import ROOT, fresh_judgment
from tests.support.documents_world import blocking_order, documents_world, refusal, stored, submit

EXAMPLES = ROOT / "gateway" / "schemas" / "examples"
KNOWN = load_legal_bases(ROOT / "config")


@pytest.fixture
async def services(tmp_path: Path, database_url: str) -> AsyncIterator[Services]:
    async with documents_world(tmp_path, database_url) as services:
        yield services


async def test_an_order_citing_no_known_basis_is_refused_at_its_path(services: Services) -> None:
    order = blocking_order(legal_basis="NO-SUCH-BASIS")
    problem = await refusal(services, "THADS-HN", order, 422)
    [violation] = problem.violations
    assert violation.path == "$.legal_basis"
    assert "'NO-SUCH-BASIS' is not a known legal basis" in violation.message
    assert "LTHADS-67" in violation.message  # the known ones are listed, as for lookups
    assert await stored(services, order["message_id"]) is None


async def test_a_judgment_citing_no_known_basis_is_refused_too(services: Services) -> None:
    judgment = fresh_judgment() | {"legal_basis": "NO-SUCH-BASIS", "recipient": "THADS-HN"}
    problem = await refusal(services, "TAND-HN", judgment, 422)
    assert [v.path for v in problem.violations] == ["$.legal_basis"]


async def test_an_order_citing_a_known_basis_is_accepted(services: Services) -> None:
    assert not (await submit(services, "THADS-HN", blocking_order(legal_basis="LTHADS-67"))).duplicate


async def test_a_document_stating_no_basis_is_not_asked_for_one(services: Services) -> None:
    judgment = fresh_judgment() | {"recipient": "THADS-HN"}
    judgment.pop("legal_basis", None)
    assert not (await submit(services, "TAND-HN", judgment)).duplicate


def shipped_bases() -> list[tuple[str, str]]:
    out = []
    for path in sorted(EXAMPLES.glob("*/*.json")):
        if path.name == "expectations.json":
            continue
        doc = json.loads(path.read_text("utf-8"))
        if isinstance(doc, dict) and isinstance(doc.get("legal_basis"), str):
            out.append((f"{path.parent.name}/{path.name}", doc["legal_basis"]))
    return out


def test_orders_and_other_examples_cite_bases_on_the_list() -> None:
    cited = shipped_bases()
    assert any(name.startswith("order.") for name, _ in cited)
    assert [(name, basis) for name, basis in cited if basis not in KNOWN] == []
