"""What the broker needs and when it is near a limit: pure judgement over readings taken elsewhere
(gateway/ops/broker_health.py reads them from the RabbitMQ management API).

Descriptors are the limit that bites first. Measured on RabbitMQ 3.10.8 (docs/deployment.md): every
quorum queue replica reserves 3 file handles from the broker's file-handle budget as soon as it is
declared (``rabbitmqctl status`` counts them; the process's own open files and the management API's
``fd_used`` barely move). A node whose reservations pass its budget keeps confirming declarations and
then stops answering — new connections and ``rabbitmqctl`` alike — so the reading below counts the
reservations the node's quorum queues make, not only the files it has open."""

from __future__ import annotations

from dataclasses import dataclass

#: File handles one quorum queue replica reserves (RabbitMQ 3.10.8, measured).
DESCRIPTORS_PER_QUORUM_QUEUE = 3
#: Quorum queues the gateway declares per partner: its work queue and urgent lane, each with its
#: parking queue.
QUEUES_PER_PARTNER = 4
#: Queues shared by every partner (replies, callbacks, events...) with their parking queues, rounded up.
SHARED_QUEUES = 16
#: Client connections, the management listener, logs, the Erlang runtime's own files: what a node
#: uses besides quorum queues, with room for a few hundred gateway and operator connections.
BASE_DESCRIPTORS = 1024
#: The installation size the gateway is planned for.
PLANNED_PARTNERS = 100
#: What every node's limit (systemd LimitNOFILE, ulimit -n) should be set to: RabbitMQ's own
#: production advice, far above what PLANNED_PARTNERS need.
RECOMMENDED_DESCRIPTORS = 65536


def quorum_queues_for(partners: int) -> int:
    return partners * QUEUES_PER_PARTNER + SHARED_QUEUES


def descriptors_needed(partners: int) -> int:
    """The descriptor limit one node needs for ``partners`` (each node holds a replica of every quorum
    queue). 100 partners: 416 queues, 1,248 reserved handles, 2,272 with the base — over the 1,024
    soft limit a node starts with by default."""
    return quorum_queues_for(partners) * DESCRIPTORS_PER_QUORUM_QUEUE + BASE_DESCRIPTORS


@dataclass(frozen=True, slots=True)
class NodeReading:
    """One node as the management API reports it; ``None``: the field was missing."""

    name: str
    running: bool = True
    fd_used: int | None = None
    fd_total: int | None = None
    mem_used: int | None = None
    mem_limit: int | None = None
    disk_free: int | None = None
    disk_free_limit: int | None = None
    mem_alarm: bool = False
    disk_alarm: bool = False


@dataclass(frozen=True, slots=True)
class Thresholds:
    descriptors: float = 0.8  # committed descriptors / limit
    memory: float = 0.8  # memory used / high watermark
    disk: float = 2.0  # warn while free disk < this many times the free-disk limit
    #: The size the descriptor limit is judged against as well: a node that holds today's queues but
    #: could not hold the planned installation's is reported before partners are added.
    #: 0: not checked.
    planned_partners: int = PLANNED_PARTNERS


@dataclass(frozen=True, slots=True)
class Verdict:
    warnings: tuple[str, ...] = ()
    #: Memory or disk alarms in force: the broker blocks every publishing connection until they clear.
    alarms: tuple[str, ...] = ()

    @property
    def near_limit(self) -> bool:
        return bool(self.warnings or self.alarms)


def committed_descriptors(node: NodeReading, quorum_queues: int | None) -> int | None:
    """What the node has open plus what its quorum queue replicas reserve (an upper estimate: every
    node of a cluster is assumed to hold a replica of every quorum queue, the gateway's default)."""
    if node.fd_used is None:
        return None
    return node.fd_used + DESCRIPTORS_PER_QUORUM_QUEUE * (quorum_queues or 0)


def _pct(part: float, whole: float) -> str:
    return f"{part / whole * 100:.0f} %"


def judge(nodes: list[NodeReading], quorum_queues: int | None, limits: Thresholds | None = None) -> Verdict:
    """Warnings (near a limit, with what to do) and alarms in force, node by node."""
    limits = limits or Thresholds()
    warnings: list[str] = []
    alarms: list[str] = []
    planned = descriptors_needed(limits.planned_partners)
    for node in nodes:
        if not node.running:
            warnings.append(f"{node.name}: node is down (its quorum queue replicas wait for it to return)")
            continue
        if node.mem_alarm:
            alarms.append(f"{node.name}: memory alarm: the broker blocks publishers until memory is freed")
        if node.disk_alarm:
            alarms.append(f"{node.name}: disk alarm: the broker blocks publishers until disk is freed")
        committed = committed_descriptors(node, quorum_queues)
        if committed is not None and node.fd_total:
            if committed >= limits.descriptors * node.fd_total:
                warnings.append(
                    f"{node.name}: descriptors {committed} of {node.fd_total} "
                    f"({_pct(committed, node.fd_total)}, {quorum_queues or 0} quorum queues reserve "
                    f"{DESCRIPTORS_PER_QUORUM_QUEUE} each): raise the broker's open-file limit "
                    f"(LimitNOFILE={RECOMMENDED_DESCRIPTORS}, docs/deployment.md)"
                )
            elif limits.planned_partners and node.fd_total < planned:
                warnings.append(
                    f"{node.name}: descriptor limit {node.fd_total} is below the {planned} that "
                    f"{limits.planned_partners} partners need: raise it "
                    f"(LimitNOFILE={RECOMMENDED_DESCRIPTORS}, docs/deployment.md)"
                )
        used, watermark = node.mem_used, node.mem_limit
        if used is not None and watermark and not node.mem_alarm and used >= limits.memory * watermark:
            warnings.append(
                f"{node.name}: memory {used // 2**20} MiB of the {watermark // 2**20} MiB high watermark "
                f"({_pct(used, watermark)}): drain the deepest queues or give the broker more memory"
            )
        free, floor = node.disk_free, node.disk_free_limit
        if free is not None and floor and not node.disk_alarm and free < limits.disk * floor:
            warnings.append(
                f"{node.name}: free disk {free // 2**20} MiB, within {limits.disk:g}x its "
                f"{floor // 2**20} MiB limit: free disk space"
            )
    return Verdict(tuple(warnings), tuple(alarms))
