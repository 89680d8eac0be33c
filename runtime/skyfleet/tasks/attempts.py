"""One attempt of a task on one peer, here or over `Execute`, and its verdict
(`skyfleet.tasks.verdict` says what each one means and leads to); one-shot, or streamed.

A streamed attempt is a series of events: `STARTED` once the executor holds a slot for
it, its output chunks, then exactly one `AttemptResult`. The attempt's own timeout covers
the wait for `STARTED` (a peer that does not take the task in time is tried no longer);
after it only the task's deadline applies, so a stream may last as long as its caller
allows. Every wait is bounded around the single await it guards, never across a `yield`:
the reader's pace is not the peer's fault.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator
from contextlib import AsyncExitStack, aclosing
from typing import Final, Protocol

from skyfleet._generated.skyfleet.v1 import tasks_pb2
from skyfleet.tasks.executor import AlreadyStreamed, Executor, Overloaded
from skyfleet.tasks.handlers import BadPayload, UnknownHandler
from skyfleet.tasks.verdict import AttemptResult, Verdict


class Started:
    """The executor took the streamed task: its chunks follow."""

    __slots__ = ()

    def __repr__(self) -> str:
        return "STARTED"


STARTED: Final = Started()

AttemptEvent = Started | bytes | AttemptResult
"""What a streamed attempt yields: `STARTED`, chunks, then one result."""


class RemoteExecute(Protocol):
    """Runs `task` on `peer` (at `address`) and says how it ended; never raises for the
    peer's or the network's failures. The agent's is gRPC
    (`skyfleet.transport.task_execute`)."""

    async def __call__(
        self,
        peer: str,
        address: str,
        task: tasks_pb2.SubmitTaskRequest,
        attempt: int,
        timeout: float,
    ) -> AttemptResult:
        """One-shot, within `timeout` seconds."""

    def stream(
        self,
        peer: str,
        address: str,
        task: tasks_pb2.SubmitTaskRequest,
        attempt: int,
        start_timeout: float,
        timeout: float | None,
    ) -> AsyncGenerator[AttemptEvent, None]:
        """Streamed: `STARTED` within `start_timeout` seconds, the whole run within
        `timeout` (None: no limit); closing the generator cancels the run."""


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

    async def stream(
        self,
        peer: str,
        address: str,
        task: tasks_pb2.SubmitTaskRequest,
        attempt: int,
        start_timeout: float,
        timeout: float | None,
        *,
        timeout_is_deadline: bool,
    ) -> AsyncGenerator[AttemptEvent, None]:
        """Stream `task` on `peer`. `timeout` is what is left of the task's deadline, so
        running out of time once started is the caller's deadline; before, it is if
        `timeout_is_deadline` says the start timeout was cut to the deadline."""
        start_timeout = max(0.001, start_timeout)
        if timeout is not None:
            timeout = max(0.001, timeout)
        if peer == self._name:
            source = stream_here(self._executor, task, start_timeout, timeout)
        else:
            source = self._remote.stream(peer, address, task, attempt, start_timeout, timeout)
        started = False
        async with aclosing(source) as events:
            async for event in events:
                if isinstance(event, AttemptResult):
                    if event.timed_out and (started or timeout_is_deadline):
                        event = AttemptResult(Verdict.DEADLINE, error=event.error, timed_out=True)
                    yield event
                    return
                started = started or event is STARTED
                yield event


async def run_here(
    executor: Executor, task: tasks_pb2.SubmitTaskRequest, timeout: float
) -> AttemptResult:
    """Run `task` on `executor`, in this process, and say how it ended: how an attempt
    on this node ends, and how an in-memory transport's on another."""
    limit = asyncio.timeout(timeout)
    try:
        async with limit:
            done = await executor.execute(
                task.handler, task.payload, task.idempotency_key, session=task.session
            )
    except (UnknownHandler, BadPayload, AlreadyStreamed) as exc:
        return AttemptResult(Verdict.CLIENT, error=str(exc))
    except Overloaded as exc:
        return AttemptResult(Verdict.FULL, error=f"full: {exc}")
    except TimeoutError as exc:
        if not limit.expired():  # the handler's own TimeoutError: its failure
            return AttemptResult(Verdict.FAILED, error=f"handler failed: TimeoutError: {exc}")
        return AttemptResult(
            Verdict.UNREACHABLE, error=f"timed out after {timeout:.3f}s", timed_out=True
        )
    except Exception as exc:  # the handler's own failure, whatever it raised
        return AttemptResult(Verdict.FAILED, error=f"handler failed: {type(exc).__name__}: {exc}")
    return AttemptResult(Verdict.OK, done.output, duplicate=done.duplicate)


async def stream_here(
    executor: Executor,
    task: tasks_pb2.SubmitTaskRequest,
    start_timeout: float,
    timeout: float | None,
) -> AsyncGenerator[AttemptEvent, None]:
    """Stream `task` on `executor`, in this process: the streamed `run_here`."""
    loop = asyncio.get_running_loop()
    began = loop.time()
    end_by = None if timeout is None else began + timeout
    limit = start_timeout if timeout is None else min(start_timeout, timeout)
    started = False
    result = AttemptResult(Verdict.OK)
    waiting = asyncio.timeout(limit)
    try:
        async with AsyncExitStack() as stack:
            async with waiting:
                chunks = await stack.enter_async_context(executor.streaming(
                    task.handler, task.payload, task.idempotency_key, session=task.session
                ))
            started = True
            yield STARTED
            while True:
                waiting = asyncio.timeout_at(end_by)
                try:
                    async with waiting:
                        chunk = await anext(chunks)
                except StopAsyncIteration:
                    break
                yield chunk
    except (UnknownHandler, BadPayload, AlreadyStreamed) as exc:
        result = AttemptResult(Verdict.CLIENT, error=str(exc))
    except Overloaded as exc:
        result = AttemptResult(Verdict.FULL, error=f"full: {exc}")
    except TimeoutError as exc:
        phase = "streaming" if started else "before it started"
        result = AttemptResult(
            Verdict.UNREACHABLE, error=f"timed out {phase}, after {loop.time() - began:.3f}s",
            timed_out=True,
        ) if waiting.expired() else AttemptResult(  # else the handler's own TimeoutError
            Verdict.FAILED, error=f"handler failed: TimeoutError: {exc}")
    except Exception as exc:  # the handler's own failure, whatever it raised
        result = AttemptResult(
            Verdict.FAILED, error=f"handler failed: {type(exc).__name__}: {exc}"
        )
    yield result
