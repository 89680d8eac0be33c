"""Long-running tasks from the command line: `skyfleet task submit HANDLER --detach` starts
one (`Tasks.Start`) and prints its id, as `docker run -d` does, so that a script goes on
with `id=$(skyfleet task submit ... --detach)`; `task status ID` shows its record (a query:
exit 0 whatever the state), `task wait ID` waits for its end as `kubectl wait` does (30 s
by default, then exit 1 saying how far it got) and prints its output as `task submit`
would, and `task cancel ID` ends it as `kubectl delete` does (exit 0 once nothing runs,
also if it had ended already).

Any agent answers for any task: it asks the agents that hold the record. An id is all it
takes to read or cancel a task; the commands call with a client certificate, as `task
submit` does.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import TYPE_CHECKING, Any, TypeVar

from skyfleet.cli.connection import Connection, add_connection_args, positive_seconds
from skyfleet.cli.main import CliError
from skyfleet.cli.output import JSON, add_output_arg, encoded, print_json, write_bytes
from skyfleet.cli.table import print_table

if TYPE_CHECKING:
    from skyfleet._generated.skyfleet.v1.tasks_pb2 import TaskRecord
    from skyfleet.client import AgentClient

T = TypeVar("T")

TASK_SHAPE = """\
  {"task_id": ID,
   "state": queued|running|succeeded|failed|deadline_exceeded|cancelled,
   "handler": HANDLER, "kind": its routing rule ("": the handler's),
   "key": its idempotency key, the same on every run,
   "attempt": runs started so far (more than 1: it was run again elsewhere),
   "executor": NAME of the agent running (or that ran) the latest run ("": none yet),
   "progress": 0-1, as the handler last reported, "note": its last progress note,
   "output": the output once succeeded ("" before), "output_encoding": "text" or "base64",
   "error": why, once failed, deadline_exceeded or cancelled ("" otherwise),
   "holders": [NAME, ...] the agents keeping its record, its supervisor first,
   "accepted_by": NAME, "accepted_unix": when (seconds since the epoch, that agent's clock),
   "deadline_unix": when it ends deadline_exceeded (null: no deadline),
   "report_age_ms": since the answering holder last heard from the run}"""

WAIT_TIMEOUT = 30.0
"""`task wait`'s default --timeout, kubectl wait's: a script that means to wait for hours
says so, and one that forgot a task that hangs is not stuck forever."""

WAIT_CALL = 60.0
"""The longest one WaitTask call of a wait may take: a longer wait is a series of calls,
so that no call outlives the idle timeout of a proxy or load balancer on the way."""

HEADERS = ("ID", "STATE", "HANDLER", "ATTEMPT", "EXECUTOR", "PROGRESS", "HOLDERS",
           "ACCEPTED BY", "AGE", "DEADLINE IN", "REPORT AGE", "NOTE", "ERROR")
"""`task status`'s columns: one token per cell up to the free text (NOTE, ERROR), last."""


def register(actions: argparse._SubParsersAction) -> None:
    """`task status|wait|cancel` (`task submit --detach` is `task.py`'s)."""
    status = actions.add_parser(
        "status", help="a long-running task's record (client identity)",
        description="Show a long-running task's record, as the agents that hold it have "
        "it.\nExit 0 whatever its state; 1 if no live agent holds it.")
    _id_arg(status)
    add_output_arg(status, shape=TASK_SHAPE)
    add_connection_args(status, timeout=10.0, role="client")
    status.set_defaults(func=_status)

    wait = actions.add_parser(
        "wait", help="wait for a long-running task to end and print its output (client "
        "identity)",
        description="Wait until a long-running task ends and print its output as `task "
        "submit` does; exit 0 only if it succeeded.\nAs `kubectl wait`: exit 1 if it is "
        "still running when --timeout passes (default 30 s; pass more for a long task).")
    _id_arg(wait)
    add_output_arg(wait, shape=TASK_SHAPE + "\n(its record when the wait ends: also when "
                   "it ended otherwise, or still runs)", human="raw")
    add_connection_args(wait, timeout=WAIT_TIMEOUT, role="client",
                        timeout_help="give up waiting after this long (default %(default)g)")
    wait.set_defaults(func=_wait)

    cancel = actions.add_parser(
        "cancel", help="cancel a long-running task (client identity)",
        description="Cancel a long-running task and print its state: cancelled, or how "
        "it had ended already (then also said on stderr).\nExit 0 either way: nothing of "
        "it runs any more.")
    _id_arg(cancel)
    add_output_arg(cancel, shape=TASK_SHAPE, human="state")
    add_connection_args(cancel, timeout=10.0, role="client")
    cancel.set_defaults(func=_cancel)


def _id_arg(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("task_id", metavar="TASK_ID",
                        help="the id `task submit --detach` printed")


def add_detach_args(submit: argparse.ArgumentParser) -> None:
    submit.add_argument("--detach", "-d", action="store_true",
                        help="start it as a long-running task and print its id at once "
                        "(follow it with `task status|wait|cancel ID`)")
    submit.add_argument("--deadline", type=positive_seconds, metavar="SECONDS",
                        help="with --detach: the task's deadline, from its acceptance "
                        "(default: none)")


def state_name(record: TaskRecord) -> str:
    from skyfleet.tasks.records import STATE_NAMES

    return STATE_NAMES.get(record.state, "unspecified")


def record_json(record: TaskRecord) -> dict[str, Any]:
    """The record as `TASK_SHAPE` says."""
    output, encoding = encoded(record.output)
    return {
        "task_id": record.task_id,
        "state": state_name(record),
        "handler": record.task.handler,
        "kind": record.task.kind,
        "key": record.task.idempotency_key,
        "attempt": record.attempt,
        "executor": record.executor,
        "progress": record.progress,
        "note": record.note,
        "output": output,
        "output_encoding": encoding,
        "error": record.error,
        "holders": list(record.holders),
        "accepted_by": record.accepted_by,
        "accepted_unix": record.accepted_unix,
        "deadline_unix": record.deadline_unix or None,
        "report_age_ms": record.report_age_ms,
    }


def age(seconds: float) -> str:
    """A duration as kubectl prints ages: exact while short, coarser as it grows."""
    s = max(0, int(seconds))
    m, h = s // 60, s // 3600
    if s < 120:
        return f"{s}s"
    if m < 10:
        return f"{m}m{s % 60}s"
    if m < 180:
        return f"{m}m"
    if h < 8:
        return f"{h}h{m % 60}m"
    if h < 48:
        return f"{h}h"
    return f"{h // 24}d{h % 24}h" if h < 192 else f"{h // 24}d"


def record_row(record: TaskRecord, now: float) -> Sequence[str]:
    """`HEADERS`' cells; `now` is this host's wall clock (the fleet's agree to ~ms). A
    task that has ended has no deadline left to show."""
    if not record.deadline_unix or _ended(record):
        deadline = "-"
    elif record.deadline_unix > now:
        deadline = age(record.deadline_unix - now)
    else:
        deadline = "passed"
    reported = record.report_age_ms / 1000
    return (
        record.task_id, state_name(record), record.task.handler, str(record.attempt),
        record.executor or "-", f"{record.progress:.0%}", ",".join(record.holders) or "-",
        record.accepted_by or "-", age(now - record.accepted_unix), deadline,
        f"{reported:.1f}s" if reported < 10 else age(reported),
        " ".join(record.note.splitlines()) or "-", " ".join(record.error.splitlines()) or "-",
    )


def _ended(record: TaskRecord) -> bool:
    from skyfleet.tasks.records import ended

    return ended(record)


def _succeeded(record: TaskRecord) -> bool:
    from skyfleet.tasks.records import SUCCEEDED

    return record.state == SUCCEEDED


def _about(conn: Connection, task_id: str, rpc: Callable[[AgentClient], Awaitable[T]]) -> T:
    """`conn.call(rpc)`, a failure of it one line naming the task."""
    from skyfleet.client import AgentError

    async def call(client: AgentClient) -> T:
        import grpc

        try:
            return await rpc(client)
        except AgentError as exc:
            if exc.code == grpc.StatusCode.NOT_FOUND:
                raise CliError(f"task {task_id}: not found: no live agent holds its record "
                               "(an unknown id, an expired record, or every holder lost)"
                               ) from None
            raise CliError(f"task {task_id}: {exc}") from None

    return conn.call(call)


def detach(args: argparse.Namespace, conn: Connection, payload: bytes) -> int:
    """`task submit --detach`: Start, then print the id (or the record with -o json)."""

    async def rpc(client: AgentClient) -> TaskRecord:
        from skyfleet.cli.task import TaskResult
        from skyfleet.client import AgentError

        try:
            return await client.start(
                args.handler, payload, deadline=args.deadline or 0.0, timeout=conn.timeout,
                idempotency_key=args.key, kind=args.kind, clouds=tuple(args.cloud),
                regions=tuple(args.region), session=args.session)
        except AgentError as exc:
            refused = TaskResult.of_status(exc)
            raise CliError(f"task {refused.outcome}: {refused.error}") from None

    record = conn.call(rpc)
    if args.output == JSON:
        print_json(record_json(record))
    else:
        print(record.task_id)
    return 0


def _status(args: argparse.Namespace) -> int:
    conn = Connection.of(args)
    record = _about(conn, args.task_id,
                    lambda client: client.task(args.task_id, timeout=conn.timeout))
    if args.output == JSON:
        print_json(record_json(record))
    else:
        print_table(HEADERS, [record_row(record, time.time())],
                    right={"ATTEMPT", "PROGRESS", "AGE", "DEADLINE IN", "REPORT AGE"})
    return 0


async def wait_for_end(
    client: AgentClient, task_id: str, timeout: float, *, per_call: float = WAIT_CALL
) -> TaskRecord | None:
    """The record once the task has ended, or the last one seen when `timeout` seconds
    have passed (None: no call answered in time), in WaitTask calls of at most
    `per_call` seconds. A call that ran out of time before its answer came is asked again
    while time is left; any other failure is the wait's."""
    import grpc

    from skyfleet.client import AgentError

    loop = asyncio.get_running_loop()
    until = loop.time() + timeout
    record = None
    while (left := until - loop.time()) > 0:
        try:
            record = await client.wait_task(task_id, timeout=min(left, per_call))
        except AgentError as exc:
            if exc.code != grpc.StatusCode.DEADLINE_EXCEEDED:
                raise
            continue
        if _ended(record):
            break
    return record


def _wait(args: argparse.Namespace) -> int:
    conn = Connection.of(args)
    record = _about(conn, args.task_id,
                    lambda client: wait_for_end(client, args.task_id, conn.timeout))
    if record is None:
        raise CliError(f"task {args.task_id}: {conn.agent} did not answer within "
                       f"{conn.timeout:g}s")
    if args.output == JSON:
        print_json(record_json(record))
    elif _succeeded(record):
        write_bytes(record.output)
    state = state_name(record)
    if not _ended(record):
        raise CliError(f"task {args.task_id} still {state} after {conn.timeout:g}s")
    if not _succeeded(record):
        raise CliError(f"task {state}: {' '.join(record.error.splitlines())}")
    return 0


def _cancel(args: argparse.Namespace) -> int:
    """Exit 0 also for a task that had ended before, as `kubectl delete` of a Job that
    has completed succeeds: what the caller asks for, that nothing of it runs any more,
    holds either way. Only a task still running after the call is a failure."""
    from skyfleet.tasks.records import CANCELLED

    conn = Connection.of(args)
    record = _about(conn, args.task_id,
                    lambda client: client.cancel_task(args.task_id, timeout=conn.timeout))
    state = state_name(record)
    if args.output == JSON:
        print_json(record_json(record))
    else:
        print(state)
    if not _ended(record):
        raise CliError(f"task {args.task_id} still {state}: its holders did not take the "
                       "cancellation; cancel it again")
    if record.state != CANCELLED:
        print(f"skyfleet: task {args.task_id} had ended {state} already: nothing to cancel",
              file=sys.stderr)
    return 0
