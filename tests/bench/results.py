"""Where each benchmark leaves its figures, so one report (``BENCHMARKS.md``) can be written from a run.

A benchmark calls :func:`record` once per section; the bench session's end assembles every section found
under ``var/bench/results`` into ``BENCHMARKS.md``. A figure is always written beside the reference it is
compared with, measured in the same run: the machine is shared, only ratios hold.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
RESULTS = Path(os.environ.get("GATEWAY_BENCH_RESULTS", ROOT / "var" / "bench" / "results"))


@dataclass
class Row:
    """One measured figure. ``ratio`` is figure / reference (higher is better unless the target says)."""

    name: str
    figure: str
    reference: str = ""
    ratio: float | None = None
    target: str = ""
    met: bool | None = None
    values: dict[str, Any] = field(default_factory=dict)  # raw numbers, for the next run to compare


@dataclass
class Section:
    key: str  # file name and sort key, e.g. "10-references", "20-intake"
    title: str
    command: str  # the command that reproduces this section alone
    rows: list[Row]
    notes: list[str] = field(default_factory=list)
    recorded_at: str = ""  # ISO 8601 UTC; set by record() when empty


def record(section: Section) -> Path:
    if not section.recorded_at:
        section.recorded_at = datetime.now(UTC).isoformat(timespec="seconds")
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / f"{section.key}.json"
    path.write_text(json.dumps(asdict(section), indent=2, ensure_ascii=False), "utf-8")
    return path


def load_all() -> list[dict[str, Any]]:
    if not RESULTS.is_dir():
        return []
    return [json.loads(p.read_text("utf-8")) for p in sorted(RESULTS.glob("*.json"))]
