"""The records of long-running tasks this agent holds, in memory, bounded.

Each record is kept with when this agent last took news of its run (on its own clock:
the silence the supervisor judges by). Ended records are dropped `ttl` seconds after they
ended (looked at on every write and every supervision check), and past `limit` records
the ended ones first stored go first; running ones are never dropped for room (a full
store refuses new ones instead), so a task in flight is not lost to a burst of others.
Waiters on a task are woken when its record changes.
"""

from __future__ import annotations

import asyncio
from collections import OrderedDict
from collections.abc import Callable, Iterator
from dataclasses import dataclass

from skyfleet._generated.skyfleet.v1 import tasks_pb2
from skyfleet.tasks.records import ended, merged


class StoreFull(Exception):
    """Every record kept is still running: no room for another."""


@dataclass(slots=True)
class _Entry:
    record: tasks_pb2.TaskRecord
    heard_at: float
    ended_at: float | None


class RecordStore:
    def __init__(self, *, limit: int, ttl: float, clock: Callable[[], float]) -> None:
        self._limit = limit
        self._ttl = ttl
        self._clock = clock
        self._entries: OrderedDict[str, _Entry] = OrderedDict()
        self._waiters: dict[str, asyncio.Event] = {}

    def __len__(self) -> int:
        return len(self._entries)

    def put(self, incoming: tasks_pb2.TaskRecord) -> bool:
        """Keep what `incoming` changes (`records.merged`); whether anything did. Raises
        StoreFull for a new record when no ended one can make room."""
        now = self._clock()
        self._expire(now)
        entry = self._entries.get(incoming.task_id)
        stored = entry.record if entry else None
        record = merged(incoming, stored)
        if record is None:
            return False
        if entry is None:
            self._make_room()
            entry = _Entry(record, now, None)
            self._entries[record.task_id] = entry
        else:
            old = entry.record
            if (record.attempt, record.seq, record.state) != (old.attempt, old.seq, old.state):
                entry.heard_at = now
            entry.record = record
        if entry.ended_at is None and ended(record):
            entry.ended_at = now
        waiting = self._waiters.pop(record.task_id, None)
        if waiting is not None:
            waiting.set()
        return True

    def get(self, task_id: str) -> tasks_pb2.TaskRecord | None:
        """A copy, with how long ago this agent last heard of its run."""
        entry = self._entries.get(task_id)
        if entry is None:
            return None
        out = tasks_pb2.TaskRecord()
        out.CopyFrom(entry.record)
        age = max(0.0, self._clock() - entry.heard_at) * 1000
        out.report_age_ms = int(min(age, 2**32 - 1))
        return out

    def silent_for(self, task_id: str) -> float:
        entry = self._entries.get(task_id)
        return 0.0 if entry is None else self._clock() - entry.heard_at

    def running(self) -> Iterator[tasks_pb2.TaskRecord]:
        """The records not ended yet (a snapshot: safe to change the store meanwhile);
        the ended ones past their time are dropped first."""
        self._expire(self._clock())
        return iter([e.record for e in self._entries.values() if e.ended_at is None])

    def records(self) -> Iterator[tasks_pb2.TaskRecord]:
        """Every record kept, ended or not (a snapshot)."""
        return iter([e.record for e in self._entries.values()])

    def changed(self, task_id: str) -> asyncio.Event:
        """Set at the next change of `task_id`'s record."""
        return self._waiters.setdefault(task_id, asyncio.Event())

    def _expire(self, now: float) -> None:
        gone = [k for k, e in self._entries.items()
                if e.ended_at is not None and now - e.ended_at > self._ttl]
        for key in gone:
            del self._entries[key]
            self._waiters.pop(key, None)

    def _make_room(self) -> None:
        if len(self._entries) < self._limit:
            return
        for key, entry in self._entries.items():
            if entry.ended_at is not None:
                del self._entries[key]
                self._waiters.pop(key, None)
                return
        raise StoreFull(f"{len(self._entries)} running tasks' records kept, the limit")
