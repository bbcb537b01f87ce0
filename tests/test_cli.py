"""The operator command line: clients add/list/revoke, keys and tokens the gateway accepts."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from gateway.cli import main
from gateway.security.clients import ClientStore
from gateway.security.tokens import TokenVerifier
from tests.conftest import ROOT


@pytest.fixture
def config_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    config = tmp_path / "config"
    config.mkdir()
    shutil.copy(ROOT / "config" / "gateway.toml", config / "gateway.toml")
    monkeypatch.setenv("GATEWAY_CONFIG_DIR", str(config))
    return config


def test_clients_lifecycle_and_token(
    config_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    keys = tmp_path / "keys"
    assert main(["keys", "--out", str(keys), "--name", "TAND-HCM"]) == 0
    assert (
        main(
            [
                "clients",
                "add",
                "--id",
                "TAND-HCM",
                "--public-key",
                str(keys / "TAND-HCM.pub"),
                "--grant",
                "judgments.push",
                "messages.read",
            ]
        )
        == 0
    )
    assert (
        main(
            [
                "clients",
                "add",
                "--id",
                "THADS-HCM",
                "--public-key",
                str(keys / "TAND-HCM.pub"),
                "--grant",
                "messages.read",
                "--deliver-to",
                "https://case.example/hook",
            ]
        )
        == 0
    )
    capsys.readouterr()
    assert main(["clients", "list"]) == 0
    listing = capsys.readouterr().out
    assert "TAND-HCM" in listing and "https://case.example/hook" in listing

    assert (
        main(["token", "--client", "TAND-HCM", "--private-key", str(keys / "TAND-HCM.key"), "--ttl", "60"])
        == 0
    )
    token = capsys.readouterr().out.strip()
    store = ClientStore(config_dir / "clients", recheck_seconds=0)
    verifier = TokenVerifier(store, audience="thads-gateway", leeway=5, max_lifetime=3600)
    assert verifier.verify(token).client.id == "TAND-HCM"

    assert main(["clients", "revoke", "--id", "TAND-HCM"]) == 0
    assert store.get("TAND-HCM") is not None and store.get("TAND-HCM").revoked  # type: ignore[union-attr]


def test_a_clients_role_is_stated_listed_and_kept(
    config_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    main(["keys", "--out", str(tmp_path), "--name", "k"])
    pub = str(tmp_path / "k.pub")
    args = ["clients", "add", "--id", "CCTHA-BD", "--public-key", pub, "--grant", "documents.send"]
    assert main([*args, "--role", "enforcement_office"]) == 0
    capsys.readouterr()
    assert main(["clients", "list"]) == 0
    assert "enforcement_office" in capsys.readouterr().out
    store = ClientStore(config_dir / "clients", recheck_seconds=0)
    assert store.get("CCTHA-BD").role == "enforcement_office"  # type: ignore[union-attr]
    with pytest.raises(SystemExit):  # argparse refuses a role it does not know
        main([*args, "--role", "landlord"])


@pytest.mark.parametrize(
    "args",
    [
        ["--id", "bad id", "--grant", "judgments.push"],
        ["--id", "TAND-HCM", "--grant", "no.such.service"],
        ["--id", "TAND-HCM", "--grant", "judgments.push", "--deliver-to", "ftp://x"],
    ],
)
def test_bad_client_definitions_are_refused(config_dir: Path, tmp_path: Path, args: list[str]) -> None:
    main(["keys", "--out", str(tmp_path), "--name", "k"])
    assert main(["clients", "add", "--public-key", str(tmp_path / "k.pub"), *args]) == 2
    assert not list((config_dir / "clients").glob("*.toml")) if (config_dir / "clients").exists() else True


def test_db_upgrade_creates_the_database(
    config_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # About SQLite itself: `db upgrade` creates the file (PostgreSQL's database must exist beforehand;
    # its migrations run in every other test of a PostgreSQL session).
    monkeypatch.setenv("GATEWAY_DATABASE_URL", f"sqlite+aiosqlite:///{tmp_path}/fresh.db")
    assert main(["db", "upgrade"]) == 0
    assert (tmp_path / "fresh.db").exists()


@pytest.mark.skipif(
    Path(sys.prefix).resolve() != (ROOT / ".venv").resolve(), reason="needs the project's own .venv"
)
def test_run_py_started_by_another_python_runs_in_the_venv(config_dir: Path, tmp_path: Path) -> None:
    """``python3 run.py …`` outside the .venv (the README's commands in a fresh clone after make venv):
    run.py runs itself again with .venv/bin/python, whose packages the other interpreter lacks."""
    other = os.path.realpath(sys.executable)  # the interpreter the .venv was made from: no aiohttp
    lacks = subprocess.run([other, "-c", "import aiohttp"], capture_output=True, check=False)
    assert lacks.returncode != 0
    done = subprocess.run(
        [other, str(ROOT / "run.py"), "keys", "--out", str(tmp_path / "keys"), "--name", "TAND-HN"],
        capture_output=True,
        text=True,
        check=False,
        env={**os.environ, "GATEWAY_CONFIG_DIR": str(config_dir)},
    )
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "keys" / "TAND-HN.key").exists()
