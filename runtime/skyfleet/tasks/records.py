"""The record of a long-running task: who keeps it, and which of two copies wins.

Where records live. A task's record is kept by `copies` agents, its holders, chosen by
rendezvous hashing (highest random weight, Thaler and Ravishankar 1998) of the task id
over the members up when it starts: every agent ranks every member for a task id the same
way without asking anyone, a member joining or leaving changes the choice of only the
tasks it ranks among, and the ranking also says who supervises (the highest-ranked live
holder) and where a lost holder's copy goes next (the next-ranked up member). Holders
keep records in memory: a record outlives any `copies - 1` agents dying at once, not a
whole fleet's restart.

Which copy wins (`supersedes`), the rule every holder applies to what it is sent:
- a record that has ended is never changed again (its first outcome stays), so no run
  repeated after a false alarm can hand a client a second outcome;
- an outcome is taken from any run of the task, also one started before the current one
  (a run believed lost that finished after all: its work is done);
- otherwise the later run wins (a higher `attempt`), and within a run the executor's later
  report (a higher `seq`); two runs of the same attempt (two supervisors relaunching at
  once) are told apart by executor name, the one that sorts last kept and the other's
  reports dropped, so that copies converge whichever arrives first.
The holders of a record are the union of what it was sent with, ordered by rank: a holder
added by a repair is added everywhere, and a lost one is skipped rather than removed.

What two copies may still disagree on: two outcomes of two runs reaching two holders in
opposite orders (a run believed lost, and its replacement, ending within the same
moment). Reads take the outcome of the highest-ranked live holder. A holder that missed
an outcome learns it: the supervisor passes on every outcome it takes, asks the holders
before it ends a task itself, and a holder whose copy falls silent asks the others.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Sequence

from skyfleet._generated.skyfleet.v1 import tasks_pb2

MAX_PAYLOAD = 1024 * 1024
"""Largest payload of a long-running task: its record carries it, with its output, in one
gRPC message (4 MiB by default) between agents."""

MAX_RECORD_BYTES = 3584 * 1024
"""Largest payload and output of one record together (3.5 MiB): room under gRPC's limit
for the rest of the record."""

State = tasks_pb2.TaskState

QUEUED = tasks_pb2.TASK_STATE_QUEUED
RUNNING = tasks_pb2.TASK_STATE_RUNNING
SUCCEEDED = tasks_pb2.TASK_STATE_SUCCEEDED
FAILED = tasks_pb2.TASK_STATE_FAILED
DEADLINE_EXCEEDED = tasks_pb2.TASK_STATE_DEADLINE_EXCEEDED
CANCELLED = tasks_pb2.TASK_STATE_CANCELLED
ENDED = frozenset({SUCCEEDED, FAILED, DEADLINE_EXCEEDED, CANCELLED})

STATE_NAMES = {QUEUED: "queued", RUNNING: "running", SUCCEEDED: "succeeded",
               FAILED: "failed", DEADLINE_EXCEEDED: "deadline_exceeded",
               CANCELLED: "cancelled"}
"""How the CLI and logs spell each state."""


def ended(record: tasks_pb2.TaskRecord) -> bool:
    return record.state in ENDED


def rank(task_id: str, member: str) -> int:
    """Rendezvous score of `member` for `task_id`: the same on every agent."""
    digest = hashlib.blake2b(f"{task_id}\x00{member}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big")


def ranked(task_id: str, members: Iterable[str]) -> list[str]:
    """`members` by rank for `task_id`, highest first."""
    return sorted(set(members), key=lambda m: (rank(task_id, m), m), reverse=True)


def holders_for(task_id: str, up: Iterable[str], copies: int) -> list[str]:
    """The `copies` up members that keep a new task's record, supervisor first."""
    return ranked(task_id, up)[:copies]


def supervisor(record: tasks_pb2.TaskRecord, up: Iterable[str]) -> str | None:
    """The highest-ranked of the record's holders that is up, if any."""
    live = set(up)
    return next((h for h in record.holders if h in live), None)


def _run_key(record: tasks_pb2.TaskRecord) -> tuple[int, str, int]:
    return record.attempt, record.executor, record.seq


def supersedes(incoming: tasks_pb2.TaskRecord, stored: tasks_pb2.TaskRecord | None) -> bool:
    """Whether a holder that has `stored` takes `incoming`'s run state (module docstring)."""
    if stored is None:
        return True
    if ended(stored):
        return False
    if ended(incoming):
        return True
    return _run_key(incoming) > _run_key(stored)


def merged(incoming: tasks_pb2.TaskRecord, stored: tasks_pb2.TaskRecord | None
           ) -> tasks_pb2.TaskRecord | None:
    """What a holder keeps once sent `incoming`: None if nothing changes. A report of a
    run (no `task`) changes the run's fields only; the holders are always united."""
    take = supersedes(incoming, stored)
    if stored is None:
        if not incoming.HasField("task"):
            return None  # a report of a task this holder never heard of: nothing to keep
        out = tasks_pb2.TaskRecord()
        out.CopyFrom(incoming)
        out.report_age_ms = 0
        out.holders[:] = ranked(incoming.task_id, incoming.holders)
        return out
    holders = ranked(stored.task_id, [*stored.holders, *incoming.holders])
    if not take and holders == list(stored.holders):
        return None
    out = tasks_pb2.TaskRecord()
    out.CopyFrom(stored)
    if take:
        for field in ("state", "attempt", "executor", "seq", "progress", "note", "output",
                      "error"):
            setattr(out, field, getattr(incoming, field))
    out.holders[:] = holders
    return out


def report(record: tasks_pb2.TaskRecord, **run: object) -> tasks_pb2.TaskRecord:
    """A report of `record`'s run: its id and run fields, with `run`'s changes, and no
    task (holders have it)."""
    out = tasks_pb2.TaskRecord(
        task_id=record.task_id, state=record.state, attempt=record.attempt,
        executor=record.executor, seq=record.seq, progress=record.progress,
        note=record.note, holders=list(record.holders),
    )
    for name, value in run.items():
        setattr(out, name, value)
    return out


def outcome_of(copies: Sequence[tasks_pb2.TaskRecord | None]) -> tasks_pb2.TaskRecord | None:
    """One record from the holders' copies, in rank order: the first that has ended, or
    else the one whose run is latest (module docstring)."""
    known = [c for c in copies if c is not None]
    done = [c for c in known if ended(c)]
    if done:
        return done[0]
    return max(known, key=_run_key, default=None)
