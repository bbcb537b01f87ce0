"""``BENCHMARKS.md``: every recorded section (``tests.bench.results.load_all()``) with the machine it was
measured on. Written at the end of ``make bench``; ``python -m tests.bench.report`` rewrites it from the
figures already on disk."""

from __future__ import annotations

import os
import platform
import shutil
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from tests.bench.results import RESULTS, ROOT, load_all

REPORT = ROOT / "BENCHMARKS.md"
#: The hand-written reading of the figures (profiles, what would close each gap), kept with the report.
ANALYSIS = Path(__file__).with_name("analysis.md")


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _memory() -> str:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return f"{int(line.split()[1]) / 1024 / 1024:.1f} GiB"
    except OSError:
        pass
    return "unknown"


def _rabbitmq_version() -> str:
    ctl = shutil.which("rabbitmqctl")
    if ctl is None:
        return "unknown (rabbitmqctl not found)"
    try:
        out = subprocess.run([ctl, "version"], capture_output=True, text=True, timeout=20, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return "unknown"
    return out.stdout.strip() or "unknown"


def _sqlite_version() -> str:
    import sqlite3

    return sqlite3.sqlite_version


def machine() -> list[tuple[str, str]]:
    return [
        ("Date", datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")),
        ("CPU", f"{os.cpu_count()} cores, {_cpu_model()}"),
        ("Memory", _memory()),
        ("Kernel", f"{platform.system()} {platform.release()}"),
        ("Python", sys.version.split()[0]),
        ("RabbitMQ", _rabbitmq_version()),
        ("SQLite", _sqlite_version()),
    ]


def _cell(value: object) -> str:
    return str(value).replace("|", "\\|").replace("\n", " ")


def _ratio(value: float | None) -> str:
    if value is None:
        return ""
    return f"{value:.3f}×" if value < 0.1 else f"{value:.2f}×"


def _met(value: bool | None) -> str:
    return "" if value is None else ("yes" if value else "**no**")


def section_markdown(section: dict[str, Any]) -> list[str]:
    measured = f" (measured {section['recorded_at']})" if section.get("recorded_at") else ""
    lines = [f"## {section['title']}", "", f"`{section['command']}`{measured}", ""]
    lines += ["| | Figure | Reference | Ratio | Target | Met |", "|---|---|---|---|---|---|"]
    for row in section["rows"]:
        lines.append(
            "| "
            + " | ".join(
                [
                    _cell(row["name"]),
                    _cell(row["figure"]),
                    _cell(row.get("reference", "")),
                    _ratio(row.get("ratio")),
                    _cell(row.get("target", "")),
                    _met(row.get("met")),
                ]
            )
            + " |"
        )
    notes = section.get("notes") or []
    if notes:
        lines.append("")
        lines += [f"- {_cell(note)}" for note in notes]
    lines.append("")
    return lines


def render(sections: list[dict[str, Any]]) -> str:
    lines = [
        "# Benchmarks",
        "",
        "Written by `make bench` from the figures of its last run (the raw numbers are in "
        f"`{RESULTS.relative_to(ROOT) if RESULTS.is_relative_to(ROOT) else RESULTS}/*.json`). "
        "Every figure stands beside the reference it is compared with, measured in the same run on the same "
        "machine: absolute numbers move with the machine, ratios much less. How to run and read them: "
        "[docs/benchmarks.md](docs/benchmarks.md).",
        "",
        "## Machine",
        "",
        "| | |",
        "|---|---|",
    ]
    lines += [f"| {name} | {_cell(value)} |" for name, value in machine()]
    lines.append("")
    if not sections:
        lines += ["No section was recorded.", ""]
    for section in sections:
        lines += section_markdown(section)
    if ANALYSIS.exists():
        lines += [ANALYSIS.read_text("utf-8").rstrip(), ""]
    return "\n".join(lines)


def write_report(path: Path = REPORT) -> Path:
    path.write_text(render(load_all()), "utf-8")
    return path


if __name__ == "__main__":
    print(write_report())
