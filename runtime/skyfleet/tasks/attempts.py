"""One attempt of a task on one peer, here or over `Execute`, and its verdict
(`skyfleet.tasks.verdict` says what each one means and leads to)."""

from __future__ import annotations

import asyncio
import re

import grpc

from skyfleet._generated.skyfleet.v1 import tasks_pb2, tasks_pb2_grpc
from skyfleet.tasks.executor import Executor, Overloaded
from skyfleet.tasks.handlers import BadPayload, UnknownHandler
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


class Attempts:
    """Runs attempts for the router of node `name`."""

    def __init__(self, name: str, executor: Executor, channels: PeerChannels) -> None:
        self._name = name
        self._executor = executor
        self._channels = channels

    async def run(
        self,
        peer: str,
        address: str,
        task: tasks_pb2.SubmitTaskRequest,
        attempt: int,
        timeout: float,
        *,
        timeout_is_deadline: bool,
    ) -> AttemptResult:
        """Run `task` (its idempotency key set) on `peer` within `timeout` seconds;
        `timeout_is_deadline` says whether that limit is the task's own deadline."""
        timeout = max(0.001, timeout)
        if peer == self._name:
            result = await self._here(task, timeout)
        else:
            result = await self._remote(peer, address, task, attempt, timeout)
        if result.timed_out and timeout_is_deadline:
            return AttemptResult(Verdict.DEADLINE, error=result.error, timed_out=True)
        return result

    async def _here(self, task: tasks_pb2.SubmitTaskRequest, timeout: float) -> AttemptResult:
        try:
            async with asyncio.timeout(timeout):
                done = await self._executor.execute(
                    task.handler, task.payload, task.idempotency_key
                )
        except (UnknownHandler, BadPayload) as exc:
            return AttemptResult(Verdict.CLIENT, error=str(exc))
        except Overloaded as exc:
            return AttemptResult(Verdict.FULL, error=f"full: {exc}")
        except TimeoutError:
            return AttemptResult(
                Verdict.UNREACHABLE, error=f"timed out after {timeout:.3f}s", timed_out=True
            )
        except Exception as exc:  # the handler's own failure, whatever it raised
            return AttemptResult(
                Verdict.FAILED, error=f"handler failed: {type(exc).__name__}: {exc}"
            )
        return AttemptResult(Verdict.OK, done.output, duplicate=done.duplicate)

    async def _remote(
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
