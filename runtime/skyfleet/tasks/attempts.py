"""One attempt of a task on one peer, here or over `Execute`, and its verdict
(`skyfleet.tasks.verdict` says what each one means and leads to)."""

from __future__ import annotations

import asyncio
from typing import Protocol

from skyfleet._generated.skyfleet.v1 import tasks_pb2
from skyfleet.tasks.executor import Executor, Overloaded
from skyfleet.tasks.handlers import BadPayload, UnknownHandler
from skyfleet.tasks.verdict import AttemptResult, Verdict


class RemoteExecute(Protocol):
    """Runs `task` on `peer` (at `address`) within `timeout` seconds and says how it
    ended; never raises for the peer's or the network's failures. The agent's is gRPC
    (`skyfleet.transport.task_execute`)."""

    async def __call__(
        self,
        peer: str,
        address: str,
        task: tasks_pb2.SubmitTaskRequest,
        attempt: int,
        timeout: float,
    ) -> AttemptResult: ...


class Attempts:
    """Runs attempts for the router of node `name`."""

    def __init__(self, name: str, executor: Executor, remote: RemoteExecute) -> None:
        self._name = name
        self._executor = executor
        self._remote = remote

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
            result = await run_here(self._executor, task, timeout)
        else:
            result = await self._remote(peer, address, task, attempt, timeout)
        if result.timed_out and timeout_is_deadline:
            return AttemptResult(Verdict.DEADLINE, error=result.error, timed_out=True)
        return result


async def run_here(
    executor: Executor, task: tasks_pb2.SubmitTaskRequest, timeout: float
) -> AttemptResult:
    """Run `task` on `executor`, in this process, and say how it ended: how an attempt
    on this node ends, and how an in-memory transport's on another."""
    try:
        async with asyncio.timeout(timeout):
            done = await executor.execute(task.handler, task.payload, task.idempotency_key)
    except (UnknownHandler, BadPayload) as exc:
        return AttemptResult(Verdict.CLIENT, error=str(exc))
    except Overloaded as exc:
        return AttemptResult(Verdict.FULL, error=f"full: {exc}")
    except TimeoutError:
        return AttemptResult(
            Verdict.UNREACHABLE, error=f"timed out after {timeout:.3f}s", timed_out=True
        )
    except Exception as exc:  # the handler's own failure, whatever it raised
        return AttemptResult(Verdict.FAILED, error=f"handler failed: {type(exc).__name__}: {exc}")
    return AttemptResult(Verdict.OK, done.output, duplicate=done.duplicate)
