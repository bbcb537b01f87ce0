"""The bench session: one bare reference server for every section, and ``BENCHMARKS.md`` written from
every recorded section when the session ends."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.bench.support import BareServer, bare_server
from tests.conftest import make_world


@pytest.fixture(scope="session")
def bare(tmp_path_factory: pytest.TempPathFactory) -> Iterator[BareServer]:
    """The reference handler (JWT + JSON + schema, nothing else) in its own process."""
    home: Path = tmp_path_factory.mktemp("bare")
    world = make_world(home, f"sqlite+aiosqlite:///{home}/unused.db")
    with bare_server(world, home / "logs") as server:
        yield server


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """After a session that ran benchmarks, (re)write BENCHMARKS.md from every recorded section."""
    ran_bench = any(item.get_closest_marker("bench") for item in session.items)
    if not ran_bench or session.config.option.collectonly:
        return
    from tests.bench.report import write_report

    path = write_report()
    print(f"\nBENCH report written: {path}")
