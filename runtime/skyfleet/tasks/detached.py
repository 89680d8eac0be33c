"""The executor's side of long-running tasks: each launched run goes on in a task of its
own, whoever launched it, and reports to the record's holders (`report`) every
`report_interval` (its heartbeat, with the handler's last progress) and once at its end.

A run is detached from the call that launched it: the supervisor or the accepting agent
may be lost while it runs and the run does not notice. It ends by its handler returning
or raising, by its deadline, by `cancel` (a CancelTask), or by this agent stopping; in
the last case it reports nothing, and the supervisor runs it again elsewhere once this
agent is lost to membership. The run goes through the executor like any task (capacity,
queue, idempotency key), so a relaunch that lands where the key already ran gets the first
run's output instead of running twice.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable

from skyfleet._generated.skyfleet.v1 import tasks_pb2
from skyfleet.tasks.executor import AlreadyStreamed, Executor, Overloaded
from skyfleet.tasks.handlers import BadPayload, UnknownHandler
from skyfleet.tasks.records import (
    CANCELLED,
    DEADLINE_EXCEEDED,
    FAILED,
    MAX_RECORD_BYTES,
    SUCCEEDED,
    report,
)

log = logging.getLogger("skyfleet.tasks")

Report = Callable[[tasks_pb2.TaskRecord, bool], Awaitable[None]]
"""Send a report of a run to its holders; `final`: its last, to be delivered with effort."""


class DetachedRuns:
    def __init__(
        self,
        name: str,
        executor: Executor,
        report_to_holders: Report,
        *,
        report_interval: float,
        wall: Callable[[], float] = time.time,
    ) -> None:
        self._name = name
        self._executor = executor
        self._report = report_to_holders
        self._interval = report_interval
        self._wall = wall
        self._runs: dict[str, asyncio.Task[None]] = {}
        self._states: dict[str, tasks_pb2.TaskRecord] = {}
        """Each run's report as it stands (progress, seq), sent with every heartbeat."""
        self._cancelled: set[str] = set()

    def launch(self, record: tasks_pb2.TaskRecord) -> None:
        """Start `record`'s run (attempt and executor set) here. Raises Overloaded when
        full, UnknownHandler for a handler not served here. A run of this task already
        going on here (a relaunch after a false alarm) is kept, not doubled, and from now on
        reports as the new attempt, or its reports would be dropped as a lost run's."""
        self._executor.registry.get(record.task.handler)
        state = self._states.get(record.task_id)
        if state is not None:
            state.attempt, state.executor, state.seq = record.attempt, record.executor, 0
            state.holders[:] = record.holders
            return
        if not self._executor.has_room():
            raise Overloaded(f"{self._executor.inflight} running, {self._executor.queued} queued")
        state = report(record, seq=record.seq + 1, progress=0.0, note="")
        self._states[record.task_id] = state
        run = asyncio.get_running_loop().create_task(self._run(record, state))
        self._runs[record.task_id] = run
        run.add_done_callback(lambda _: self._runs.pop(record.task_id, None))

    def cancel(self, task_id: str) -> bool:
        run = self._runs.get(task_id)
        if run is None:
            return False
        self._cancelled.add(task_id)
        run.cancel()
        return True

    async def stop(self) -> None:
        """Stop every run without a report: the agent is going away."""
        runs = list(self._runs.values())
        for run in runs:
            run.cancel()
        await asyncio.gather(*runs, return_exceptions=True)

    async def _run(self, record: tasks_pb2.TaskRecord, state: tasks_pb2.TaskRecord) -> None:

        def progress(fraction: float, note: str) -> None:
            state.progress = min(1.0, max(0.0, float(fraction)))
            state.note = str(note)[:256]

        beat = asyncio.get_running_loop().create_task(self._heartbeat(state))
        final: tasks_pb2.TaskRecord | None = None
        task = record.task
        remaining = record.deadline_unix - self._wall() if record.deadline_unix else None
        limit = asyncio.timeout(remaining)
        try:
            async with limit:
                done = await self._executor.execute(
                    task.handler, task.payload, task.idempotency_key, session=task.session,
                    progress=progress,
                )
            room = MAX_RECORD_BYTES - len(task.payload)
            if len(done.output) > room:
                final = report(state, state=FAILED, error=(
                    f"output of {len(done.output)} bytes, over the {room} its record carries"))
            else:
                final = report(state, state=SUCCEEDED, output=done.output, progress=1.0)
        except TimeoutError as exc:
            if not limit.expired():
                final = report(state, state=FAILED, error=(
                    f"handler failed on {self._name}: {type(exc).__name__}: {exc}"))
            else:
                final = report(state, state=DEADLINE_EXCEEDED, error=(
                    f"deadline passed during run {state.attempt} on {self._name}"))
        except (UnknownHandler, BadPayload, AlreadyStreamed) as exc:
            final = report(state, state=FAILED, error=str(exc))
        except Overloaded:
            # Full since it was launched (a burst in between): not the task's failure.
            # No report: the supervisor runs it elsewhere once this run falls silent.
            log.warning("a launched task found no room", extra={"task": record.task_id})
        except asyncio.CancelledError:
            if record.task_id not in self._cancelled:
                raise  # this agent is stopping: the supervisor will run it elsewhere
            final = report(state, state=CANCELLED, error="cancelled by a CancelTask call")
        except Exception as exc:  # the handler's own failure
            final = report(state, state=FAILED,
                           error=f"handler failed on {self._name}: {type(exc).__name__}: {exc}")
        finally:
            beat.cancel()
            self._cancelled.discard(record.task_id)
            self._states.pop(record.task_id, None)
            if final is not None:
                final.seq = state.seq + 1
                try:
                    await self._report(final, True)
                except Exception:
                    log.exception("the outcome of a task could not be reported",
                                  extra={"task": record.task_id})

    async def _heartbeat(self, state: tasks_pb2.TaskRecord) -> None:
        """The first report at once (the holders hear the run began), then one every
        `report_interval` with the last progress."""
        while True:
            state.seq += 1
            beat = tasks_pb2.TaskRecord()
            beat.CopyFrom(state)
            try:
                await self._report(beat, False)
            except Exception:
                log.exception("a heartbeat could not be sent", extra={"task": state.task_id})
            await asyncio.sleep(self._interval)
