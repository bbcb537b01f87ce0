"""Reference data read from the config directory: legal bases, the working-day calendar, deadlines and
the routing tables of copies."""

from __future__ import annotations

import tomllib
from datetime import timedelta
from pathlib import Path

from gateway.domain.calendar import WorkingCalendar, from_toml_text, parse_deadline_spec
from gateway.domain.identifiers import AGENCY_CODE


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


def load_deadlines(config_dir: Path) -> dict[str, str]:
    """Deadline spec per document type, and ``urgent`` (``documents.toml``); checked at load time."""
    path = config_dir / "documents.toml"
    if not path.exists():
        return {}
    data = tomllib.loads(path.read_text("utf-8"))
    deadlines = {str(k): str(v) for k, v in data.get("deadlines", {}).items()}
    for name, spec in deadlines.items():
        try:
            parse_deadline_spec(spec)
        except ValueError as exc:
            raise ValueError(f"documents.toml [deadlines] {name}: {exc}") from exc
    return deadlines


def load_reminder_lead(config_dir: Path) -> timedelta:
    """How long before a document's deadline its sender is reminded (``documents.toml``)."""
    path = config_dir / "documents.toml"
    data = tomllib.loads(path.read_text("utf-8")) if path.exists() else {}
    spec = str(data.get("reminders", {}).get("reminder_before", "4h"))
    duration = parse_deadline_spec(spec).duration
    if duration is None:
        raise ValueError("documents.toml [reminders] reminder_before must be a duration (s, m, h)")
    return duration


def load_routing(config_dir: Path) -> dict[str, dict[str, str]]:
    """Routing tables for the copies the gateway makes (``routing.toml``): table -> sender -> recipient,
    agency codes checked at load time."""
    path = config_dir / "routing.toml"
    if not path.exists():
        return {}
    data = tomllib.loads(path.read_text("utf-8"))
    tables: dict[str, dict[str, str]] = {}
    for table, rows in data.items():
        if not isinstance(rows, dict):
            raise ValueError(f"routing.toml: [{table}] must be a table of sender = recipient")
        for sender, recipient in rows.items():
            if not (
                isinstance(recipient, str)
                and AGENCY_CODE.fullmatch(recipient)
                and AGENCY_CODE.fullmatch(sender)
            ):
                raise ValueError(
                    f"routing.toml [{table}] {sender!r} = {recipient!r}: both must be agency codes"
                )
        tables[table] = dict(rows)
    return tables
