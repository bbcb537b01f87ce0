"""Driving HTTP load with wrk: a new document per request (``new_document.lua``), figures read back from
the JSON the script's ``done()`` writes."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

LUA = Path(__file__).with_name("new_document.lua")
THREADS = 2
CONNECTIONS = 64


def wrk_path() -> str:
    found = shutil.which("wrk")
    if found is None:
        pytest.skip("wrk is missing: run `bash scripts/ensure-bench-tools.sh` as root (make bench does)")
    return found


@dataclass
class WrkResult:
    requests: int
    duration_s: float
    statuses: dict[int, int]
    errors: dict[str, int]
    latency_ms: dict[str, float]
    accepted: list[str] = field(default_factory=list)
    connections: int = CONNECTIONS

    @property
    def ok(self) -> int:
        """2xx answers."""
        return sum(n for status, n in self.statuses.items() if 200 <= status < 300)

    @property
    def non_2xx(self) -> int:
        return sum(n for status, n in self.statuses.items() if not 200 <= status < 300)

    @property
    def socket_errors(self) -> int:
        return sum(n for name, n in self.errors.items() if name != "status")

    @property
    def rate(self) -> float:
        """All answered requests per second (what wrk calls Requests/sec)."""
        return self.requests / self.duration_s

    @property
    def ok_rate(self) -> float:
        return self.ok / self.duration_s

    def values(self) -> dict[str, Any]:
        return {
            "requests": self.requests,
            "duration_s": round(self.duration_s, 3),
            "rate_per_s": round(self.rate, 2),
            "ok_per_s": round(self.ok_rate, 2),
            "statuses": {str(k): v for k, v in sorted(self.statuses.items())},
            "socket_errors": {k: v for k, v in self.errors.items() if k != "status"},
            "latency_ms": self.latency_ms,
            "connections": self.connections,
        }

    def describe_failures(self) -> str:
        """Non-2xx answers by status and socket errors, or '' when there were none."""
        parts = [f"{n}× {s}" for s, n in sorted(self.statuses.items()) if not 200 <= s < 300]
        parts += [f"{n} {name} errors" for name, n in self.errors.items() if name != "status" and n]
        return ", ".join(parts)


async def run_wrk(
    url: str,
    token: str,
    template: Path,
    seconds: float,
    connections: int = CONNECTIONS,
    threads: int = THREADS,
    timeout_s: int = 60,
) -> WrkResult:
    """``wrk -t threads -c connections -d seconds`` POSTing new documents made from ``template``."""
    out = template.with_suffix(f".wrk-{uuid.uuid4().hex[:8]}.json")
    env = {
        **os.environ,
        "WRK_TEMPLATE": str(template),
        "WRK_TOKEN": token,
        "WRK_NONCE": uuid.uuid4().hex[:8],
        "WRK_OUT": str(out),
    }
    proc = await asyncio.create_subprocess_exec(
        wrk_path(),
        "-t",
        str(min(threads, connections)),
        "-c",
        str(connections),
        "-d",
        f"{seconds:g}s",
        "--timeout",
        f"{timeout_s}s",
        "-s",
        str(LUA),
        url,
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    printed, _ = await proc.communicate()
    assert proc.returncode == 0 and out.exists(), printed.decode(errors="replace")
    raw = json.loads(out.read_text("utf-8"))
    out.unlink()
    errors = dict(raw["errors"])
    return WrkResult(
        requests=int(raw["requests"]),
        duration_s=raw["duration_us"] / 1e6,
        statuses={int(k): int(v) for k, v in raw["statuses"].items()},
        errors=errors,
        latency_ms={k: round(v / 1000, 2) for k, v in raw["latency_us"].items()},
        accepted=list(raw["accepted"]),
        connections=connections,
    )
