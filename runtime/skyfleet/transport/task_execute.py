"""The two sides of the tasks package's `RemoteExecute` seam: an attempt forwarded to a
peer's `Tasks.Execute` over gRPC, the call's status read as the attempt's verdict; and the
same exchange in memory, with the peers' executors in this process (tests, embedding), as
httpx's mock transport stands in for its network one."""

from __future__ import annotations

import re
from collections.abc import Mapping

import grpc

from skyfleet._generated.skyfleet.v1 import tasks_pb2, tasks_pb2_grpc
from skyfleet.tasks.attempts import run_here
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
        stub = tasks_pb2_grpc.TasksStub(self._channels.get(address, peer))
        request = tasks_pb2.ExecuteRequest(task=task, routed_by=self._name, attempt=attempt)
        try:
            # The gRPC deadline of the forwarded call is what carries the task's
            # remaining time to the executor.
            reply = await stub.Execute(request, timeout=timeout)
        except grpc.aio.AioRpcError as exc:
            code = exc.code()
            if code == grpc.StatusCode.RESOURCE_EXHAUSTED and _TOO_LARGE.search(
                    exc.details() or ""):
                # gRPC's message size limit, not a full peer: the task itself is too big.
                return AttemptResult(Verdict.CLIENT, error=(
                    f"the task is larger than gRPC's message size limit: {exc.details()}"))
            return AttemptResult(
                _REMOTE_VERDICT.get(code, Verdict.FAILED),
                error=f"{code.name}: {exc.details()}",
                timed_out=code == grpc.StatusCode.DEADLINE_EXCEEDED,
            )
        return AttemptResult(Verdict.OK, reply.output, duplicate=reply.duplicate)


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
