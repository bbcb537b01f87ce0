"""A duplicate is only ever a document of the same type from the same sender: a push whose
``message_id`` or natural key another sender's document holds is never answered with that document's
receipt (SQLite and PostgreSQL)."""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from gateway.domain.errors import Conflict
from gateway.domain.registry import REGISTRY
from gateway.partners import load_partners
from gateway.reference_data import load_calendar, load_legal_bases
from gateway.services.document_rules import DocumentRules, by_code
from gateway.services.documents import DocumentService
from gateway.validation import catalog
from gateway.web.context import Services
from tests.support.documents_world import blocking_order, documents_world, principal, refusal, submit


@pytest.fixture
async def services(tmp_path: Path, database_url: str) -> AsyncIterator[Services]:
    async with documents_world(tmp_path, database_url) as services:
        yield services


def by_decision_number(doc: dict[str, Any]) -> str:
    """A natural key that, unlike the orders' own, does not name the sender."""
    return str(doc["body"]["decision"]["number"])


async def test_another_senders_message_id_is_409_and_tells_nothing_of_theirs(
    services: Services,
) -> None:
    theirs = blocking_order("THADS-HCM")
    await submit(services, "THADS-HCM", theirs)
    problem = await refusal(services, "THADS-HN", blocking_order(message_id=theirs["message_id"]), 409)
    assert theirs["body"]["decision"]["number"] not in problem.detail
    assert "THADS-HCM" not in problem.detail


async def test_a_natural_key_held_by_another_sender_is_not_a_duplicate(services: Services) -> None:
    """Were a type's natural key not to name its sender, another sender's document with the same key
    would still never be answered as this one's resend (its receipt is not this sender's to read)."""
    registry = {
        "order.account_blocking": dataclasses.replace(
            REGISTRY["order.account_blocking"], natural_key=by_decision_number
        )
    }
    config = services.settings.config_dir
    documents = DocumentService(
        services.db,
        catalog(),
        services.signer,
        services.clients,
        DocumentRules(
            calendar=load_calendar(config),
            partners=by_code(load_partners(config)),
            registry=registry,
            legal_bases=frozenset(load_legal_bases(config)),
        ),
    )
    theirs = blocking_order("THADS-HCM")
    await documents.submit(principal(services, "THADS-HCM"), theirs)
    mine = blocking_order()
    mine["body"]["decision"]["number"] = theirs["body"]["decision"]["number"]
    with pytest.raises(Conflict) as caught:
        await documents.submit(principal(services, "THADS-HN"), mine)
    assert theirs["message_id"] not in caught.value.detail


async def test_a_resend_of_ones_own_document_still_gets_its_receipt(services: Services) -> None:
    mine = blocking_order()
    first = await submit(services, "THADS-HN", mine)
    again = await submit(services, "THADS-HN", dict(mine))
    assert again.duplicate and again.receipt == first.receipt
