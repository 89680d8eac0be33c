"""`skyfleet.v1.Tasks`: clients submit to any agent; agents forward to the chosen peer."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable
from contextlib import aclosing
from typing import cast

import grpc

from skyfleet._generated.skyfleet.v1 import tasks_pb2, tasks_pb2_grpc
from skyfleet.tasks.errors import Refusal, TaskRejected
from skyfleet.tasks.executor import AlreadyStreamed, Executor, Overloaded
from skyfleet.tasks.handlers import BadPayload, UnknownHandler
from skyfleet.tasks.ledger import Outcome, refused
from skyfleet.tasks.long_tasks import LongTasks, TaskNotFound
from skyfleet.tasks.record_store import StoreFull
from skyfleet.tasks.requests import MAX_NAME_LENGTH
from skyfleet.tasks.router import Result, Router
from skyfleet.transport.tls import require_role

STREAM_WINDOW = 256
"""Tasks of one stream in flight or awaiting delivery at once: past it, the stream reads
no further, so a client that stops reading slows its own submissions (gRPC flow
control) instead of growing this agent's memory."""


WAIT_MARGIN = 0.05
"""Seconds before a WaitTask call's deadline at which it answers with the record as it is."""


STATUS = {
    Refusal.INVALID: grpc.StatusCode.INVALID_ARGUMENT,
    Refusal.DEADLINE: grpc.StatusCode.DEADLINE_EXCEEDED,
    Refusal.UNAVAILABLE: grpc.StatusCode.UNAVAILABLE,
    Refusal.EXHAUSTED: grpc.StatusCode.RESOURCE_EXHAUSTED,
}
"""The gRPC status a caller sees for each refusal: the one place the tasks package's
errors meet gRPC."""


def _response(request_id: str, result: Result) -> tasks_pb2.SubmitTaskResponse:
    return tasks_pb2.SubmitTaskResponse(
        request_id=request_id,
        outcome=_outcome(result.outcome),
        output=result.output,
        error=result.error,
        executed_by=result.executed_by,
        attempts=result.attempts,
        latency_ms=result.latency * 1000.0,
        duplicate=result.duplicate,
    )


async def _check_id(task_id: str, context: grpc.aio.ServicerContext) -> None:
    if not 0 < len(task_id) <= MAX_NAME_LENGTH:
        await context.abort(grpc.StatusCode.INVALID_ARGUMENT,
                            f"task_id: expected 1-{MAX_NAME_LENGTH} characters")


async def _found(
    call: Awaitable[tasks_pb2.TaskRecord], context: grpc.aio.ServicerContext
) -> tasks_pb2.TaskRecord:
    """The record a by-id call answers, or NOT_FOUND naming the id."""
    try:
        return await call
    except TaskNotFound as exc:
        await context.abort(grpc.StatusCode.NOT_FOUND, str(exc))


def _stream_end(request_id: str, result: Result) -> tasks_pb2.TaskStreamEvent:
    return tasks_pb2.TaskStreamEvent(end=tasks_pb2.StreamEnd(
        request_id=request_id,
        outcome=_outcome(result.outcome),
        error=result.error,
        executed_by=result.executed_by,
        attempts=result.attempts,
        chunks=result.chunks,
        bytes=result.size,
        latency_ms=result.latency * 1000.0,
        first_chunk_ms=result.first_chunk * 1000.0,
    ))


def _rejection(request_id: str, exc: TaskRejected) -> tasks_pb2.SubmitTaskResponse:
    """The streamed form of a status code: the stream carries on with the other tasks."""
    error = f"{STATUS[exc.why].name}: {exc}"
    return tasks_pb2.SubmitTaskResponse(
        request_id=request_id, outcome=_outcome(refused(exc.why)), error=error
    )


def _outcome(outcome: Outcome) -> tasks_pb2.TaskOutcome:
    """The proto's number (`Outcome` mirrors it); protoc's stubs name only the enum."""
    return cast(tasks_pb2.TaskOutcome, int(outcome))


class TasksService(tasks_pb2_grpc.TasksServicer):
    def __init__(self, router: Router, executor: Executor, long_tasks: LongTasks) -> None:
        self._router = router
        self._executor = executor
        self._long = long_tasks

    async def Submit(  # noqa: N802 - gRPC method name
        self, request: tasks_pb2.SubmitTaskRequest, context: grpc.aio.ServicerContext
    ) -> tasks_pb2.SubmitTaskResponse:
        try:
            result = await self._router.submit(request, context.time_remaining())
        except TaskRejected as exc:
            await context.abort(STATUS[exc.why], str(exc))
        return _response(request.request_id, result)

    async def SubmitStream(  # noqa: N802 - gRPC method name
        self,
        request_iterator: AsyncIterator[tasks_pb2.SubmitTaskRequest],
        context: grpc.aio.ServicerContext,
    ) -> AsyncIterator[tasks_pb2.SubmitTaskResponse]:
        """Every request gets exactly one response carrying its request_id, in completion
        order. The stream's deadline is every task's deadline."""
        done: asyncio.Queue[tasks_pb2.SubmitTaskResponse | None] = asyncio.Queue()
        window = asyncio.Semaphore(STREAM_WINDOW)

        async def one(req: tasks_pb2.SubmitTaskRequest) -> None:
            try:
                result = await self._router.submit(req, context.time_remaining())
                done.put_nowait(_response(req.request_id, result))
            except TaskRejected as exc:
                done.put_nowait(_rejection(req.request_id, exc))

        async def read() -> None:
            try:
                async with asyncio.TaskGroup() as group:
                    async for req in request_iterator:
                        await window.acquire()
                        group.create_task(one(req))
            finally:
                done.put_nowait(None)

        reader = asyncio.get_running_loop().create_task(read())
        try:
            while (item := await done.get()) is not None:
                window.release()
                yield item
            await reader  # a failed read ends the stream with its error
        finally:
            reader.cancel()

    async def Stream(  # noqa: N802 - gRPC method name
        self, request: tasks_pb2.SubmitTaskRequest, context: grpc.aio.ServicerContext
    ) -> AsyncIterator[tasks_pb2.TaskStreamEvent]:
        try:
            async with aclosing(self._router.stream(request, context.time_remaining())) as items:
                async for item in items:
                    if isinstance(item, bytes):
                        yield tasks_pb2.TaskStreamEvent(chunk=tasks_pb2.OutputChunk(data=item))
                    else:
                        yield _stream_end(request.request_id, item)
        except TaskRejected as exc:  # before the first chunk only
            await context.abort(STATUS[exc.why], str(exc))

    # -------------------------------------------------------------- long-running tasks

    async def Start(  # noqa: N802 - gRPC method name
        self, request: tasks_pb2.SubmitTaskRequest, context: grpc.aio.ServicerContext
    ) -> tasks_pb2.TaskRecord:
        try:
            return await self._long.start(request)
        except TaskRejected as exc:
            await context.abort(STATUS[exc.why], str(exc))

    async def GetTask(  # noqa: N802 - gRPC method name
        self, request: tasks_pb2.TaskRef, context: grpc.aio.ServicerContext
    ) -> tasks_pb2.TaskRecord:
        await _check_id(request.task_id, context)
        return await _found(self._long.get(request.task_id), context)

    async def WaitTask(  # noqa: N802 - gRPC method name
        self, request: tasks_pb2.TaskRef, context: grpc.aio.ServicerContext
    ) -> tasks_pb2.TaskRecord:
        """Answers a little before the call's deadline, so the record reaches the caller."""
        await _check_id(request.task_id, context)
        left = context.time_remaining()
        return await _found(self._long.wait(
            request.task_id, None if left is None else max(0.0, left - WAIT_MARGIN)), context)

    async def CancelTask(  # noqa: N802 - gRPC method name
        self, request: tasks_pb2.TaskRef, context: grpc.aio.ServicerContext
    ) -> tasks_pb2.TaskRecord:
        await _check_id(request.task_id, context)
        return await _found(self._long.cancel(request.task_id), context)

    async def StoreRecord(  # noqa: N802 - gRPC method name
        self, request: tasks_pb2.TaskRecord, context: grpc.aio.ServicerContext
    ) -> tasks_pb2.StoreRecordResponse:
        await require_role(context, "agent", what="call StoreRecord (agents keep task records)")
        await _check_id(request.task_id, context)
        try:
            return tasks_pb2.StoreRecordResponse(stored=self._long.take(request))
        except StoreFull as exc:
            await context.abort(grpc.StatusCode.RESOURCE_EXHAUSTED, str(exc))

    async def FetchRecord(  # noqa: N802 - gRPC method name
        self, request: tasks_pb2.TaskRef, context: grpc.aio.ServicerContext
    ) -> tasks_pb2.TaskRecord:
        await require_role(context, "agent", what="call FetchRecord (clients GetTask)")
        await _check_id(request.task_id, context)
        record = self._long.store.get(request.task_id)
        if record is None:
            await context.abort(grpc.StatusCode.NOT_FOUND, f"task {request.task_id!r}: not here")
        return record

    async def Launch(  # noqa: N802 - gRPC method name
        self, request: tasks_pb2.TaskRecord, context: grpc.aio.ServicerContext
    ) -> tasks_pb2.LaunchResponse:
        await require_role(context, "agent", what="call Launch (clients Start)")
        await _check_id(request.task_id, context)
        try:
            self._long.launch_here(request)
        except UnknownHandler as exc:
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, str(exc))
        except Overloaded as exc:
            await context.abort(grpc.StatusCode.RESOURCE_EXHAUSTED, f"full: {exc}")
        return tasks_pb2.LaunchResponse(executor=self._router.name)

    async def Cancel(  # noqa: N802 - gRPC method name
        self, request: tasks_pb2.CancelTaskRequest, context: grpc.aio.ServicerContext
    ) -> tasks_pb2.CancelTaskResponse:
        return tasks_pb2.CancelTaskResponse(cancelled=self._router.cancel(request.idempotency_key))

    async def Execute(  # noqa: N802 - gRPC method name
        self, request: tasks_pb2.ExecuteRequest, context: grpc.aio.ServicerContext
    ) -> tasks_pb2.ExecuteResponse:
        await require_role(context, "agent",
                           what="call Execute (agents forward tasks to agents; clients Submit)")
        task = request.task
        try:
            done = await self._executor.execute(
                task.handler, task.payload, task.idempotency_key, session=task.session
            )
        except (UnknownHandler, BadPayload, AlreadyStreamed) as exc:
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

    async def ExecuteStream(  # noqa: N802 - gRPC method name
        self, request: tasks_pb2.ExecuteRequest, context: grpc.aio.ServicerContext
    ) -> AsyncIterator[tasks_pb2.ExecuteStreamEvent]:
        await require_role(context, "agent",
                           what="call ExecuteStream (agents forward tasks to agents; clients "
                                "Stream)")
        task = request.task
        try:
            async with self._executor.streaming(
                task.handler, task.payload, task.idempotency_key, session=task.session
            ) as chunks:
                yield tasks_pb2.ExecuteStreamEvent(
                    started=tasks_pb2.ExecuteStarted(executed_by=self._router.name)
                )
                async for chunk in chunks:
                    yield tasks_pb2.ExecuteStreamEvent(chunk=tasks_pb2.OutputChunk(data=chunk))
        except (UnknownHandler, BadPayload, AlreadyStreamed) as exc:
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, str(exc))
        except Overloaded as exc:
            await context.abort(grpc.StatusCode.RESOURCE_EXHAUSTED, f"full: {exc}")
        except Exception as exc:  # the handler's own failure
            await context.abort(
                grpc.StatusCode.ABORTED, f"handler failed: {type(exc).__name__}: {exc}"
            )
