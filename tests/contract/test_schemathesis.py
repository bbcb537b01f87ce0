"""The OpenAPI document says exactly what the API does: schemathesis, with every one of its checks,
over ``/openapi.json`` of the real ``run.py api``, authenticated as each kind of client.

Every phase runs (the document's examples, coverage of each keyword, fuzzing, stateful sequences)
with a fixed seed, so a run is repeatable; the cases of all client kinds together must be at least
:data:`MIN_CASES`, and no case may meet a 5xx or fail a check.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from tests.conftest import ROOT
from tests.contract.conftest import CLIENT_KINDS, RunningApi

pytestmark = pytest.mark.contract

CONFIG = Path(__file__).with_name("schemathesis.toml")
SEED = 20260611
#: Cases per operation and phase, per client kind.
MAX_EXAMPLES = 10
MIN_CASES = 1000
SCHEMATHESIS = Path(sys.executable).with_name("schemathesis")


def run_as(api: RunningApi, kind: str) -> tuple[int, str, dict[str, object]]:
    """One schemathesis run as ``kind``: its exit code, its output and its JSON report."""
    report = api.home / f"schemathesis-{kind}.json"
    command = [
        str(SCHEMATHESIS),
        "--config-file",
        str(CONFIG),
        "--no-color",
        "run",
        f"{api.url}/openapi.json",
        "--checks",
        "all",
        "--header",
        f"Authorization: Bearer {api.tokens[kind]}",
        "--max-examples",
        str(MAX_EXAMPLES),
        "--seed",
        str(SEED),
        "--workers",
        "1",
        "--report",
        "json",
        "--report-json-path",
        str(report),
        "--output-sanitize",
        "true",
    ]
    done = subprocess.run(
        command,
        cwd=api.home,  # its cache directory goes there, not into the source tree
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        capture_output=True,
        text=True,
        timeout=500,
    )
    summary = json.loads(report.read_text("utf-8")) if report.exists() else {}
    return done.returncode, done.stdout + done.stderr, summary


@pytest.mark.timeout(600)
def test_the_document_says_what_the_api_does(running_api: RunningApi) -> None:
    with ThreadPoolExecutor(len(CLIENT_KINDS)) as pool:
        runs = dict(
            zip(CLIENT_KINDS, pool.map(lambda kind: run_as(running_api, kind), CLIENT_KINDS), strict=True)
        )
    total = 0
    failed: list[str] = []
    for kind, (code, output, summary) in runs.items():
        cases = summary.get("test_cases", {})
        generated = int(cases.get("generated", 0)) if isinstance(cases, dict) else 0
        total += generated
        print(f"schemathesis as {kind}: {generated} cases, exit code {code}")
        if code != 0:
            failed.append(f"--- as {kind} (exit code {code}) ---\n{output[-20000:]}")
    print(f"schemathesis: {total} cases in all")
    assert not failed, "\n".join(failed)
    assert total >= MIN_CASES
