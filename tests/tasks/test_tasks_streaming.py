"""Streamed tasks through real in-process agents (gRPC over mTLS, SWIM, signed policy):
chunks pass through the routing agent as they come, a failure before the first chunk
fails over, one after it is reported with what was delivered and never run again, the
reader's hang-up cancels the handler on the executor, and a reader that stops reading
stops the handler (memory stays bounded across the hop)."""

from __future__ import annotations

import asyncio
import json
from contextlib import aclosing
from pathlib import Path
from typing import Any

import grpc
import pytest
from inprocess_fleet import InProcessFleet, policy_document
from task_doubles import Gates

from skyfleet._generated.skyfleet.v1 import tasks_pb2
from skyfleet.client import AgentClient, AgentError

SUCCEEDED = tasks_pb2.TASK_OUTCOME_SUCCEEDED
FAILED = tasks_pb2.TASK_OUTCOME_FAILED

PLACEMENT = [("a0", "aws"), ("g0", "gcp"), ("g1", "gcp")]


def tokens(name: str, **fields: Any) -> bytes:
    return json.dumps({"name": name, **fields}).encode()


async def events(
    client: AgentClient, payload: bytes, *, cloud: str = "gcp", timeout: float = 20.0
) -> list[tasks_pb2.TaskStreamEvent]:
    return [e async for e in client.stream("tokens", payload, clouds=(cloud,), timeout=timeout)]


def chunks_of(stream: list[tasks_pb2.TaskStreamEvent]) -> list[bytes]:
    return [e.chunk.data for e in stream if e.WhichOneof("event") == "chunk"]


async def test_chunks_pass_through_the_routing_agent_in_order(tmp_path: Path, free_ports) -> None:
    gates = Gates()
    async with InProcessFleet(
        tmp_path, free_ports(3), PLACEMENT, gates=gates, policy=policy_document(2)
    ) as fleet:
        async with fleet.client("a0") as client:
            stream = await events(client, tokens("t1", count=5))
        *body, last = stream
        assert last.WhichOneof("event") == "end" and len(body) == 5
        end = last.end
        runner = end.executed_by
        assert runner in ("g0", "g1") and end.outcome == SUCCEEDED
        assert chunks_of(stream) == [f"{runner}:t1:{i};".encode() for i in range(5)]
        assert (end.chunks, end.bytes, end.attempts) == (5, sum(map(len, chunks_of(stream))), 1)
        assert 0 < end.first_chunk_ms <= end.latency_ms
        await fleet.settled()


async def test_a_failure_before_the_first_chunk_fails_over(tmp_path: Path, free_ports) -> None:
    gates = Gates()
    gates.fail_on = {"g0"}
    async with InProcessFleet(
        tmp_path, free_ports(3), PLACEMENT, gates=gates, policy=policy_document(2)
    ) as fleet:
        async with fleet.client("a0") as client:
            for n in range(4):  # whichever gcp host the balancer picks first
                stream = await events(client, tokens(f"f{n}", count=2))
                end = stream[-1].end
                assert end.outcome == SUCCEEDED and end.executed_by == "g1"
                assert chunks_of(stream) == [f"g1:f{n}:{i};".encode() for i in range(2)]
                tried = [e for e, p in gates.starts if p == f"f{n}".encode()]
                assert end.attempts == len(tried) and tried[-1] == "g1"
        await fleet.settled()


async def test_a_stream_cut_after_chunks_is_reported_and_not_run_again(
    tmp_path: Path, free_ports
) -> None:
    gates = Gates()
    async with InProcessFleet(
        tmp_path, free_ports(3), PLACEMENT, gates=gates, policy=policy_document(2)
    ) as fleet:
        async with fleet.client("a0") as client:
            stream = await events(client, tokens("cut", count=10, cut_after=3))
        end = stream[-1].end
        assert end.outcome == FAILED and (end.chunks, end.attempts) == (3, 1)
        assert len(chunks_of(stream)) == 3 and end.bytes == sum(map(len, chunks_of(stream)))
        assert "stream cut after 3 chunks" in end.error and "cut on" in end.error
        assert end.executed_by in end.error
        assert gates.started(b"cut") == 1  # no re-run that would repeat the output
        assert fleet.agents["a0"].router.ledger.failed == 1
        await fleet.settled()


async def test_hanging_up_cancels_the_handler_on_the_executor(tmp_path: Path, free_ports) -> None:
    gates = Gates()
    async with InProcessFleet(
        tmp_path, free_ports(3), PLACEMENT, gates=gates, policy=policy_document(2)
    ) as fleet:
        async with fleet.client("a0") as client:
            stream = client.stream("tokens", tokens("long", count=100, gate_after=2),
                                   clouds=("gcp",), timeout=30)
            async with aclosing(stream):
                first = await anext(stream)
                assert first.chunk.data.endswith(b":long:0;")
            # Closed after one chunk: the call is cancelled, the handler with it.
            await fleet.wait(lambda: len(gates.cancelled) == 1, "the handler to be cancelled")
        executor, name = gates.cancelled[0]
        assert name == b"long" and executor in ("g0", "g1")
        assert gates.produced[b"long"] == 2
        await fleet.settled()
        assert fleet.agents["a0"].router.ledger.failed == 1


async def test_a_reader_that_stops_reading_stops_the_handler(tmp_path: Path, free_ports) -> None:
    """1 GiB on offer in 64 KiB chunks; the reader takes one. gRPC's flow control on both
    hops must stop the handler once the windows are full: it then stops producing, far
    short of the whole output."""
    gates = Gates()
    size = 64 * 1024
    count = 16 * 1024
    async with InProcessFleet(
        tmp_path, free_ports(3), PLACEMENT, gates=gates, policy=policy_document(2)
    ) as fleet:
        async with fleet.client("a0") as client:
            stream = client.stream("tokens", tokens("big", count=count, size=size),
                                   clouds=("gcp",), timeout=60)
            async with aclosing(stream):
                await anext(stream)
                await stalled(lambda: gates.produced[b"big"])
                produced = gates.produced[b"big"]
                assert produced * size < 64 * 1024 * 1024, produced  # at most 64 MiB of 1 GiB
        await fleet.wait(lambda: len(gates.cancelled) == 1, "the handler to be cancelled")
        await fleet.settled()


async def stalled(count: Any, *, quiet: int = 25, limit: float = 20.0) -> None:
    """Wait until `count()` has not moved for `quiet` polls of 20 ms (bounded by `limit`
    seconds): the producer is blocked. One that never blocks fails the wait."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + limit
    last, still = count(), 0
    while still < quiet:
        if loop.time() > deadline:
            raise AssertionError(f"the producer never stopped: {count()} chunks so far")
        await asyncio.sleep(0.02)
        now = count()
        still = still + 1 if now == last else 0
        last = now


async def test_one_shot_and_streamed_calls_serve_either_kind_of_handler(
    tmp_path: Path, free_ports
) -> None:
    gates = Gates()
    gates.open_all = True
    async with InProcessFleet(
        tmp_path, free_ports(3), PLACEMENT, gates=gates, policy=policy_document(2)
    ) as fleet:
        async with fleet.client("a0") as client:
            # A one-shot Submit of a streaming handler: its chunks joined.
            reply = await client.submit("tokens", tokens("joined", count=3), clouds=("gcp",))
            runner = reply.executed_by
            assert reply.outcome == SUCCEEDED
            assert reply.output == b"".join(f"{runner}:joined:{i};".encode() for i in range(3))
            # A streamed call of a one-shot handler: its output as one chunk.
            stream = [e async for e in client.stream("gated", b"whole", clouds=("gcp",))]
            runner = stream[-1].end.executed_by
            assert chunks_of(stream) == [f"{runner}:whole".encode()]
            assert stream[-1].end.chunks == 1
        await fleet.settled()


async def test_refusals_before_the_first_chunk_are_the_calls_status(
    tmp_path: Path, free_ports
) -> None:
    gates = Gates()
    async with InProcessFleet(
        tmp_path, free_ports(3), PLACEMENT, gates=gates, policy=policy_document(2)
    ) as fleet:
        async with fleet.client("a0") as client:
            with pytest.raises(AgentError) as unknown:
                [e async for e in client.stream("nope")]
            assert unknown.value.code == grpc.StatusCode.INVALID_ARGUMENT
            assert "'nope'" in str(unknown.value)
            with pytest.raises(AgentError) as nowhere:
                await events(client, tokens("x"), cloud="azure")
            assert nowhere.value.code == grpc.StatusCode.UNAVAILABLE
            # The same key streamed twice on one executor (its router prefers itself, by
            # zone locality): never run twice.
            first = [e async for e in client.stream(
                "tokens", tokens("k"), clouds=("gcp",), idempotency_key="once")]
            runner = first[-1].end.executed_by
            async with fleet.client(runner) as direct:
                with pytest.raises(AgentError) as again:
                    [e async for e in direct.stream(
                        "tokens", tokens("k"), idempotency_key="once", clouds=("gcp",))]
            assert gates.started(b"k") == 1
            assert again.value.code == grpc.StatusCode.INVALID_ARGUMENT
            assert "not replayed" in str(again.value)
        await fleet.settled()


async def test_the_deadline_travels_with_the_stream_and_cancels_the_handler(
    tmp_path: Path, free_ports
) -> None:
    gates = Gates()
    async with InProcessFleet(
        tmp_path, free_ports(3), PLACEMENT, gates=gates, policy=policy_document(2)
    ) as fleet:
        async with fleet.client("a0") as client:
            got: list[tasks_pb2.TaskStreamEvent] = []
            with pytest.raises(AgentError) as late:
                async for event in client.stream("tokens", tokens("slow", count=5, gate_after=1),
                                                 clouds=("gcp",), timeout=1.0):
                    got.append(event)
            assert late.value.code == grpc.StatusCode.DEADLINE_EXCEEDED
            assert len(got) == 1 and got[0].chunk.data.endswith(b":slow:0;")
        await fleet.wait(lambda: len(gates.cancelled) == 1, "the executor's handler to stop")
        await fleet.settled()
        ledger = fleet.agents["a0"].router.ledger
        assert (ledger.submitted, ledger.deadline_exceeded) == (1, 1)
