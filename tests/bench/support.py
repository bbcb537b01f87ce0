"""What the benchmarks share: the gateway's processes with benchmark settings, the bare reference
server, a case-system queue that times each arrival, and memory readings of a process."""

from __future__ import annotations

import asyncio
import contextlib
import json
import subprocess
import sys
import time
import urllib.request
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import aio_pika
from aio_pika.abc import AbstractIncomingMessage

from tests.conftest import ROOT, World
from tests.support.gateway_procs import CaseSystemQueue, GatewayProcesses, delete_topology, free_port

#: Settings every benchmark gives the gateway: one client sends everything here, so its request-rate
#: limit (default 200/s per client, a protection, not a capacity) must not be what is measured.
# wrk replays one token (its Lua cannot sign a token per request), so the wrk-driven sections run with
# single-use tokens off, a development convenience; what single use costs intake is measured on its own
# (test_bench_signin_flood.py).
BENCH_ENV = {"GATEWAY_API__RATE_LIMIT": "1000000/second", "GATEWAY_AUTH__SINGLE_USE_TOKENS": "false"}
BARE_SERVER = Path(__file__).with_name("bare_server.py")


@dataclass
class BenchProcesses(GatewayProcesses):
    """``run.py api`` / ``run.py worker`` with :data:`BENCH_ENV` and ``extra_env`` on top."""

    extra_env: dict[str, str] = field(default_factory=dict)

    def env(self) -> dict[str, str]:
        return {**super().env(), **BENCH_ENV, **self.extra_env}

    def pid(self, role: str) -> int:
        return self.procs[role].pid


class TimedQueue(CaseSystemQueue):
    """The case system's queue, remembering when each document first arrived. ``key``: what identifies a
    document (default its message_id; for a report, the order it answers)."""

    def __init__(self, queue: str, key: Callable[[AbstractIncomingMessage], str] | None = None) -> None:
        super().__init__(queue)
        self.key = key or (lambda m: m.message_id or "")
        self.first_seen: dict[str, float] = {}

    async def _on_message(self, message: AbstractIncomingMessage) -> None:
        k = self.key(message)
        self.seen[k] += 1
        self.first_seen.setdefault(k, time.perf_counter())
        await message.ack()

    async def wait_all(self, ids: set[str], timeout: float) -> float:
        """Wait until every id in ``ids`` arrived; the perf_counter time the last of them did."""
        deadline = time.perf_counter() + timeout
        while not ids <= self.first_seen.keys():
            missing = len(ids - self.first_seen.keys())
            assert time.perf_counter() < deadline, f"{missing} of {len(ids)} accepted documents never arrived"
            await asyncio.sleep(0.05)
        return max((self.first_seen[i] for i in ids), default=time.perf_counter())

    def duplicates(self) -> int:
        return sum(n - 1 for n in self.seen.values() if n > 1)


async def delete_topology_patiently(
    world: World, delete: Callable[[], Awaitable[None]] | None = None, timeout: float = 90
) -> None:
    """Delete what the gateway declared, waiting for a broker that is restarting (it is shared: another
    run may be restarting it) rather than leaving queues behind at the first refused connection."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            await (delete() if delete is not None else delete_topology(world))
            return
        except (aio_pika.exceptions.AMQPError, OSError):
            if time.monotonic() > deadline:
                raise
            await asyncio.sleep(2)


async def delete_topology_or_error(
    world: World, delete: Callable[[], Awaitable[None]] | None = None
) -> Exception | None:
    """:func:`delete_topology_patiently`, its failure returned instead of raised: a benchmark records
    what it measured first, then fails on the queues it could not delete."""
    try:
        await delete_topology_patiently(world, delete)
    except (aio_pika.exceptions.AMQPError, OSError) as exc:
        return exc
    return None


def in_reply_to(message: AbstractIncomingMessage) -> str:
    return str(json.loads(message.body).get("in_reply_to") or "")


@dataclass
class BareServer:
    url: str
    token: str
    proc: subprocess.Popen[bytes]


@contextmanager
def bare_server(world: World, logs: Path) -> Iterator[BareServer]:
    """The reference handler (``bare_server.py``) in its own process, the court's token for it."""
    port = free_port()
    logs.mkdir(parents=True, exist_ok=True)
    with (logs / "bare.log").open("ab") as out:
        proc = subprocess.Popen(
            [
                sys.executable,
                str(BARE_SERVER),
                "--clients-dir",
                str(world.settings.clients_dir),
                "--port",
                str(port),
                "--audience",
                world.settings.auth.audience,
            ],
            cwd=ROOT,
            stdout=out,
            stderr=out,
        )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            assert proc.poll() is None, (logs / "bare.log").read_text()
            try:
                with urllib.request.urlopen(url + "/healthz", timeout=1):
                    break
            except OSError:
                assert time.monotonic() < deadline, "bare server did not start"
                time.sleep(0.1)
        yield BareServer(url, world.court.token(world.settings), proc)
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)


def memory_kib(pid: int) -> dict[str, int]:
    """VmRSS and VmHWM (peak RSS) of a process, in KiB, from /proc."""
    found: dict[str, int] = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        name, _, value = line.partition(":")
        if name in ("VmRSS", "VmHWM"):
            found[name] = int(value.split()[0])
    return found


class RssSampler:
    """Samples a process's RSS every ``interval`` seconds while running (peak of the samples, and /proc's
    own VmHWM high-water mark at the end)."""

    def __init__(self, pid: int, interval: float = 0.02) -> None:
        self.pid = pid
        self.interval = interval
        self.peak_kib = 0
        self._task: asyncio.Task[None] | None = None

    async def _run(self) -> None:
        while True:
            self.peak_kib = max(self.peak_kib, memory_kib(self.pid).get("VmRSS", 0))
            await asyncio.sleep(self.interval)

    def start(self) -> None:
        self._task = asyncio.create_task(self._run())

    async def stop(self) -> None:
        assert self._task is not None
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task
        self.peak_kib = max(self.peak_kib, memory_kib(self.pid).get("VmRSS", 0))


def ms(value: float) -> str:
    return f"{value:,.0f} ms" if value >= 100 else f"{value:.1f} ms"


#: Reference figures measured once per session and shared by the sections compared with them.
REFERENCES: dict[str, object] = {}
