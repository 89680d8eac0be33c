"""Long-running tasks through real in-process agents (gRPC over mTLS, SWIM, signed
policy): started at once, answered by any agent, run again when their executor leaves,
cancelled by id; the record calls between agents refused to clients."""

from __future__ import annotations

from pathlib import Path

import grpc
import pytest
from inprocess_fleet import InProcessFleet, policy_document
from task_doubles import Gates

from skyfleet._generated.skyfleet.v1 import tasks_pb2
from skyfleet.client import AgentError
from skyfleet.config.tasks import TaskSettings

FOUR = [("a0", "aws"), ("a1", "aws"), ("g0", "gcp"), ("g1", "gcp")]
QUICK = TaskSettings(report_interval=0.2)
"""Heartbeats and supervision checks every 0.2 s: a lost run is noticed within a second."""


async def test_a_long_task_runs_detached_and_any_agent_answers_for_it(
    tmp_path: Path, free_ports
) -> None:
    gates = Gates()
    async with InProcessFleet(tmp_path, free_ports(4), FOUR, gates=gates,
                              policy=policy_document(2), tasks=QUICK) as fleet:
        async with fleet.client("a0") as a0, fleet.client("g1") as g1:
            record = await a0.start("gated", b"long-1", deadline=3600)
            assert record.state == tasks_pb2.TASK_STATE_RUNNING and len(record.holders) == 3
            assert record.deadline_unix - record.accepted_unix == pytest.approx(3600)
            await fleet.wait(lambda: gates.started(b"long-1") == 1, "the run to start")
            seen = await g1.task(record.task_id)
            assert (seen.state, seen.executor) == (record.state, record.executor)
            pending = await g1.wait_task(record.task_id, timeout=0.5)
            assert pending.state == tasks_pb2.TASK_STATE_RUNNING  # as it is at the deadline
            gates.release(b"long-1")
            done = await g1.wait_task(record.task_id, timeout=10)
            assert done.state == tasks_pb2.TASK_STATE_SUCCEEDED
            assert done.output == f"{record.executor}:long-1".encode()
            with pytest.raises(AgentError) as missing:
                await a0.task("0" * 32)
            assert missing.value.code == grpc.StatusCode.NOT_FOUND


async def test_an_executor_that_leaves_mid_run_hands_the_task_to_another(
    tmp_path: Path, free_ports
) -> None:
    gates = Gates()
    async with InProcessFleet(tmp_path, free_ports(4), FOUR, gates=gates,
                              policy=policy_document(2), tasks=QUICK) as fleet:
        async with fleet.client("a0") as a0:
            record = await a0.start("gated", b"long-2", clouds=("gcp",))
            first = record.executor
            await fleet.wait(lambda: gates.started(b"long-2") == 1, "the first run")
            await fleet.agents[first].shutdown()
            other = ({"g0", "g1"} - {first}).pop()
            await fleet.wait(lambda: gates.started(b"long-2") == 2, "the second run", 30)
            assert [e for e, p in gates.starts if p == b"long-2"] == [first, other]
            gates.release(b"long-2")
            done = await a0.wait_task(record.task_id, timeout=10)
            assert (done.state, done.attempt, done.executor) == (
                tasks_pb2.TASK_STATE_SUCCEEDED, 2, other)
            assert done.task.idempotency_key == record.task.idempotency_key


async def test_cancel_by_id_from_any_agent_stops_the_run(tmp_path: Path, free_ports) -> None:
    gates = Gates()
    async with InProcessFleet(tmp_path, free_ports(4), FOUR, gates=gates,
                              policy=policy_document(2), tasks=QUICK) as fleet:
        async with fleet.client("a0") as a0, fleet.client("g0") as g0:
            record = await a0.start("gated", b"long-3")
            await fleet.wait(lambda: gates.started(b"long-3") == 1, "the run")
            cancelled = await g0.cancel_task(record.task_id)
            assert cancelled.state == tasks_pb2.TASK_STATE_CANCELLED
            await fleet.wait(lambda: (record.executor, b"long-3") in gates.cancelled,
                             "the handler to be cancelled")
            assert (await a0.task(record.task_id)).state == tasks_pb2.TASK_STATE_CANCELLED
            with pytest.raises(AgentError) as unknown:
                await a0.start("nope")
            assert unknown.value.code == grpc.StatusCode.INVALID_ARGUMENT
