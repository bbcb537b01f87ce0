"""The demo's banner shows the worker's metrics URL only when the worker listens there: a real
``run.py worker`` whose port is taken says so in its log, and the banner then points at the log instead
of printing a URL where nothing (or something else) answers."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from gateway.demo import console_banner, worker_metrics_url
from gateway.settings import Settings
from tests.conftest import ROOT
from tests.support.gateway_procs import free_port


def _settings(home: Path, metrics_port: int) -> tuple[Settings, dict[str, str]]:
    config = home / "config"
    config.mkdir(parents=True, exist_ok=True)
    shutil.copy(ROOT / "config" / "gateway.toml", config / "gateway.toml")
    env = {k: v for k, v in os.environ.items() if not k.startswith("GATEWAY_")}
    env |= {
        "GATEWAY_CONFIG_DIR": str(config),
        "GATEWAY_WORKER__METRICS_PORT": str(metrics_port),
        # Only the metrics listener matters here: a broker nobody answers on keeps the worker waiting.
        "GATEWAY_BROKER_URL": f"amqp://guest:guest@127.0.0.1:{free_port()}/",
    }
    return Settings(config_dir=config, worker={"metrics_port": metrics_port}), env


@contextmanager
def worker(home: Path, env: dict[str, str]) -> Iterator[tuple[Path, subprocess.Popen[bytes]]]:
    log = home / "worker.log"
    with log.open("ab") as out:
        proc = subprocess.Popen(
            [sys.executable, str(ROOT / "run.py"), "worker"], cwd=home, env=env, stdout=out, stderr=out
        )
    try:
        yield log, proc
    finally:
        proc.kill()  # it waits for a broker that never comes: nothing to finish
        proc.wait()


def test_a_worker_that_could_not_bind_its_metrics_port_gets_no_url_in_the_banner(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        settings, env = _settings(tmp_path, port)
        with worker(tmp_path, env) as (log, proc):
            found = worker_metrics_url(log, alive=lambda: proc.poll() is None, timeout=60)
            assert proc.poll() is None  # the worker runs on without its metrics
    assert found is None, log.read_text()
    text = console_banner("http://127.0.0.1:8080", settings, "pw", found, log)
    assert f":{port}/metrics" not in text
    assert f"no metrics listener (could not listen on 127.0.0.1:{port}? see {log})" in text


def test_a_listening_worker_gets_its_url_in_the_banner(tmp_path: Path) -> None:
    port = free_port()
    settings, env = _settings(tmp_path, port)
    (tmp_path / "worker.log").write_text('{"event": "worker metrics on http://127.0.0.1:1/metrics"}\n')
    offset = (tmp_path / "worker.log").stat().st_size  # an earlier run's line is not this run's
    with worker(tmp_path, env) as (log, proc):
        found = worker_metrics_url(log, offset, alive=lambda: proc.poll() is None, timeout=60)
        assert found == f"http://127.0.0.1:{port}/metrics", log.read_text()
        with urllib.request.urlopen(found, timeout=10) as resp:
            assert resp.status == 200
    text = console_banner("http://127.0.0.1:8080", settings, "pw", found, log)
    assert f"http://127.0.0.1:{port}/metrics   http://127.0.0.1:{port}/readyz" in text
