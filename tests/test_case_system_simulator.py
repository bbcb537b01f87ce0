"""The simulated case system (``run.py simulate``, ``make demo``) answers the procuracy's papers the way an
enforcement office must: with a ``procuracy.answer`` in reply, which the procuracy confirms — not with a
confirmation, which the gateway refuses for a paper that awaits an answer."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from gateway.security.keys import private_pem
from gateway.simulators.case_system import CaseSystemSimulator
from tests.support.flows_world import FlowsWorld, events, flows_world
from tests.support.gateway_procs import BROKER
from tests.test_procuracy_flow import decision

pytestmark = pytest.mark.rabbitmq


@pytest.fixture
async def flows(tmp_path: Path) -> AsyncIterator[FlowsWorld]:
    async with flows_world(tmp_path, recommend_every=1) as world:
        key = tmp_path / "THADS-HN.key"
        key.write_bytes(private_pem(world.world.case_system.key))
        settings = world.world.settings
        office = CaseSystemSimulator(
            settings.api.public_url, "THADS-HN", world.world.case_queue, key, settings.auth.audience, BROKER
        )
        task = asyncio.create_task(office.run())
        try:
            yield world
        finally:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)


async def test_a_recommendation_is_answered_and_the_answer_confirmed(flows: FlowsWorld) -> None:
    await flows.send(decision())
    deadline = asyncio.get_running_loop().time() + 30
    while not flows.procuracy.recommendations:
        assert asyncio.get_running_loop().time() < deadline, "no recommendation raised"
        await asyncio.sleep(0.1)
    (recommendation,) = flows.procuracy.recommendations
    answer_id = str(uuid.uuid5(uuid.NAMESPACE_URL, f"procuracy.answer:{recommendation}"))
    await flows.wait_for(answer_id, "confirmed")  # by the procuracy, once it received it
    # The recommendation was answered before anything confirmed it (the path is fast enough that the
    # moment in between is too short to poll for: the timeline keeps the order).
    timeline = events(await flows.view(recommendation, client="VKS-HN"))
    assert "answered" in timeline
    assert "confirmed" not in timeline or timeline.index("answered") < timeline.index("confirmed")
    (answer,) = flows.procuracy.answers
    assert answer["message_id"] == answer_id and answer["in_reply_to"] == recommendation
    assert answer["body"]["outcome"] == "accepted"
