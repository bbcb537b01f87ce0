"""Acceptance: 1,000 concurrent pushes (5% exact duplicates, 5% invalid) through the real api and
worker processes: every valid judgment reaches the case system's queue once; every invalid one gets
a 422 listing its errors; every duplicate gets the original receipt."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from tests.conftest import World, make_world
from tests.support.gateway_procs import CaseSystemQueue, GatewayProcesses, delete_topology
from tests.support.load import plan, push_all

pytestmark = pytest.mark.rabbitmq


@pytest.fixture
async def gateway(tmp_path: Path, fresh_database_url: str) -> AsyncIterator[GatewayProcesses]:
    world = make_world(tmp_path, fresh_database_url)
    procs = GatewayProcesses(world, tmp_path / "logs")
    procs.start("api")
    procs.start("worker")
    await procs.wait_api()
    yield procs
    procs.stop_all()
    await delete_topology(world)


def check_answers(outcome: object, pushes: list[tuple[str, dict[str, object]]]) -> None:
    from tests.support.load import PushOutcome

    assert isinstance(outcome, PushOutcome)
    assert outcome.other == []
    assert [st for st in outcome.statuses if st[2] == 503] == []  # never "storage unavailable"
    originals = {d["message_id"] for k, d in pushes if k == "original"}
    missing = originals - set(outcome.unique)
    assert not missing, [st for st in outcome.statuses if st[1] in missing]
    for message_id, _status, receipt in outcome.duplicate_answers:
        assert receipt == outcome.unique[message_id]
    assert len(outcome.duplicate_answers) == sum(1 for k, _ in pushes if k == "duplicate")
    assert len(outcome.invalid_answers) == sum(1 for k, _ in pushes if k == "invalid")
    for status, problem in outcome.invalid_answers:
        assert status == 422
        assert problem["errors"] and all(e["path"].startswith("$") for e in problem["errors"])


async def test_thousand_concurrent_pushes_arrive_once(gateway: GatewayProcesses) -> None:
    world: World = gateway.world
    case_system = CaseSystemQueue(world.case_queue)
    await case_system.start()
    try:
        pushes = plan(1000)
        outcome = await push_all(gateway.url, world, pushes)
        check_answers(outcome, pushes)
        await case_system.wait_for(set(outcome.unique))
        assert set(case_system.seen) == set(outcome.unique)
        assert max(case_system.seen.values()) == 1  # no crash in this run, so not even wire duplicates
    finally:
        await case_system.close()
