"""The two sides of the tasks package's `RemoteExecute` seam: an attempt forwarded to a
peer's `Tasks.Execute` over gRPC, the call's status read as the attempt's verdict; and the
same exchange in memory, with the peers' executors in this process (tests, embedding), as
httpx's mock transport stands in for its network one."""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncGenerator, Mapping
from contextlib import aclosing

import grpc

from skyfleet._generated.skyfleet.v1 import tasks_pb2, tasks_pb2_grpc
from skyfleet.tasks.attempts import STARTED, AttemptEvent, run_here, stream_here
from skyfleet.tasks.executor import Executor
from skyfleet.tasks.verdict import AttemptResult, Verdict
from skyfleet.transport.peers import PeerChannels

_REMOTE_VERDICT = {
    grpc.StatusCode.INVALID_ARGUMENT: Verdict.CLIENT,
    grpc.StatusCode.RESOURCE_EXHAUSTED: Verdict.FULL,
    grpc.StatusCode.UNAVAILABLE: Verdict.UNREACHABLE,
    grpc.StatusCode.DEADLINE_EXCEEDED: Verdict.UNREACHABLE,
    grpc.StatusCode.CANCELLED: Verdict.UNREACHABLE,
}
"""Status of a failed Execute call -> verdict; any other status is a handler failure."""

_TOO_LARGE = re.compile(r"(Sent|Received) message larger than max")
"""How gRPC words a message over its size limit (RESOURCE_EXHAUSTED, as a full peer)."""


class GrpcTaskExecute:
    """Runs attempts of node `name`'s router on its peers."""

    def __init__(self, name: str, channels: PeerChannels) -> None:
        self._name = name
        self._channels = channels

    async def __call__(
        self,
        peer: str,
        address: str,
        task: tasks_pb2.SubmitTaskRequest,
        attempt: int,
        timeout: float,
    ) -> AttemptResult:
        stub = tasks_pb2_grpc.TasksStub(self._channels.for_tasks(address, peer))
        request = tasks_pb2.ExecuteRequest(task=task, routed_by=self._name, attempt=attempt)
        try:
            # The gRPC deadline of the forwarded call is what carries the task's
            # remaining time to the executor.
            reply = await stub.Execute(request, timeout=timeout)
        except grpc.aio.AioRpcError as exc:
            return failed_call(exc)
        return AttemptResult(Verdict.OK, reply.output, duplicate=reply.duplicate)

    async def stream(
        self,
        peer: str,
        address: str,
        task: tasks_pb2.SubmitTaskRequest,
        attempt: int,
        start_timeout: float,
        timeout: float | None,
    ) -> AsyncGenerator[AttemptEvent, None]:
        """`Execute`'s streamed form: chunks are read from the peer only as fast as they
        are taken from here, so gRPC's flow control carries the reader's pace back to
        the handler; closing this generator cancels the call, and the handler with it."""
        stub = tasks_pb2_grpc.TasksStub(self._channels.for_tasks(address, peer))
        request = tasks_pb2.ExecuteRequest(task=task, routed_by=self._name, attempt=attempt)
        call = stub.ExecuteStream(request, timeout=timeout)
        events = aiter(call)
        try:
            try:
                async with asyncio.timeout(start_timeout):
                    first = await anext(events, None)
            except TimeoutError:
                yield AttemptResult(
                    Verdict.UNREACHABLE, timed_out=True,
                    error=f"not started within {start_timeout:.3f}s",
                )
                return
            if first is None or first.WhichOneof("event") != "started":
                yield AttemptResult(Verdict.FAILED, error=f"{peer}: ExecuteStream did not start")
                return
            yield STARTED
            async for event in events:
                yield event.chunk.data
            yield AttemptResult(Verdict.OK)
        except grpc.aio.AioRpcError as exc:
            yield failed_call(exc)
        finally:
            call.cancel()


def failed_call(exc: grpc.aio.AioRpcError) -> AttemptResult:
    """The verdict of a peer call that ended with a status."""
    code = exc.code()
    if code == grpc.StatusCode.RESOURCE_EXHAUSTED and _TOO_LARGE.search(exc.details() or ""):
        # gRPC's message size limit, not a full peer: the task itself is too big.
        return AttemptResult(Verdict.CLIENT, error=(
            f"the task is larger than gRPC's message size limit: {exc.details()}"))
    return AttemptResult(
        _REMOTE_VERDICT.get(code, Verdict.FAILED),
        error=f"{code.name}: {exc.details()}",
        timed_out=code == grpc.StatusCode.DEADLINE_EXCEEDED,
    )


class LocalTaskExecute:
    """Attempts on executors of this process, by peer name. A peer in `refusing` (or not
    in the table) refuses the connection, as a dead host does."""

    def __init__(self, executors: Mapping[str, Executor]) -> None:
        self._executors = dict(executors)
        self.refusing: set[str] = set()

    async def __call__(
        self,
        peer: str,
        address: str,
        task: tasks_pb2.SubmitTaskRequest,
        attempt: int,
        timeout: float,
    ) -> AttemptResult:
        executor = self._executors.get(peer)
        if executor is None or peer in self.refusing:
            return AttemptResult(Verdict.UNREACHABLE, error=f"{address}: connection refused")
        return await run_here(executor, task, timeout)

    async def stream(
        self,
        peer: str,
        address: str,
        task: tasks_pb2.SubmitTaskRequest,
        attempt: int,
        start_timeout: float,
        timeout: float | None,
    ) -> AsyncGenerator[AttemptEvent, None]:
        executor = self._executors.get(peer)
        if executor is None or peer in self.refusing:
            yield AttemptResult(Verdict.UNREACHABLE, error=f"{address}: connection refused")
            return
        async with aclosing(stream_here(executor, task, start_timeout, timeout)) as events:
            async for event in events:
                yield event
