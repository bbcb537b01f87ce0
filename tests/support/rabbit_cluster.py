"""Throw-away RabbitMQ nodes on this machine, from the installed ``rabbitmq-server``: each with its own
node name, AMQP, distribution and (optionally) management ports, and its data, logs and Erlang cookie
under one directory. The machine's own broker (rabbit@localhost, 5672) is never touched.

Used by the cluster chaos test and to measure what quorum queues cost (docs/deployment.md)."""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
import signal
import subprocess
from dataclasses import dataclass
from pathlib import Path

# Below the ephemeral range, so an outgoing connection cannot take a port before its node binds it.
from tests.support.gateway_procs import free_port

SERVER = Path("/usr/lib/rabbitmq/bin/rabbitmq-server")
CTL = Path("/usr/lib/rabbitmq/bin/rabbitmqctl")
#: The descriptor limit a node is started with (docs/deployment.md), capped by the hard limit.
NOFILE = 65536


def installed() -> bool:
    return SERVER.exists() and CTL.exists()


@dataclass
class Node:
    name: str  # e.g. gwc3f2a-1@localhost
    amqp_port: int
    dist_port: int
    mgmt_port: int
    base: Path
    running: bool = False

    @property
    def url(self) -> str:
        return f"amqp://guest:guest@127.0.0.1:{self.amqp_port}/"

    @property
    def management_url(self) -> str:
        return f"http://127.0.0.1:{self.mgmt_port}"

    @property
    def pid_file(self) -> Path:
        return self.base / "node.pid"


class Cluster:
    """``count`` nodes; ``start()`` boots them and joins every node to the first."""

    def __init__(self, root: Path, count: int = 3, management: bool = False) -> None:
        self.root = root
        self.management = management
        self.home = root / "home"
        prefix = f"gwc{secrets.token_hex(3)}"
        self.nodes = [
            Node(f"{prefix}-{i}@localhost", free_port(), free_port(), free_port(), root / f"node{i}")
            for i in range(1, count + 1)
        ]

    @property
    def urls(self) -> list[str]:
        return [n.url for n in self.nodes]

    def env(self, node: Node) -> dict[str, str]:
        # The Erlang cookie is read from $HOME/.erlang.cookie by the node and by rabbitmqctl alike.
        # RABBITMQ_CONF_ENV_FILE points away from /etc/rabbitmq/rabbitmq-env.conf, which names the
        # machine's own node.
        return {
            **os.environ,
            "HOME": str(self.home),
            "RABBITMQ_NODENAME": node.name,
            "RABBITMQ_CONF_ENV_FILE": str(self.root / "rabbitmq-env.conf"),
            "RABBITMQ_CONFIG_FILE": str(node.base / "rabbitmq.conf"),
            "RABBITMQ_ENABLED_PLUGINS_FILE": str(node.base / "enabled_plugins"),
            "RABBITMQ_MNESIA_BASE": str(node.base / "mnesia"),
            "RABBITMQ_LOG_BASE": str(node.base / "log"),
            "RABBITMQ_PID_FILE": str(node.pid_file),
            "RABBITMQ_DIST_PORT": str(node.dist_port),
            "RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS": "-kernel inet_dist_use_interface {127,0,0,1}",
        }

    def ctl(self, node: Node, *args: str, timeout: float = 90) -> str:
        done = subprocess.run(
            [str(CTL), "-n", node.name, *args],
            env=self.env(node),
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
        if done.returncode != 0:
            raise RuntimeError(f"rabbitmqctl {' '.join(args)} on {node.name}: {done.stderr or done.stdout}")
        return done.stdout

    def _prepare(self) -> None:
        self.home.mkdir(parents=True, exist_ok=True)
        cookie = self.home / ".erlang.cookie"
        cookie.write_text(secrets.token_hex(16))
        cookie.chmod(0o400)
        (self.root / "rabbitmq-env.conf").write_text("")
        plugins = "[rabbitmq_management]." if self.management else "[]."
        for node in self.nodes:
            node.base.mkdir(parents=True, exist_ok=True)
            (node.base / "enabled_plugins").write_text(plugins + "\n")
            (node.base / "rabbitmq.conf").write_text(
                f"listeners.tcp.local = 127.0.0.1:{node.amqp_port}\n"
                f"management.tcp.ip = 127.0.0.1\nmanagement.tcp.port = {node.mgmt_port}\n"
            )

    def start_node(self, node: Node) -> None:
        """Boot ``node`` detached with a raised descriptor limit; return once the app runs."""
        # As high as asked, or as the hard limit allows (a container may cap it below NOFILE).
        raise_limit = f'ulimit -n {NOFILE} 2>/dev/null || ulimit -n "$(ulimit -Hn)"'
        subprocess.run(
            ["bash", "-c", f'{raise_limit}; exec "{SERVER}" -detached'],
            env=self.env(node),
            cwd=node.base,
            capture_output=True,
            timeout=60,
            check=False,
        )
        node.running = True
        self.ctl(node, "wait", str(node.pid_file), "--timeout", "90", timeout=120)

    def start(self) -> None:
        self._prepare()
        for node in self.nodes:
            self.start_node(node)
        first = self.nodes[0]
        for node in self.nodes[1:]:
            self.ctl(node, "stop_app")
            self.ctl(node, "join_cluster", first.name)
            self.ctl(node, "start_app")
        self.ctl(first, "await_online_nodes", str(len(self.nodes)), "--timeout", "60", timeout=90)

    def stop_node(self, node: Node) -> None:
        """Stop the whole node (its connections drop; quorum queues elect leaders elsewhere)."""
        self.ctl(node, "stop", str(node.pid_file), timeout=60)
        node.running = False

    def kill_node(self, node: Node) -> None:
        """SIGKILL the node: no goodbye to its clients or peers, as when its machine fails."""
        self._kill(node)
        node.running = False

    def _kill(self, node: Node) -> None:
        with contextlib.suppress(OSError, ValueError):
            os.kill(int(node.pid_file.read_text().strip()), signal.SIGKILL)

    def teardown(self) -> None:
        """Stop every node (killed if it does not stop), then remove every file: safe on failure paths."""
        for node in self.nodes:
            if not node.running:
                continue
            try:
                self.stop_node(node)
            except (RuntimeError, subprocess.TimeoutExpired, OSError):
                self._kill(node)
        shutil.rmtree(self.root, ignore_errors=True)
