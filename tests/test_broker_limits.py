"""The broker's limits judged from its readings: descriptors counted with what quorum queues reserve,
memory against the high watermark, disk against its limit, alarms, nodes down; and readings the
management API answers with, parsed whatever fields it leaves out."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from gateway.domain.broker_limits import (
    DESCRIPTORS_PER_QUORUM_QUEUE,
    NodeReading,
    Thresholds,
    committed_descriptors,
    descriptors_needed,
    judge,
    quorum_queues_for,
)
from gateway.ops.broker_health import UNKNOWN, BrokerHealth, parse_node, readiness_check

GIB = 2**30
HEALTHY = NodeReading(
    "rabbit@a",
    fd_used=40,
    fd_total=65536,
    mem_used=1 * GIB,
    mem_limit=10 * GIB,
    disk_free=80 * GIB,
    disk_free_limit=GIB // 20,
)


def node(**changes: Any) -> NodeReading:
    return replace(HEALTHY, **changes)


def test_a_hundred_partners_need_more_descriptors_than_a_default_node_has() -> None:
    assert quorum_queues_for(100) == 416
    assert descriptors_needed(100) == 416 * DESCRIPTORS_PER_QUORUM_QUEUE + 1024
    assert descriptors_needed(100) > 1024  # the soft limit a node starts with


def test_a_healthy_node_gives_no_warning() -> None:
    verdict = judge([HEALTHY], quorum_queues=416)
    assert verdict.warnings == () and verdict.alarms == () and not verdict.near_limit


def test_descriptors_count_what_quorum_queues_reserve_not_only_open_files() -> None:
    # 300 quorum queues on a 1,024 limit: 40 files open, 940 committed (92 %): the node is about to wedge.
    small = node(fd_total=1024)
    assert committed_descriptors(small, 300) == 40 + 900
    [warning] = judge([small], quorum_queues=300).warnings
    assert "descriptors 940 of 1024 (92 %" in warning and "LimitNOFILE=65536" in warning
    assert "300 quorum queues" in warning


def test_a_limit_below_what_the_planned_partners_need_is_reported_before_it_fills() -> None:
    small = node(fd_total=1024)
    [warning] = judge([small], quorum_queues=10).warnings
    assert "descriptor limit 1024 is below the 2272 that 100 partners need" in warning
    assert judge([small], 10, Thresholds(planned_partners=0)).warnings == ()


def test_memory_near_the_watermark_and_disk_near_its_limit_warn() -> None:
    [memory] = judge([node(mem_used=8 * GIB)], 0).warnings
    assert "memory 8192 MiB of the 10240 MiB high watermark (80 %)" in memory
    assert judge([node(mem_used=7 * GIB)], 0).warnings == ()
    [disk] = judge([node(disk_free=GIB // 20 + 1)], 0).warnings
    assert "free disk" in disk and "within 2x" in disk
    assert judge([node(disk_free=GIB // 10)], 0).warnings == ()  # exactly twice the limit: fine


def test_alarms_are_reported_as_alarms_not_as_warnings() -> None:
    verdict = judge([node(mem_used=11 * GIB, mem_alarm=True), node(name="rabbit@b", disk_alarm=True)], 0)
    assert [a.split(":")[0:2] for a in verdict.alarms] == [
        ["rabbit@a", " memory alarm"],
        ["rabbit@b", " disk alarm"],
    ]
    assert verdict.warnings == () and verdict.near_limit


def test_a_cluster_member_that_is_down_is_named() -> None:
    verdict = judge([HEALTHY, NodeReading("rabbit@b", running=False)], 10)
    assert verdict.warnings == ("rabbit@b: node is down (its quorum queue replicas wait for it to return)",)


def test_missing_fields_judge_nothing() -> None:
    assert judge([NodeReading("rabbit@a")], None).warnings == ()


def test_management_api_nodes_are_parsed_whatever_they_leave_out() -> None:
    # As RabbitMQ 3.10 answers GET /api/nodes (a running node, and a stopped cluster member).
    running = parse_node(
        {
            "name": "rabbit@a",
            "running": True,
            "fd_used": 38,
            "fd_total": 20000,
            "mem_used": 191016960,
            "mem_limit": 10110473011,
            "mem_alarm": False,
            "disk_free": 82523439104,
            "disk_free_limit": 50000000,
            "disk_free_alarm": True,
        }
    )
    assert running == NodeReading(
        "rabbit@a", True, 38, 20000, 191016960, 10110473011, 82523439104, 50000000, False, True
    )
    assert parse_node({"name": "rabbit@b", "running": False}) == NodeReading("rabbit@b", running=False)
    assert parse_node({"name": "rabbit@c", "fd_used": "many", "mem_alarm": "yes"}).fd_used is None


def test_unknown_readings_pass_the_readiness_check() -> None:
    check = readiness_check(BrokerHealth(UNKNOWN, detail="the management API does not answer"))
    assert check["status"] == "pass" and check["readings"] == "unknown"
    assert check["warnings"] == [] and check["alarms"] == []
