"""The procuracy end to end: the enforcement office sends an enforcement decision to the court; the
gateway copies it to the procuracy of the same level (config/routing.toml); the worker delivers both
(webhooks of the simulated court and procuracy), each confirms its own; the procuracy raises a
recommendation, the office answers it, and the procuracy's confirmation of the answer closes both."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from gateway.security.signing import Signer
from gateway.services.document_ids import copy_id, issued_id_key
from tests.conftest import example
from tests.support.flows_world import FlowsWorld, events, flows_world
from tests.support.order_flow import received

pytestmark = pytest.mark.rabbitmq


@pytest.fixture
async def flows(tmp_path: Path) -> AsyncIterator[FlowsWorld]:
    async with flows_world(tmp_path, recommend_every=1) as world:
        yield world


def copy_of(flows: FlowsWorld, original_id: str) -> str:
    """The id the gateway gives the procuracy's copy of ``original_id`` (keyed with its signing key)."""
    settings = flows.world.settings
    signer = Signer.from_file(settings.path(settings.signing.private_key_file), create=False)
    return copy_id(issued_id_key(signer), original_id, "procuracy")


def decision() -> dict[str, Any]:
    doc = example("decision.enforcement", "valid-decision-two-payments.json")
    doc["message_id"] = str(uuid.uuid4())
    doc["body"]["decision"]["number"] = f"{uuid.uuid4().int % 99999}/QĐ-CTHADS"
    return doc


def answer(paper: dict[str, Any], outcome: str = "accepted") -> dict[str, Any]:
    doc = example("procuracy.answer", "valid-recommendation-accepted.json")
    doc |= {
        "message_id": str(uuid.uuid4()),
        "in_reply_to": paper["message_id"],
        "case_ref": paper["case_ref"],
    }
    doc["body"]["number"] = f"{uuid.uuid4().int % 99999}/CV-CTHADS"
    doc["body"]["outcome"] = outcome
    return doc


async def test_a_decision_reaches_court_and_procuracy_once_and_a_recommendation_is_answered(
    flows: FlowsWorld,
) -> None:
    doc = decision()
    await flows.send(doc)
    await flows.send(doc, expect=200)  # a resend: the original receipt, no second copy

    the_copy = copy_of(flows, doc["message_id"])
    original = await flows.wait_for(doc["message_id"], "confirmed")
    assert events(original)[:2] == ["accepted", "copied"]
    assert {"delivered", "confirmed", "duplicate_push"} <= set(events(original))
    copy_view = await flows.wait_for(the_copy, "confirmed", client="VKS-HN")
    assert copy_view["recipient"] == "VKS-HN" and copy_view["receipt"]["message_id"] == the_copy
    assert {"accepted", "delivered", "confirmed"} <= set(events(copy_view))

    # The procuracy got the copy, once, naming the original; the court got the original.
    [copied] = flows.procuracy.copies
    assert copied["message_id"] == the_copy and copied["copy_of"] == doc["message_id"]
    assert copied["body"] == doc["body"] and copied["recipient"] == "VKS-HN"
    assert flows.procuracy.inbox.seen == {the_copy: 1}
    assert flows.court.inbox.seen == {doc["message_id"]: 1}

    # The procuracy's recommendation reaches the office on its queue; the office answers it.
    [recommendation] = await received(flows.world.case_queue, expect=1)
    assert recommendation["message_type"] == "procuracy.recommendation"
    assert recommendation["sender"] == "VKS-HN" and recommendation["case_ref"] == doc["case_ref"]
    assert recommendation["body"]["decision"]["number"] == doc["body"]["decision"]["number"]
    paper = await flows.wait_for(recommendation["message_id"], "delivered")
    assert paper["due_at"]  # the answer is due (config/documents.toml, or 15 working days)

    reply = answer(recommendation)
    await flows.send(reply)
    closed = await flows.wait_for(recommendation["message_id"], "confirmed")
    assert {"accepted", "delivered", "answered", "confirmed"} <= set(events(closed))
    assert [r["message_id"] for r in closed["replies"]] == [reply["message_id"]]
    done = await flows.wait_for(reply["message_id"], "confirmed")
    assert {"accepted", "delivered", "confirmed"} <= set(events(done))
    assert [a["message_id"] for a in flows.procuracy.answers] == [reply["message_id"]]


async def test_only_the_office_that_received_a_paper_answers_it_and_only_to_the_procuracy(
    flows: FlowsWorld,
) -> None:
    paper = example("procuracy.file_request", "valid-request-for-the-case-file.json")
    paper["message_id"] = str(uuid.uuid4())
    paper["body"]["number"] = f"{uuid.uuid4().int % 99999}/YC-VKS"
    await flows.send(paper, client="VKS-HN")
    [request] = await received(flows.world.case_queue, expect=1)
    assert request["message_id"] == paper["message_id"]

    wrong = answer(paper, "files_sent") | {"recipient": "TAND-HN"}
    resp = await flows.api.post("/v1/documents", json=wrong, headers=flows.headers())
    problem = await resp.json()
    assert resp.status == 422
    assert {"path": "$.recipient", "message": "must be VKS-HN, who sent the original", "rule": "answer"} in (
        problem["errors"]
    )
    await flows.send(answer(paper, "files_sent"))
    await flows.wait_for(paper["message_id"], "confirmed")
