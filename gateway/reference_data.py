"""Reference data read from the config directory: legal bases and the working-day calendar."""

from __future__ import annotations

import tomllib
from pathlib import Path

from gateway.domain.calendar import WorkingCalendar, from_toml_text


def load_legal_bases(config_dir: Path) -> dict[str, str]:
    """The code list of legal bases an asset lookup may cite (``legal_bases.toml``)."""
    path = config_dir / "legal_bases.toml"
    if not path.exists():
        return {}
    data = tomllib.loads(path.read_text("utf-8"))
    return {entry["code"]: entry.get("text", "") for entry in data.get("basis", [])}


def load_calendar(config_dir: Path) -> WorkingCalendar:
    """Public holidays and compensatory working days (``holidays.toml``)."""
    path = config_dir / "holidays.toml"
    return from_toml_text(path.read_text("utf-8") if path.exists() else "")
