"""`skyfleet task submit HANDLER`: run one task in the fleet through one agent (a unary
`Tasks.Submit`) and print its output, as `pulumi` or `kubectl run` would: the bytes as
they are by default, or one JSON document with `-o json`; exit 0 only if it succeeded.
`skyfleet task stream HANDLER` runs it as a stream (`Tasks.Stream`) and prints each chunk
the moment it arrives, as `kubectl logs -f` does; a stream that ends badly says on
standard error how many chunks came before it ended. `skyfleet task submit HANDLER
--detach` starts it as a long-running task instead and prints its id (`long_task`).

It calls with a client certificate: the role made to submit tasks and read, nothing
more, so a script that submits tasks holds no key that could make an agent leave.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from skyfleet.cli import long_task
from skyfleet.cli.connection import Connection, add_connection_args
from skyfleet.cli.main import CliError, UsageError
from skyfleet.cli.output import JSON, add_output_arg, encoded, print_json, write_bytes

if TYPE_CHECKING:
    from skyfleet._generated.skyfleet.v1.tasks_pb2 import SubmitTaskResponse
    from skyfleet.client import AgentClient, AgentError

SUCCEEDED = "succeeded"

SUBMIT_SHAPE = """\
  {"outcome": succeeded|failed|deadline_exceeded|rejected,
   "executed_by": NAME of the agent that ran it ("" if none did),
   "attempts": executors tried (more than 1: it failed over),
   "latency_ms": as the routing agent measured it (null: no agent answered with one),
   "duplicate": true if the executor had run this --key before (its first output),
   "output": the output, "output_encoding": "text" (it is UTF-8) or "base64",
   "error": why it did not succeed ("" if it did)}
The call's own failures are outcomes too: its deadline, deadline_exceeded; any other
status (no eligible peer, fleet full, invalid task, agent out of reach), rejected."""

STREAM_SHAPE = """  one JSON document per line, as the events come:
  {"chunk": the chunk, "encoding": "text" (UTF-8) or "base64"}   (any number of them)
  {"end": {"outcome": as for submit, "executed_by": NAME, "attempts": N,
           "chunks": chunks delivered, "bytes": their bytes, "latency_ms": ...,
           "first_chunk_ms": submission to the first chunk, "error": ""}}
A call refused before its first chunk prints only the end, with "chunks": 0."""


def register(sub: argparse._SubParsersAction) -> None:
    task = sub.add_parser("task", help="run tasks in the fleet")
    actions = task.add_subparsers(dest="task_command", required=True, metavar="ACTION")
    submit = actions.add_parser(
        "submit",
        help="run one task through an agent and print its output (client identity)",
        description="Run one task through an agent and print its output.\n--timeout is "
        "the task's deadline: the agent forwards the time left with the task.\nWith "
        "--detach it runs on after the command returns: --timeout is then the Start "
        "call's, --deadline the task's.",
    )
    _task_args(submit)
    long_task.add_detach_args(submit)
    add_output_arg(submit, shape=SUBMIT_SHAPE + "\nWith --detach, the task's record, as "
                   "`task status -o json` prints it:\n" + long_task.TASK_SHAPE, human="raw")
    submit.set_defaults(func=_submit)
    stream = actions.add_parser(
        "stream",
        help="run one task through an agent and print its output as it comes (client "
        "identity)",
        description="Run one task through an agent and print each chunk of its output as "
        "it comes.\n--timeout is the task's deadline; interrupting the command hangs up, "
        "which cancels the task where it runs.",
    )
    _task_args(stream)
    add_output_arg(stream, shape=STREAM_SHAPE, human="raw")
    stream.set_defaults(func=_stream)
    long_task.register(actions)


def _task_args(submit: argparse.ArgumentParser) -> None:
    submit.add_argument("handler", metavar="HANDLER", help="a handler the agents serve: echo")
    payload = submit.add_mutually_exclusive_group()
    payload.add_argument("--payload", metavar="TEXT", help="the payload, as text")
    payload.add_argument("--payload-file", type=Path, metavar="PATH",
                         help="the payload, the file's bytes; - reads standard input")
    submit.add_argument("--kind", default="", metavar="K",
                        help="the policy's routing rule to follow (default: HANDLER)")
    submit.add_argument("--key", default="", metavar="IDEMPOTENCY_KEY",
                        help="runs at most once per executor with this key, however often "
                        "it is submitted (default: a new key)")
    submit.add_argument("--cloud", action="append", default=[], metavar="C",
                        help="run it only in this cloud (repeatable; default: any the "
                        "policy allows)")
    submit.add_argument("--region", action="append", default=[], metavar="R",
                        help="run it only in this region (repeatable)")
    submit.add_argument("--session", default="", metavar="S",
                        help="tasks of one session run on the same agent while it serves "
                        "them, if the policy's sessions.affinity asks for it")
    add_connection_args(submit, timeout=30.0, role="client")


@dataclass(frozen=True, slots=True)
class TaskResult:
    """A task's one outcome as this command reports it (`SUBMIT_SHAPE`)."""

    outcome: str
    output: bytes = b""
    error: str = ""
    executed_by: str = ""
    attempts: int = 0
    latency_ms: float | None = None
    duplicate: bool = False

    @classmethod
    def of_reply(cls, reply: SubmitTaskResponse) -> TaskResult:
        from skyfleet.client import outcome_name

        return cls(
            outcome=outcome_name(reply.outcome),
            output=reply.output,
            error=reply.error,
            executed_by=reply.executed_by,
            attempts=reply.attempts,
            latency_ms=reply.latency_ms,
            duplicate=reply.duplicate,
        )

    @classmethod
    def of_status(cls, exc: AgentError) -> TaskResult:
        """The outcome of a call that ended with a status instead of an answer."""
        import grpc

        deadline = exc.code == grpc.StatusCode.DEADLINE_EXCEEDED
        return cls(outcome="deadline_exceeded" if deadline else "rejected", error=str(exc))

    def json(self) -> dict[str, Any]:
        output, encoding = encoded(self.output)
        return {
            "outcome": self.outcome,
            "executed_by": self.executed_by,
            "attempts": self.attempts,
            "latency_ms": self.latency_ms,
            "duplicate": self.duplicate,
            "output": output,
            "output_encoding": encoding,
            "error": self.error,
        }


def _payload(args: argparse.Namespace) -> bytes:
    if args.payload is not None:
        return os.fsencode(args.payload)  # the argument's own bytes, whatever their encoding
    path: Path | None = args.payload_file
    if path is None:
        return b""
    if str(path) == "-":
        return sys.stdin.buffer.read()
    try:
        return path.read_bytes()
    except OSError as exc:
        raise CliError(f"--payload-file {path}: cannot read ({exc.strerror})") from None


def _submit(args: argparse.Namespace) -> int:
    if args.deadline is not None and not args.detach:
        raise UsageError("--deadline: only with --detach (a task run at once has "
                         "--timeout as its deadline)")
    conn = Connection.of(args)
    payload = _payload(args)
    if args.detach:
        return long_task.detach(args, conn, payload)

    async def rpc(client: AgentClient) -> TaskResult:
        from skyfleet.client import AgentError

        try:
            reply = await client.submit(
                args.handler, payload, timeout=conn.timeout, idempotency_key=args.key,
                kind=args.kind, clouds=tuple(args.cloud), regions=tuple(args.region),
                session=args.session)
        except AgentError as exc:
            return TaskResult.of_status(exc)
        return TaskResult.of_reply(reply)

    result = conn.call(rpc)
    if args.output == JSON:
        print_json(result.json())
    elif result.outcome == SUCCEEDED:
        write_bytes(result.output)
    if result.outcome != SUCCEEDED:
        raise CliError(f"task {result.outcome}: {' '.join(result.error.splitlines())}")
    return 0


def _stream(args: argparse.Namespace) -> int:
    conn = Connection.of(args)
    payload = _payload(args)
    as_json = args.output == JSON

    def chunk(data: bytes) -> None:
        if as_json:
            text, encoding = encoded(data)
            print(json.dumps({"chunk": text, "encoding": encoding}, ensure_ascii=False),
                  flush=True)
        else:
            write_bytes(data)

    async def rpc(client: AgentClient) -> dict[str, Any]:
        from skyfleet.client import AgentError, outcome_name

        delivered = size = 0
        try:
            async for event in client.stream(
                args.handler, payload, timeout=conn.timeout, idempotency_key=args.key,
                kind=args.kind, clouds=tuple(args.cloud), regions=tuple(args.region),
                session=args.session,
            ):
                if event.WhichOneof("event") == "chunk":
                    delivered += 1
                    size += len(event.chunk.data)
                    chunk(event.chunk.data)
                    continue
                end = event.end
                return {
                    "outcome": outcome_name(end.outcome),
                    "executed_by": end.executed_by, "attempts": end.attempts,
                    "chunks": end.chunks, "bytes": end.bytes, "latency_ms": end.latency_ms,
                    "first_chunk_ms": end.first_chunk_ms, "error": end.error,
                }
        except AgentError as exc:
            outcome = TaskResult.of_status(exc).outcome
            error = str(exc)
        else:
            outcome, error = "failed", "the stream ended without its end event"
        return {"outcome": outcome, "executed_by": "", "attempts": 0, "chunks": delivered,
                "bytes": size, "latency_ms": None, "first_chunk_ms": None, "error": error}

    end = conn.call(rpc)
    if as_json:
        print(json.dumps({"end": end}, ensure_ascii=False))
    if end["outcome"] != SUCCEEDED:
        error = " ".join(str(end["error"]).splitlines())
        raise CliError(f"task {end['outcome']} after {end['chunks']} chunk(s) "
                       f"({end['bytes']} bytes): {error}")
    return 0
