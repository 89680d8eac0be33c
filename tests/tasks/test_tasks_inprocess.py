"""Task routing through real in-process agents (gRPC over mTLS, SWIM, signed policy from
the watched source): retries, status codes, constraints, deadlines, full fleets,
idempotency across routers, and exactly one outcome per task on the stream."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import grpc
import pytest
from inprocess_fleet import InProcessFleet, policy_document
from task_doubles import Gates

from skyfleet._generated.skyfleet.v1 import tasks_pb2
from skyfleet.config.tasks import TaskSettings

SUCCEEDED = tasks_pb2.TASK_OUTCOME_SUCCEEDED
FAILED = tasks_pb2.TASK_OUTCOME_FAILED
DEADLINE = tasks_pb2.TASK_OUTCOME_DEADLINE_EXCEEDED
REJECTED = tasks_pb2.TASK_OUTCOME_REJECTED

THREE = [("a0", "aws"), ("b0", "azure"), ("c0", "gcp")]
FOUR = [("a0", "aws"), ("a1", "aws"), ("b0", "azure"), ("c0", "gcp")]


def task(
    handler: str,
    payload: bytes = b"",
    *,
    key: str = "",
    clouds: tuple[str, ...] = (),
    kind: str = "",
    request_id: str = "",
) -> tasks_pb2.SubmitTaskRequest:
    return tasks_pb2.SubmitTaskRequest(
        handler=handler,
        payload=payload,
        idempotency_key=key,
        constraints=tasks_pb2.Constraints(clouds=list(clouds)),
        kind=kind,
        request_id=request_id,
    )


async def test_a_failed_handler_is_retried_on_another_peer(tmp_path: Path, free_ports) -> None:
    gates = Gates()
    gates.open_all = True
    gates.fail_on = {"a0", "b0"}
    async with InProcessFleet(
        tmp_path, free_ports(3), THREE, gates=gates, policy=policy_document(2)
    ) as fleet:
        async with fleet.client("a0") as client:
            reply = await client.tasks.Submit(task("gated", b"t1", key="k1"), timeout=10)
            assert reply.outcome == SUCCEEDED and reply.executed_by == "c0"
            assert reply.output == b"c0:t1"
            runs = [e for e, p in gates.starts if p == b"t1"]
            assert runs[0] == "a0"  # zone locality: the first try stays here
            assert runs[-1] == "c0" and len(runs) == len(set(runs)) == reply.attempts
            ledger = fleet.agents["a0"].router.ledger
            assert (ledger.succeeded, ledger.attempts) == (1, reply.attempts)
            assert ledger.retried == ledger.failed_over == reply.attempts - 1

            # Failing everywhere: one FAILED outcome that says why, each peer tried once.
            gates.fail_on = {"a0", "b0", "c0"}
            reply = await client.tasks.Submit(task("gated", b"t2", key="k2"), timeout=10)
            assert reply.outcome == FAILED and reply.attempts == 3
            assert "refuses t2" in reply.error and "already tried" in reply.error
            assert sorted(e for e, p in gates.starts if p == b"t2") == ["a0", "b0", "c0"]
        await fleet.settled()


async def test_client_mistakes_are_invalid_argument_without_retry(
    tmp_path: Path, free_ports
) -> None:
    async with InProcessFleet(
        tmp_path, free_ports(3), THREE, gates=Gates(), policy=policy_document(2)
    ) as fleet:
        async with fleet.client("a0") as client:
            cases = [
                # No agent advertises it: refused before any attempt.
                (task("nope"), "handler 'nope': served by no agent of the fleet"),
                # Run on another agent: the verdict comes back over Execute.
                (task("sleep", b'{"mean": -1}', clouds=("gcp",)), "payload.mean"),
                (task(""), "handler: required"),
                (task("sleep", key="k" * 257), "idempotency_key"),
            ]
            for request, message in cases:
                with pytest.raises(grpc.aio.AioRpcError) as caught:
                    await client.tasks.Submit(request, timeout=10)
                assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
                assert message in (caught.value.details() or "")

            # Only agents may ask an agent to execute.
            with pytest.raises(grpc.aio.AioRpcError) as denied:
                await client.tasks.Execute(tasks_pb2.ExecuteRequest(task=task("sleep")))
            assert denied.value.code() == grpc.StatusCode.PERMISSION_DENIED

        ledger = fleet.agents["a0"].router.ledger
        # Every request is a submitted task with one outcome; the one that reached a
        # handler was tried once, never retried.
        assert (ledger.submitted, ledger.rejected, ledger.attempts, ledger.retried) == (4, 4, 1, 0)
        await fleet.settled()


async def test_constraints_are_never_violated(tmp_path: Path, free_ports) -> None:
    gates = Gates()
    gates.open_all = True
    policy = policy_document(
        2,
        locality__prefer="none",
        routing={"rules": [{"task_kind": "gcp-only", "allowed_clouds": ["gcp"]}]},
    )
    async with InProcessFleet(tmp_path, free_ports(4), FOUR, gates=gates, policy=policy) as fleet:
        async with fleet.client("a0") as client:
            replies = await asyncio.gather(
                *(
                    client.tasks.Submit(
                        task("gated", f"x{i}".encode(), clouds=("azure", "gcp")), timeout=10
                    )
                    for i in range(40)
                )
            )
            assert {r.outcome for r in replies} == {SUCCEEDED}
            assert {r.executed_by for r in replies} == {"b0", "c0"}
            ruled = await client.tasks.Submit(task("gated", b"r", kind="gcp-only"), timeout=10)
            assert ruled.executed_by == "c0"

            # Failing in the allowed clouds does not spill into the others.
            gates.fail_on = {"b0", "c0"}
            reply = await client.tasks.Submit(
                task("gated", b"y", clouds=("azure", "gcp")), timeout=10
            )
            assert reply.outcome == FAILED and reply.attempts == 2
            assert sorted(e for e, p in gates.starts if p == b"y") == ["b0", "c0"]

            # No peer can ever take it: UNAVAILABLE, naming the limits.
            for request, limit in (
                (task("gated", b"z", clouds=("oracle",)), "task allows clouds oracle"),
                (task("gated", b"z", kind="gcp-only", clouds=("azure",)), "'gcp-only'"),
            ):
                with pytest.raises(grpc.aio.AioRpcError) as caught:
                    await client.tasks.Submit(request, timeout=10)
                assert caught.value.code() == grpc.StatusCode.UNAVAILABLE
                assert limit in (caught.value.details() or "")
        assert {e for e, _ in gates.starts} <= {"b0", "c0"}
        await fleet.settled()


async def test_the_deadline_travels_and_does_not_blame_the_peer(tmp_path: Path, free_ports) -> None:
    gates = Gates()  # nothing is ever released: every task outlives its deadline
    async with InProcessFleet(
        tmp_path,
        free_ports(3),
        THREE,
        gates=gates,
        policy=policy_document(2),
        tasks=TaskSettings(capacity=8),
    ) as fleet:
        a0, c0 = fleet.agents["a0"], fleet.agents["c0"]
        async with fleet.client("a0") as client:
            payloads = [f"late{i}".encode() for i in range(6)]  # more than 5 in a row
            results = await asyncio.gather(
                *(
                    client.tasks.Submit(task("gated", p, clouds=("gcp",)), timeout=0.5)
                    for p in payloads
                ),
                return_exceptions=True,
            )
        for result in results:
            assert isinstance(result, grpc.aio.AioRpcError), result
            assert result.code() == grpc.StatusCode.DEADLINE_EXCEEDED
        # The deadline reached the executor on c0: each run there was cancelled.
        await fleet.wait(
            lambda: sorted(p for e, p in gates.cancelled if e == "c0") == payloads,
            "c0 to cancel every run at the deadline",
        )
        await fleet.settled()
        assert a0.router.ledger.deadline_exceeded == 6 and c0.executor.inflight == 0
        # A deadline too short for the work is the client's choice, not a failure of
        # c0 or of gcp: nothing is ejected.
        outliers = a0.router.balancer.outliers
        assert outliers.ejected_peers(time.monotonic()) == []
        assert outliers.ejected_clouds(time.monotonic()) == []


async def test_resource_exhausted_when_every_peer_is_full(tmp_path: Path, free_ports) -> None:
    gates = Gates()
    async with InProcessFleet(
        tmp_path,
        free_ports(3),
        THREE,
        gates=gates,
        policy=policy_document(2),
        tasks=TaskSettings(capacity=1, queue_limit=0),
    ) as fleet:
        agents = fleet.agents.values()
        async with fleet.client("a0") as client:
            fills = []
            for i in range(3):
                fills.append(
                    asyncio.ensure_future(
                        client.tasks.Submit(task("gated", f"fill{i}".encode()), timeout=10)
                    )
                )
                await fleet.wait(
                    lambda n=i + 1: sum(a.executor.inflight for a in agents) == n,
                    f"{i + 1} agents busy",
                )
            with pytest.raises(grpc.aio.AioRpcError) as caught:
                await client.tasks.Submit(task("gated", b"extra"), timeout=10)
            assert caught.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
            assert "full" in (caught.value.details() or "")
            assert gates.started(b"extra") == 0

            gates.release(b"fill0", b"fill1", b"fill2")
            replies = await asyncio.gather(*fills)
        assert {r.outcome for r in replies} == {SUCCEEDED}
        assert {r.executed_by for r in replies} == {"a0", "b0", "c0"}
        ledger = fleet.agents["a0"].router.ledger
        assert (ledger.submitted, ledger.succeeded, ledger.rejected) == (4, 3, 1)
        await fleet.settled()


async def test_a_key_runs_once_per_executor_across_routers_and_retries(
    tmp_path: Path, free_ports
) -> None:
    gates = Gates()
    async with InProcessFleet(
        tmp_path, free_ports(4), FOUR, gates=gates, policy=policy_document(2)
    ) as fleet:
        c0 = fleet.agents["c0"]
        async with fleet.client("a0") as via_a0, fleet.client("b0") as via_b0:
            # The same key through two routers at once, both onto c0: one run there.
            first = asyncio.ensure_future(
                via_a0.tasks.Submit(task("gated", b"shared", key="K", clouds=("gcp",)), timeout=10)
            )
            await fleet.wait(lambda: gates.started(b"shared") == 1, "the first run to start")
            second = asyncio.ensure_future(
                via_b0.tasks.Submit(task("gated", b"shared", key="K", clouds=("gcp",)), timeout=10)
            )
            await fleet.wait(
                lambda: fleet.agents["b0"].router.ledger.attempts == 1, "b0 to forward it"
            )
            gates.release(b"shared")
            one, two = await asyncio.gather(first, second)
            assert one.output == two.output == b"c0:shared"
            assert one.executed_by == two.executed_by == "c0"
            # Later, through a third router: the result kept on c0, no new run.
            async with fleet.client("a1") as via_a1:
                three = await via_a1.tasks.Submit(
                    task("gated", b"shared", key="K", clouds=("gcp",)), timeout=10
                )
            assert three.output == b"c0:shared"
            assert gates.started(b"shared") == 1 and c0.executor.executed == 1
            # Every answer but the run's own says it repeats the first output.
            assert sorted([one.duplicate, two.duplicate]) == [False, True]
            assert three.duplicate

            # A key whose first run fails is retried elsewhere, never on the same peer.
            gates.fail_on = {"b0"}
            gates.release(b"retry")
            reply = await via_b0.tasks.Submit(
                task("gated", b"retry", key="R", clouds=("azure", "gcp")), timeout=10
            )
            assert (reply.outcome, reply.executed_by, reply.attempts) == (SUCCEEDED, "c0", 2)
            again = await via_a0.tasks.Submit(
                task("gated", b"retry", key="R", clouds=("gcp",)), timeout=10
            )
            assert again.output == b"c0:retry"
        assert max(gates.per_executor().values()) == 1, gates.starts
        await fleet.settled()


async def test_a_task_too_large_for_a_peer_is_invalid_argument_naming_the_limit(
    tmp_path: Path, free_ports
) -> None:
    """The probe: a payload just under gRPC's 4 MiB, forwarded (the forward adds a few
    bytes), came back as "every peer tried is full"."""
    gates = Gates()
    gates.open_all = True
    async with InProcessFleet(
        tmp_path, free_ports(3), THREE, gates=gates, policy=policy_document(2)
    ) as fleet:
        async with fleet.client("a0") as client:
            limit = 4 * 1024 * 1024  # gRPC's default receive limit
            size = limit - 64
            while task("gated", b"x" * (size + 1), clouds=("gcp",)).ByteSize() <= limit:
                size += 1  # the largest Submit the entry agent still takes
            big = task("gated", b"x" * size, clouds=("gcp",))
            forward = tasks_pb2.ExecuteRequest(task=big, routed_by="a0", attempt=1)
            assert forward.ByteSize() > limit  # ... which no peer takes once forwarded
            with pytest.raises(grpc.aio.AioRpcError) as refused:
                await client.tasks.Submit(big, timeout=20)
            assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT
            assert "message size limit" in (refused.value.details() or "")
            assert "full" not in (refused.value.details() or "")
        await fleet.settled()


async def test_every_streamed_task_gets_exactly_one_response(tmp_path: Path, free_ports) -> None:
    gates = Gates()
    async with InProcessFleet(
        tmp_path, free_ports(3), THREE, gates=gates, policy=policy_document(2)
    ) as fleet:
        async with fleet.client("a0") as client:
            call = client.tasks.SubmitStream(timeout=20)
            requests = [
                task("gated", b"ok1", request_id="ok1"),
                task("", request_id="no-handler"),
                task("nope", request_id="unknown"),
                task("gated", b"stuck", key="cancel-me", request_id="cancelled"),
                task("gated", b"ok2", request_id="ok2"),
            ]
            for request in requests:
                await call.write(request)
            await fleet.wait(lambda: gates.started(b"stuck") == 1, "the stuck task to run")
            cancelled = await client.tasks.Cancel(
                tasks_pb2.CancelTaskRequest(idempotency_key="cancel-me"), timeout=5
            )
            assert cancelled.cancelled
            gates.release(b"ok1", b"ok2")
            await call.done_writing()
            responses = [r async for r in call]
        by_id = {r.request_id: r for r in responses}
        assert len(responses) == len(by_id) == len(requests)
        assert {k: r.outcome for k, r in by_id.items()} == {
            "ok1": SUCCEEDED,
            "no-handler": REJECTED,
            "unknown": REJECTED,
            "cancelled": FAILED,
            "ok2": SUCCEEDED,
        }
        assert "handler: required" in by_id["no-handler"].error
        assert "cancelled" in by_id["cancelled"].error
        ledger = fleet.agents["a0"].router.ledger
        assert (ledger.submitted, ledger.succeeded, ledger.failed, ledger.rejected) == (5, 2, 1, 2)
        await fleet.settled()
