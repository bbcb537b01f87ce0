"""Log lines are JSON and keep what the code attaches to them: the incident id quoted to a caller in a
problem answer is in the line an operator searches for."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator

import pytest

from gateway import logs


@pytest.fixture
def restored_logging() -> Iterator[None]:
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)


def test_a_log_line_carries_its_incident_id(
    restored_logging: None, capsys: pytest.CaptureFixture[str]
) -> None:
    logs.configure("INFO")
    logging.getLogger("gateway.web.middleware").error(
        "unhandled error", extra={"incident": "6f1c2a52-3f0e-4a4b-9d7e-0c6a4c1f7e21"}
    )
    [line] = [json.loads(text) for text in capsys.readouterr().err.splitlines() if text.startswith("{")]
    assert line["event"] == "unhandled error"
    assert line["incident"] == "6f1c2a52-3f0e-4a4b-9d7e-0c6a4c1f7e21"
    assert line["level"] == "error"
