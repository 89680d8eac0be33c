"""What the supervisor of a long-running task does on each check: the rule, pure.

The supervisor is the highest-ranked live holder of the task's record
(`skyfleet.tasks.records`); every holder runs this check on every record it keeps and acts
only where it is the supervisor, so when the supervisor is lost the next holder takes
over on its next check, with nothing to hand over. Once a run has been silent for
`silence`, a supervisor that membership only suspects is passed over too: it is most
likely the lost executor itself (when one agent is both), and waiting for membership to
confirm its death would add the whole suspicion time to the task's. (A supervisor only
suspected wrongly, of a run silent for another reason, may then relaunch it as well: two
runs of the same attempt, of which the records keep one, by executor name, and drop the
other's reports; it runs on unreported until it ends.)

| the record, as the supervisor holds it              | action                         |
|-----------------------------------------------------|--------------------------------|
| ended                                               | none                           |
| past its deadline                                   | `Finish(DEADLINE_EXCEEDED)`    |
| running on an executor that is not up (dead, left,  | `Relaunch` (attempt + 1)       |
| unknown), or silent for longer than `silence`       |                                |
| queued (its first run never reported) for `silence` | `Relaunch`                     |
| a relaunch due after `max_runs` runs                | `Finish(FAILED)`, naming them  |
| fewer than `copies` holders up                      | `Repair`: the next-ranked up   |
|                                                     | members become holders too     |

A run's reports come every `report_interval` from its executor; `silence` (3 of them
missed) is how long a live but silent executor (a partition, a stopped process) is
trusted before its task runs elsewhere. The silence is measured on the supervisor's own
clock from the last report it took, so no two clocks are compared; the deadline is wall
clock (`deadline_unix`), good enough for deadlines of minutes to days.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass

from skyfleet._generated.skyfleet.v1 import tasks_pb2
from skyfleet.tasks.records import (
    DEADLINE_EXCEEDED,
    FAILED,
    QUEUED,
    ended,
    ranked,
    supervisor,
)


@dataclass(frozen=True, slots=True)
class Relaunch:
    reason: str


@dataclass(frozen=True, slots=True)
class Finish:
    state: tasks_pb2.TaskState
    error: str


@dataclass(frozen=True, slots=True)
class Repair:
    add: tuple[str, ...]
    """Up members that become holders, by rank."""


Action = Relaunch | Finish | Repair


@dataclass(frozen=True, slots=True)
class SupervisionRules:
    copies: int
    silence: float
    max_runs: int


def decide(
    record: tasks_pb2.TaskRecord,
    *,
    me: str,
    up: Collection[str],
    alive: Collection[str] | None = None,
    now_unix: float,
    silent_for: float,
    rules: SupervisionRules,
) -> Sequence[Action]:
    """The actions `me` takes for `record` now (none unless it supervises it). `up`:
    members alive or suspect; `alive` (default: `up`): those not suspected."""
    leaders = alive if alive is not None and silent_for > rules.silence else up
    if ended(record) or supervisor(record, leaders) != me:
        return ()
    actions: list[Action] = []
    live = [h for h in record.holders if h in up]
    if len(live) < rules.copies:
        spare = [m for m in ranked(record.task_id, up) if m not in record.holders]
        add = tuple(spare[: rules.copies - len(live)])
        if add:
            actions.append(Repair(add))
    if record.deadline_unix and now_unix >= record.deadline_unix:
        where = f" on {record.executor}" if record.executor else ""
        return [*actions, Finish(DEADLINE_EXCEEDED,
                                 f"deadline passed during run {record.attempt}{where}")]
    reason = _lost(record, up, silent_for, rules.silence)
    if reason:
        if record.attempt >= rules.max_runs:
            return [*actions, Finish(FAILED, f"{record.attempt} runs lost; the last: {reason}")]
        actions.append(Relaunch(reason))
    return actions


def _lost(record: tasks_pb2.TaskRecord, up: Collection[str], silent_for: float,
          silence: float) -> str:
    """Why the record's run is no longer going on, or "" if it may be."""
    if record.state == QUEUED:
        return f"not started for {silent_for:.1f}s" if silent_for > silence else ""
    if record.executor not in up:
        return f"its executor {record.executor} is lost"
    if silent_for > silence:
        return f"no report from {record.executor} for {silent_for:.1f}s"
    return ""
