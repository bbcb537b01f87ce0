"""What the gateway issues is the gateway's: deadline events and revocations carry ids keyed with the
gateway's secret, which no client can compute to claim beforehand, and no client may send those types,
whatever grant it holds (SQLite and PostgreSQL)."""

from __future__ import annotations

import copy
import json
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from gateway.domain.registry import REGISTRY
from gateway.domain.revocation import revocation_document
from gateway.security.signing import Signer
from gateway.services.document_ids import issued_id
from gateway.web.context import Services
from tests.conftest import example
from tests.support.documents_world import (
    blocking_order,
    documents_world,
    events_of,
    refusal,
    register,
    stored,
    submit,
)

#: How the ids of deadline events and revocations were derived before: from public values alone.
_OLD_REVOCATION_NS = uuid.UUID("6f1c2a52-3f0e-4a4b-9d7e-0c6a4c1f7e21")
_OLD_COPY_NS = uuid.UUID("6f1c0a52-3d4e-5b8f-9a0c-1e2d3c4b5a69")


def old_event_id(subject: str, kind: str) -> str:
    return str(uuid.uuid5(uuid.UUID(subject), f"event.deadline/{kind}"))


@pytest.fixture
async def services(tmp_path: Path, database_url: str) -> AsyncIterator[Services]:
    async with documents_world(tmp_path, database_url) as services:
        yield services


def escalation(subject: str, recipient: str = "THADS-HN") -> dict[str, Any]:
    doc = example("event.deadline", "valid-escalation-after-deadline.json")
    doc["message_id"] = old_event_id(subject, "escalation")
    doc["recipient"] = recipient
    doc["body"]["subject_message_id"] = subject
    return doc


async def test_a_client_cannot_send_a_deadline_event_whatever_its_grants(services: Services) -> None:
    register(
        services.clients,
        "THADS-HN",
        ["documents.send", "documents.send:event.deadline"],
        "amqp:thads-hn.inbox",
        role="enforcement_office",
    )
    subject = str(uuid.uuid4())
    forged = escalation(subject, recipient="VKS-HN") | {"sender": "THADS-HN"}
    problem = await refusal(services, "THADS-HN", forged, 403)
    assert "issued by the gateway only" in problem.detail
    assert await stored(services, forged["message_id"]) is None


@pytest.mark.parametrize("client_id", ["THADS-HN", "TAND-HN", "VKS-HN", "BANK-VCB", "DVCQG"])
async def test_no_client_may_send_a_revocation_or_a_deadline_event(
    services: Services, client_id: str
) -> None:
    revocation = example("document.revocation", "valid-revoke-blocking-order.json") | {"sender": client_id}
    await refusal(services, client_id, revocation, 403)
    await refusal(services, client_id, escalation(str(uuid.uuid4())) | {"sender": client_id}, 403)


def test_the_types_only_the_gateway_issues_are_deadline_events_and_revocations() -> None:
    assert {t for t, d in REGISTRY.items() if d.gateway_only} == {"event.deadline", "document.revocation"}


async def test_a_document_pushed_under_the_escalations_old_id_no_longer_silences_it(
    services: Services,
) -> None:
    order = blocking_order()
    await submit(services, "THADS-HN", order)
    # The office (or anyone who saw the order's id) claims the id the escalation used to have.
    claim = blocking_order(message_id=old_event_id(order["message_id"], "escalation"))
    await submit(services, "THADS-HN", claim)

    result = await services.documents.issue(escalation(order["message_id"]))
    assert not result.duplicate
    event_id = result.receipt["message_id"]
    assert event_id != claim["message_id"]
    row = await stored(services, event_id)
    assert (row.message_type, row.sender, row.recipient) == ("event.deadline", "GW-THADS", "THADS-HN")
    assert "duplicate_push" not in await events_of(services, claim["message_id"])


async def test_a_revocation_is_issued_even_when_its_old_id_was_claimed(services: Services) -> None:
    order = blocking_order()
    await submit(services, "THADS-HN", order)
    await submit(
        services,
        "THADS-HN",
        blocking_order(message_id=str(uuid.uuid5(_OLD_REVOCATION_NS, order["message_id"]))),
    )
    original = await stored(services, order["message_id"])
    result = await services.documents.issue(
        revocation_document(original, "sent by mistake", order["created_at"])
    )
    assert not result.duplicate
    assert (await stored(services, result.receipt["message_id"])).message_type == "document.revocation"


async def test_the_gateway_issues_each_event_once_under_an_id_only_it_can_compute(
    services: Services, tmp_path: Path
) -> None:
    order = blocking_order()
    await submit(services, "THADS-HN", order)
    first = await services.documents.issue(escalation(order["message_id"]))
    # Another watcher, another process: the same event is the same document.
    again = escalation(order["message_id"]) | {"message_id": str(uuid.uuid4())}
    second = await services.documents.issue(again)
    assert second.duplicate and second.receipt == first.receipt
    event_id = first.receipt["message_id"]
    key = f"{order['message_id']}|escalation"
    assert event_id == services.documents.issued_id("event.deadline", key)
    assert event_id != old_event_id(order["message_id"], "escalation")
    # Without the gateway's key, the same inputs give another id.
    other = Signer.from_file(tmp_path / "another-key.pem").sign_bytes(b"thads-gateway issued message ids v1")
    assert issued_id(other.encode(), "event.deadline", key) != event_id
    assert uuid.UUID(event_id).version == 8


async def test_a_client_pushing_under_an_id_the_gateway_issued_gets_409_not_the_events_receipt(
    services: Services,
) -> None:
    order = blocking_order()
    await submit(services, "THADS-HN", order)
    event = await services.documents.issue(escalation(order["message_id"]))
    taken = blocking_order(message_id=event.receipt["message_id"])
    problem = await refusal(services, "THADS-HN", copy.deepcopy(taken), 409)
    # The same answer as for a reused id of one's own: nothing about the other document.
    own = blocking_order(message_id=order["message_id"])
    assert problem.detail == (await refusal(services, "THADS-HN", own, 409)).detail
    assert "duplicate_push" not in await events_of(services, event.receipt["message_id"])


async def test_a_copy_is_made_even_when_its_old_id_was_claimed(services: Services) -> None:
    decision = example("decision.enforcement", "valid-decision-two-payments.json")
    decision |= {"message_id": str(uuid.uuid4()), "sender": "THADS-HN", "recipient": "TAND-HN"}
    decision["body"]["decision"] |= {"issuing_office": "THADS-HN", "number": "77/QĐ-CTHADS"}
    old_copy_id = str(uuid.uuid5(_OLD_COPY_NS, f"{decision['message_id']}|procuracy"))
    await submit(services, "THADS-HN", blocking_order(message_id=old_copy_id))
    await submit(services, "THADS-HN", decision)
    the_copy = services.documents.copy_id(decision["message_id"], "procuracy")
    assert the_copy != old_copy_id
    row = await stored(services, the_copy)
    assert (row.recipient, json.loads(row.payload)["copy_of"]) == ("VKS-HN", decision["message_id"])


async def test_an_original_whose_copy_id_is_taken_is_refused_with_409_not_a_5xx(services: Services) -> None:
    """Only with the gateway's key could a client take a copy's id; were it taken, the original is
    refused as a conflict, nothing of it stored."""
    decision = example("decision.enforcement", "valid-decision-two-payments.json")
    decision |= {"message_id": str(uuid.uuid4()), "sender": "THADS-HN", "recipient": "TAND-HN"}
    decision["body"]["decision"] |= {"issuing_office": "THADS-HN", "number": "78/QĐ-CTHADS"}
    taken = services.documents.copy_id(decision["message_id"], "procuracy")
    await submit(services, "THADS-HN", blocking_order(message_id=taken))
    await refusal(services, "THADS-HN", decision, 409)
    assert await stored(services, decision["message_id"]) is None
