"""What quorum queues cost a RabbitMQ node: ``python -m tests.support.quorum_cost 400 [--limit 1024]``.

Starts a throw-away node (tests/support/rabbit_cluster.py: its own name, ports and data directory; the
machine's broker is not touched), declares N quorum queues, publishes one message to each and prints
the node's descriptor and memory figures before and after: the file handles the node counts
(``rabbitmqctl status``), the files its process has open (/proc) and the management API's ``fd_used``
and ``mem_used``. With ``--limit`` the node starts with that descriptor limit instead, to see where it
stops answering. The node and its files are removed at the end. Figures: docs/deployment.md."""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import os
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

import aio_pika

from tests.support import rabbit_cluster


def reading(cluster: rabbit_cluster.Cluster) -> dict[str, Any]:
    node = cluster.nodes[0]
    request = urllib.request.Request(
        f"{node.management_url}/api/nodes",
        headers={"Authorization": "Basic " + base64.b64encode(b"guest:guest").decode()},
    )
    with urllib.request.urlopen(request, timeout=10) as resp:
        api = json.load(resp)[0]
    status = json.loads(cluster.ctl(node, "status", "--formatter", "json", timeout=30))
    pid = int(node.pid_file.read_text().strip())
    return {
        "handles_counted": status["file_descriptors"]["total_used"],
        "handles_limit": status["file_descriptors"]["total_limit"],
        "process_open_files": len(os.listdir(f"/proc/{pid}/fd")),
        "api_fd_used": api.get("fd_used"),
        "api_mem_used_mib": round((api.get("mem_used") or 0) / 2**20, 1),
        "erlang_processes": api.get("proc_used"),
    }


async def declare(url: str, count: int) -> None:
    connection = await aio_pika.connect(url)
    async with connection:
        channel = await connection.channel()
        for i in range(count):
            name = f"cost.q{i}"
            await asyncio.wait_for(
                channel.declare_queue(name, durable=True, arguments={"x-queue-type": "quorum"}), 30
            )
            await channel.default_exchange.publish(aio_pika.Message(b"x", delivery_mode=2), routing_key=name)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("queues", type=int)
    parser.add_argument(
        "--limit", type=int, default=rabbit_cluster.NOFILE, help="descriptor limit of the node"
    )
    args = parser.parse_args()
    rabbit_cluster.NOFILE = args.limit
    cluster = rabbit_cluster.Cluster(Path(tempfile.mkdtemp(prefix="gw-qcost-")), count=1, management=True)
    try:
        cluster.start()
        time.sleep(8)  # the management agent publishes its first figures
        before = reading(cluster)
        print("before", json.dumps(before))
        asyncio.run(declare(cluster.urls[0], args.queues))
        time.sleep(8)
        after = reading(cluster)
        print("after ", json.dumps(after))
        for key in ("handles_counted", "process_open_files", "api_mem_used_mib", "erlang_processes"):
            print(f"{key} per queue: {(after[key] - before[key]) / args.queues:.3f}")
    finally:
        cluster.teardown()


if __name__ == "__main__":
    main()
