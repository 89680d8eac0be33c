"""The rules of long-running tasks' records, as tables: which copy a holder keeps, who
holds and supervises, and what a supervisor does on a check."""

from __future__ import annotations

import random

import pytest

from skyfleet._generated.skyfleet.v1 import tasks_pb2
from skyfleet.tasks.records import (
    CANCELLED,
    DEADLINE_EXCEEDED,
    FAILED,
    QUEUED,
    RUNNING,
    SUCCEEDED,
    holders_for,
    merged,
    outcome_of,
    ranked,
    report,
    supersedes,
    supervisor,
)
from skyfleet.tasks.supervision import Finish, Relaunch, Repair, SupervisionRules, decide

MEMBERS = [f"n{i}" for i in range(8)]


def rec(state: int = RUNNING, attempt: int = 1, seq: int = 0, executor: str = "n5",
        **fields: object) -> tasks_pb2.TaskRecord:
    record = tasks_pb2.TaskRecord(
        task_id="t1", task=tasks_pb2.SubmitTaskRequest(handler="h", idempotency_key="t1"),
        state=state, attempt=attempt, seq=seq, executor=executor,  # type: ignore[arg-type]
        holders=holders_for("t1", MEMBERS, 3),
    )
    for name, value in fields.items():
        setattr(record, name, value)
    return record


# (stored, incoming, kept): whether a holder takes the incoming run state
SUPERSEDES = [
    (None, rec(), True),
    (rec(seq=3), rec(seq=4), True),                    # the executor's next report
    (rec(seq=4), rec(seq=3), False),                   # a late, older report
    (rec(attempt=1, seq=9), rec(attempt=2, seq=0), True),   # a relaunch
    (rec(attempt=2), rec(attempt=1, seq=99), False),   # a lost run's heartbeat
    (rec(attempt=2), rec(SUCCEEDED, attempt=1), True),  # ...but its outcome counts
    (rec(SUCCEEDED), rec(FAILED, attempt=2), False),   # an ended record stays
    (rec(CANCELLED), rec(SUCCEEDED), False),
    (rec(attempt=1, executor="n2"), rec(attempt=1, executor="n3"), True),  # tie: name
    (rec(attempt=1, executor="n3"), rec(attempt=1, executor="n2"), False),
    (rec(QUEUED, attempt=0, executor=""), rec(attempt=1), True),
]


@pytest.mark.parametrize(("stored", "incoming", "kept"), SUPERSEDES)
def test_which_copy_a_holder_keeps(stored, incoming, kept):
    assert supersedes(incoming, stored) is kept


def test_copies_converge_whatever_order_the_updates_come_in():
    updates = [rec(seq=s) for s in range(4)] + [rec(attempt=2, executor="n1", seq=s)
                                                for s in range(3)]
    updates += [rec(attempt=1, seq=7), rec(SUCCEEDED, attempt=2, executor="n1", seq=3,
                                           output=b"done")]
    finals = set()
    for seed in range(30):
        order = list(updates)
        random.Random(seed).shuffle(order)
        held = None
        for update in order:
            held = merged(update, held) or held
        assert held is not None
        finals.add((held.state, held.attempt, held.output))
    # One outcome among the updates: every order ends with it.
    assert finals == {(SUCCEEDED, 2, b"done")}


def test_a_report_changes_the_run_only_and_holders_are_united():
    stored = rec(seq=1)
    beat = report(stored, seq=2, progress=0.5, note="half")
    assert not beat.HasField("task")
    kept = merged(beat, stored)
    assert kept is not None and kept.task.handler == "h"
    assert (kept.seq, kept.progress, kept.note) == (2, 0.5, "half")
    wider = rec(seq=1)
    wider.holders.append("n7")
    united = merged(wider, kept)
    assert united is not None and set(united.holders) == {*stored.holders, "n7"}
    assert list(united.holders) == ranked("t1", united.holders)
    assert merged(report(stored, seq=5), None) is None  # a report of an unknown task


def test_holders_are_the_top_ranked_up_members_and_the_supervisor_the_first_alive():
    holders = holders_for("t1", MEMBERS, 3)
    assert holders == ranked("t1", MEMBERS)[:3]
    assert holders_for("t1", reversed(MEMBERS), 3) == holders  # any agent, same answer
    record = rec()
    assert supervisor(record, MEMBERS) == holders[0]
    assert supervisor(record, [m for m in MEMBERS if m != holders[0]]) == holders[1]
    assert supervisor(record, [m for m in MEMBERS if m not in holders]) is None
    # One member more changes the holders of few tasks.
    ids = [f"t{i}" for i in range(400)]
    moved = sum(holders_for(i, MEMBERS, 3) != holders_for(i, [*MEMBERS, "n8"], 3) for i in ids)
    assert moved < 400 * 3 / 9 * 1.5  # each of 3 places goes to n8 with chance 1/9


def test_a_read_takes_the_first_ended_copy_else_the_latest_run():
    running, later = rec(seq=2), rec(attempt=2)
    assert outcome_of([None, running, later]) is later
    done = rec(SUCCEEDED)
    assert outcome_of([running, done, rec(FAILED)]) is done
    assert outcome_of([None, None]) is None


RULES = SupervisionRules(copies=3, silence=6.0, max_runs=3)
HOLDERS = holders_for("t1", MEMBERS, 3)
SUP = HOLDERS[0]


def actions(record: tasks_pb2.TaskRecord, *, up=MEMBERS, silent: float = 0.0,
            now: float = 1000.0, me: str = SUP):
    return list(decide(record, me=me, up=up, now_unix=now, silent_for=silent, rules=RULES))


def test_each_case_of_the_supervision_rule():
    executor = next(m for m in MEMBERS if m not in HOLDERS)
    running = rec(executor=executor)
    assert actions(running) == []
    assert actions(running, me=HOLDERS[1]) == []  # not the supervisor: nothing
    assert actions(rec(SUCCEEDED, executor=executor), silent=100) == []
    gone = [m for m in MEMBERS if m != executor]
    assert actions(running, up=gone) == [Relaunch(f"its executor {executor} is lost")]
    assert actions(running, silent=6.5) == [
        Relaunch(f"no report from {executor} for 6.5s")]
    assert actions(rec(QUEUED, attempt=0, executor=""), silent=7.0) == [
        Relaunch("not started for 7.0s")]
    assert actions(rec(QUEUED, attempt=0, executor=""), silent=1.0) == []
    third = rec(attempt=3, executor=executor)
    assert actions(third, up=gone) == [
        Finish(FAILED, f"3 runs lost; the last: its executor {executor} is lost")]
    late = rec(executor=executor, deadline_unix=999.0)
    assert actions(late) == [
        Finish(DEADLINE_EXCEEDED, f"deadline passed during run 1 on {executor}")]


def test_a_lost_holder_is_replaced_by_the_next_ranked_and_the_next_holder_takes_over():
    executor = next(m for m in MEMBERS if m not in HOLDERS)
    running = rec(executor=executor)
    without = [m for m in MEMBERS if m != HOLDERS[2]]
    nxt = next(m for m in ranked("t1", without) if m not in HOLDERS)
    assert actions(running, up=without) == [Repair((nxt,))]
    no_sup = [m for m in MEMBERS if m != SUP]
    assert actions(running, up=no_sup) == []  # the old supervisor is not us any more...
    taken = actions(running, up=no_sup, me=HOLDERS[1])  # ...the next holder acts
    assert taken == [Repair((next(m for m in ranked("t1", no_sup) if m not in HOLDERS),))]


def test_a_suspected_supervisor_of_a_silent_run_is_passed_over():
    """The supervisor is the executor too, and was killed: membership only suspects it
    yet. Once the run is silent, the next holder acts instead of waiting for its death."""
    running = rec(executor=SUP)
    alive = [m for m in MEMBERS if m != SUP]
    nxt = HOLDERS[1]
    assert list(decide(running, me=nxt, up=MEMBERS, alive=alive, now_unix=1000.0,
                       silent_for=1.0, rules=RULES)) == []  # not silent: the supervisor's
    assert list(decide(running, me=nxt, up=MEMBERS, alive=alive, now_unix=1000.0,
                       silent_for=7.0, rules=RULES)) == [
        Relaunch(f"no report from {SUP} for 7.0s")]
    assert list(decide(running, me=SUP, up=MEMBERS, alive=alive, now_unix=1000.0,
                       silent_for=7.0, rules=RULES)) == []  # it has passed itself over
