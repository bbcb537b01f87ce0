"""A court event names its judgment by court, number and date, and optionally by the judgment's
``message_id``, which must then be that judgment's: an unknown ``message_id`` beside a known court,
number and date is refused at ``$.body.judgment.message_id``, saying the other fields describe a
judgment the id does not name (docs/documents.md, "References") (SQLite and PostgreSQL)."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from gateway.web.context import Services
from tests.conftest import example, fresh_judgment
from tests.support.documents_world import documents_world, refusal, stored, submit


@pytest.fixture
async def services(tmp_path: Path, database_url: str) -> AsyncIterator[Services]:
    async with documents_world(tmp_path, database_url) as services:
        yield services


async def delivered_judgment(services: Services) -> dict[str, Any]:
    judgment = fresh_judgment() | {"recipient": "THADS-HN"}
    await submit(services, "TAND-HN", judgment)
    return judgment


def event_on(judgment: dict[str, Any], **reference: str) -> dict[str, Any]:
    event = example("court.event", "valid-cassation-protest-by-natural-key.json")
    event["message_id"] = str(uuid.uuid4())
    event["created_at"] = judgment["created_at"]
    event["body"]["judgment"] = {
        "court_code": "TAND-HN",
        "number": judgment["body"]["judgment"]["number"],
        "date": judgment["body"]["judgment"]["date"],
        **reference,
    }
    event["body"]["decision"]["date"] = judgment["body"]["judgment"]["date"]
    return event


async def test_an_unknown_message_id_beside_a_known_judgment_is_refused_at_the_message_id(
    services: Services,
) -> None:
    judgment = await delivered_judgment(services)
    event = event_on(judgment, message_id=str(uuid.uuid4()))
    problem = await refusal(services, "TAND-HN", event, 422)
    [violation] = problem.violations
    assert violation.path == "$.body.judgment.message_id"
    assert "although the other fields describe one" in violation.message
    assert await stored(services, event["message_id"]) is None


async def test_the_judgments_own_message_id_or_none_is_accepted(services: Services) -> None:
    judgment = await delivered_judgment(services)
    assert not (await submit(services, "TAND-HN", event_on(judgment))).duplicate
    named = event_on(judgment, message_id=judgment["message_id"])
    named["body"]["decision"]["number"] = "16/2026/KN-GĐT"
    assert not (await submit(services, "TAND-HN", named)).duplicate


async def test_nothing_known_at_all_is_refused_at_the_judgment(services: Services) -> None:
    judgment = await delivered_judgment(services)
    event = event_on(judgment, message_id=str(uuid.uuid4()))
    event["body"]["judgment"]["number"] = "999/2026/DS-ST"
    problem = await refusal(services, "TAND-HN", event, 422)
    assert [(v.path, v.message) for v in problem.violations] == [
        ("$.body.judgment", "names no judgment.delivery known to the gateway")
    ]
