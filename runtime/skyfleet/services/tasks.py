"""`skyfleet.v1.Tasks`: clients submit to any agent; agents forward to the chosen peer."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator

import grpc

from skyfleet._generated.skyfleet.v1 import tasks_pb2, tasks_pb2_grpc
from skyfleet.tasks.executor import Executor, Overloaded
from skyfleet.tasks.handlers import BadPayload, UnknownHandler
from skyfleet.tasks.ledger import Outcome
from skyfleet.tasks.router import Result, Router, TaskRejected
from skyfleet.transport.tls import identity_from_context

STREAM_WINDOW = 256
"""Tasks of one stream in flight at once: past it, the stream reads no further (back
pressure reaches the client through gRPC flow control)."""

_OUTCOME_OF_CODE = {
    grpc.StatusCode.DEADLINE_EXCEEDED: Outcome.DEADLINE_EXCEEDED,
}


def _deadline(context: grpc.aio.ServicerContext) -> float | None:
    remaining = context.time_remaining()
    return None if remaining is None else time.monotonic() + remaining


def _check(req: tasks_pb2.SubmitTaskRequest) -> None:
    if not req.handler:
        raise TaskRejected(grpc.StatusCode.INVALID_ARGUMENT, "handler: required")
    if len(req.idempotency_key) > 256:
        raise TaskRejected(grpc.StatusCode.INVALID_ARGUMENT, "idempotency_key: over 256 chars")


def _response(request_id: str, result: Result) -> tasks_pb2.SubmitTaskResponse:
    return tasks_pb2.SubmitTaskResponse(
        request_id=request_id,
        outcome=int(result.outcome),
        output=result.output,
        error=result.error,
        executed_by=result.executed_by,
        attempts=result.attempts,
        latency_ms=result.latency * 1000.0,
    )


class TasksService(tasks_pb2_grpc.TasksServicer):
    def __init__(self, router: Router, executor: Executor) -> None:
        self._router = router
        self._executor = executor

    async def Submit(  # noqa: N802 - gRPC method name
        self, request: tasks_pb2.SubmitTaskRequest, context: grpc.aio.ServicerContext
    ) -> tasks_pb2.SubmitTaskResponse:
        try:
            _check(request)
            result = await self._router.submit(request, _deadline(context))
        except TaskRejected as exc:
            await context.abort(exc.code, str(exc))
        return _response(request.request_id, result)

    async def SubmitStream(  # noqa: N802 - gRPC method name
        self,
        request_iterator: AsyncIterator[tasks_pb2.SubmitTaskRequest],
        context: grpc.aio.ServicerContext,
    ) -> AsyncIterator[tasks_pb2.SubmitTaskResponse]:
        deadline = _deadline(context)
        done: asyncio.Queue[tasks_pb2.SubmitTaskResponse | None] = asyncio.Queue()
        window = asyncio.Semaphore(STREAM_WINDOW)

        async def one(req: tasks_pb2.SubmitTaskRequest) -> None:
            try:
                _check(req)
                result = await self._router.submit(req, deadline)
                await done.put(_response(req.request_id, result))
            except TaskRejected as exc:
                outcome = _OUTCOME_OF_CODE.get(exc.code, Outcome.REJECTED)
                await done.put(
                    tasks_pb2.SubmitTaskResponse(
                        request_id=req.request_id, outcome=int(outcome), error=str(exc)
                    )
                )
            finally:
                window.release()

        async def read() -> None:
            async with asyncio.TaskGroup() as group:
                async for req in request_iterator:
                    await window.acquire()
                    group.create_task(one(req))
            await done.put(None)

        reader = asyncio.get_running_loop().create_task(read())
        try:
            while (item := await done.get()) is not None:
                yield item
        finally:
            reader.cancel()

    async def Cancel(  # noqa: N802 - gRPC method name
        self, request: tasks_pb2.CancelTaskRequest, context: grpc.aio.ServicerContext
    ) -> tasks_pb2.CancelTaskResponse:
        return tasks_pb2.CancelTaskResponse(cancelled=self._router.cancel(request.idempotency_key))

    async def Execute(  # noqa: N802 - gRPC method name
        self, request: tasks_pb2.ExecuteRequest, context: grpc.aio.ServicerContext
    ) -> tasks_pb2.ExecuteResponse:
        identity = identity_from_context(context)
        if identity.role != "agent":
            await context.abort(
                grpc.StatusCode.PERMISSION_DENIED,
                f"{identity.name}: only agents forward tasks; clients call Submit",
            )
        task = request.task
        try:
            done = await self._executor.execute(task.handler, task.payload, task.idempotency_key)
        except (UnknownHandler, BadPayload) as exc:
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, str(exc))
        except Overloaded as exc:
            await context.abort(grpc.StatusCode.RESOURCE_EXHAUSTED, f"full: {exc}")
        except Exception as exc:  # the handler's own failure
            await context.abort(
                grpc.StatusCode.ABORTED, f"handler failed: {type(exc).__name__}: {exc}"
            )
        return tasks_pb2.ExecuteResponse(
            output=done.output, executed_by=self._router.name, duplicate=done.duplicate
        )
