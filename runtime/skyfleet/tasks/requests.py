"""What a submitted task must look like, and the error for a task that cannot run.

Checked by the router after the task is counted as submitted, so a malformed request is
still a task with exactly one outcome (rejected) in the ledger, not one that vanished.
"""

from __future__ import annotations

from skyfleet._generated.skyfleet.v1 import tasks_pb2
from skyfleet.tasks.errors import Refusal, TaskRejected

MAX_NAME_LENGTH = 256
"""Longest handler, kind, idempotency key, request id, session or constraint entry
accepted: they are map keys, hash keys and log fields, never documents."""


def _invalid(message: str) -> TaskRejected:
    return TaskRejected(Refusal.INVALID, message)


def check_request(req: tasks_pb2.SubmitTaskRequest) -> None:
    """Raise TaskRejected (INVALID) naming the first bad field."""
    if not req.handler:
        raise _invalid("handler: required")
    for name in ("handler", "kind", "idempotency_key", "request_id", "session"):
        if len(getattr(req, name)) > MAX_NAME_LENGTH:
            raise _invalid(f"{name}: over {MAX_NAME_LENGTH} characters")
    for name in ("clouds", "regions"):
        for i, value in enumerate(getattr(req.constraints, name)):
            if not value or len(value) > MAX_NAME_LENGTH:
                raise _invalid(
                    f"constraints.{name}[{i}]: expected a name of 1-{MAX_NAME_LENGTH} characters"
                )
