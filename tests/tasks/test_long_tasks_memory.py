"""Long-running tasks wired to in-memory parts only: membership cores on the simulator's
virtual network, runs and record calls through the in-memory sides of their seams, the
clocks the simulator's. Each loss is a crash in the simulator plus a peer out of reach;
each check of the supervisors is called by the test, so every step is chosen here."""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass

import pytest
from task_doubles import Gates, until

from skyfleet._generated.skyfleet.v1 import tasks_pb2
from skyfleet.config.membership import MembershipConfig
from skyfleet.config.tasks import TaskSettings
from skyfleet.policy.model import Locality, PolicyDocument
from skyfleet.sim.cluster import SimCluster
from skyfleet.tasks.errors import Refusal, TaskRejected
from skyfleet.tasks.executor import Executor
from skyfleet.tasks.handlers import HandlerRegistry
from skyfleet.tasks.long_tasks import LongTasks, TaskNotFound
from skyfleet.tasks.records import CANCELLED, DEADLINE_EXCEEDED, FAILED, RUNNING, SUCCEEDED
from skyfleet.tasks.router import Router
from skyfleet.transport.task_execute import LocalTaskExecute
from skyfleet.transport.task_records import LocalRecordPeers

NAMES = ["a0", "a1", "a2", "g0", "g1", "g2"]
SETTINGS = TaskSettings(capacity=2, report_interval=1000.0)
"""Heartbeats every 1000 s of real time: none during a test unless it says so; the
supervisors' silence (3000 s) is reached by moving the simulator's clock."""


@dataclass
class Fleet:
    cluster: SimCluster
    tasks: dict[str, LongTasks]
    execute: LocalTaskExecute
    records: LocalRecordPeers
    gates: Gates

    def wall(self) -> float:
        return 1_000_000.0 + self.cluster.now

    async def crash(self, *names: str) -> None:
        """The hosts are gone at once: their runs stop, they answer nothing, and
        membership finds them dead."""
        for name in names:
            await self.tasks[name].stop()
            self.cluster.crash(name)
            self.execute.refusing.add(name)
            self.records.refusing.add(name)
        self.cluster.run_for(30.0)

    async def check(self) -> None:
        """Every live agent's supervision check, once."""
        for name, agent in self.tasks.items():
            if name not in self.records.refusing:
                await agent.check()

    def running_on(self, payload: bytes) -> list[str]:
        return [e for e, p in self.gates.starts if p == payload]


def ids(seed: int) -> Callable[[], str]:
    """Task ids from a seeded generator: the holders of each task are the same every run."""
    rng = random.Random(seed)
    return lambda: f"{rng.getrandbits(128):032x}"


def fleet(settings: TaskSettings = SETTINGS) -> Fleet:
    cluster = SimCluster(MembershipConfig(), seed=5)
    for name in NAMES:
        cloud = "aws" if name.startswith("a") else "gcp"
        seeds = () if name == "a0" else (cluster.address("a0"),)
        cluster.add_node(name, seeds=seeds, cloud=cloud, zone=f"{name}-z")
    cluster.run_for(5.0)
    gates = Gates()
    executors = {
        name: Executor(HandlerRegistry({"job": gates.handler(name)}), settings,
                       clock=lambda: cluster.now)
        for name in NAMES
    }
    execute = LocalTaskExecute(executors)
    records = LocalRecordPeers()
    made = Fleet(cluster, {}, execute, records, gates)
    for i, name in enumerate(NAMES):
        router = Router(swim=cluster.nodes[name].swim, executor=executors[name],
                        remote=execute, clock=lambda: cluster.now, rng=random.Random(i),
                        policy=PolicyDocument(version=1, locality=Locality(prefer="none")))
        made.tasks[name] = LongTasks(
            swim=cluster.nodes[name].swim, router=router, executor=executors[name],
            peers=records, settings=settings, clock=lambda: cluster.now, wall=made.wall,
            new_id=ids(i),
        )
    records.agents.update(made.tasks)
    for name, executor in executors.items():
        swim = cluster.nodes[name].swim
        cluster.emit(name, swim.publish_status(executor.report(1, "h"), cluster.now))
    cluster.run_for(5.0)
    return made


def job(payload: bytes, handler: str = "job", deadline: float = 0.0) -> tasks_pb2.SubmitTaskRequest:
    return tasks_pb2.SubmitTaskRequest(handler=handler, payload=payload,
                                       deadline_seconds=deadline)


async def test_a_task_is_accepted_at_once_and_answered_by_any_agent() -> None:
    f = fleet()
    record = await f.tasks["a0"].start(job(b"j1"))
    assert record.state == RUNNING and record.attempt == 1 and len(record.holders) == 3
    assert record.accepted_by == "a0" and record.task.idempotency_key == record.task_id
    await until(lambda: f.running_on(b"j1") == [record.executor], "the run to start")
    for name in NAMES:  # holders or not, every agent finds it
        seen = await f.tasks[name].get(record.task_id)
        assert (seen.state, seen.executor) == (RUNNING, record.executor)
    f.gates.release(b"j1")
    done = await f.tasks["g2"].wait(record.task_id, timeout=5.0)
    assert (done.state, done.output, done.attempt) == (
        SUCCEEDED, f"{record.executor}:j1".encode(), 1)
    with pytest.raises(TaskNotFound, match="no live agent holds"):
        await f.tasks["a1"].get("no-such-task")


async def test_the_executor_lost_mid_run_means_one_more_run_elsewhere_and_one_outcome() -> None:
    f = fleet()
    for n in range(4):  # the executor a holder or not, the accepting agent or not
        await lose_the_executor(f, "a0" if n % 2 else "g0", b"j2-%d" % n)


async def lose_the_executor(f: Fleet, accepting: str, payload: bytes) -> None:
    record = await f.tasks[accepting].start(job(payload))
    first = record.executor
    await until(lambda: f.running_on(payload) == [first], "the first run")
    await f.crash(first)
    asker = next(a for a in NAMES if a not in f.records.refusing)
    await f.check()
    again = await f.tasks[asker].get(record.task_id)
    assert again.state == RUNNING and again.attempt == 2 and again.executor != first
    await until(lambda: len(f.running_on(payload)) == 2, "the second run")
    f.gates.release(payload)
    done = await f.tasks[asker].wait(record.task_id, timeout=5.0)
    assert done.state == SUCCEEDED
    assert done.output == again.executor.encode() + b":" + payload
    # Every live holder has the one outcome; the copies are as many as live agents allow.
    copies = [f.tasks[h].store.get(record.task_id) for h in done.holders
              if h not in f.records.refusing]
    assert len(copies) == min(3, len(NAMES) - len(f.records.refusing))
    assert {(c.state, c.output) for c in copies if c} == {(SUCCEEDED, done.output)}


async def test_losing_the_accepting_agent_and_two_holders_at_once_loses_nothing() -> None:
    f = fleet()
    record = await f.tasks["a0"].start(job(b"j3"))
    executor = record.executor
    doomed = {"a0", *[h for h in record.holders if h != executor][:2]} - {executor}
    await until(lambda: f.running_on(b"j3") == [executor], "the run")
    await f.crash(*sorted(doomed))
    await f.check()  # the surviving holder supervises: repairs the copies back to three
    asker = next(n for n in NAMES if n not in doomed)
    seen = await f.tasks[asker].get(record.task_id)
    assert seen.state == RUNNING and seen.executor == executor and seen.attempt == 1
    live = [h for h in seen.holders if h not in doomed]
    assert len(live) == 3
    f.gates.release(b"j3")
    done = await f.tasks[asker].wait(record.task_id, timeout=5.0)
    assert done.state == SUCCEEDED and f.running_on(b"j3") == [executor]


async def test_a_silent_executor_is_given_up_after_three_missed_reports() -> None:
    f = fleet()
    record = await f.tasks["a0"].start(job(b"j4"))
    await until(lambda: len(f.running_on(b"j4")) == 1, "the run")
    f.cluster.run_for(2 * SETTINGS.report_interval)
    await f.check()
    assert (await f.tasks["a1"].get(record.task_id)).attempt == 1  # not silent long enough
    f.cluster.run_for(1.5 * SETTINGS.report_interval)
    await f.check()
    again = await f.tasks["a1"].get(record.task_id)
    assert again.attempt == 2
    await until(lambda: len(f.running_on(b"j4")) == 2, "the second run")
    # Both runs finish: the record keeps the first outcome it took, whichever it was.
    f.gates.release(b"j4")
    done = await f.tasks["g0"].wait(record.task_id, timeout=5.0)
    assert done.state == SUCCEEDED
    for _ in range(3):
        assert (await f.tasks["g0"].get(record.task_id)).output == done.output


async def test_deadlines_and_cancellation_end_the_task_once() -> None:
    f = fleet()
    late = await f.tasks["a0"].start(job(b"j5", deadline=3600.0))
    await until(lambda: len(f.running_on(b"j5")) == 1, "the run")
    f.cluster.run_for(3601.0)
    await f.check()
    ended = await f.tasks["g1"].get(late.task_id)
    assert ended.state == DEADLINE_EXCEEDED and "deadline passed during run 1" in ended.error
    await until(lambda: (late.executor, b"j5") in f.gates.cancelled, "the run to be cancelled")

    record = await f.tasks["a0"].start(job(b"j6"))
    await until(lambda: len(f.running_on(b"j6")) == 1, "the run")
    cancelled = await f.tasks["g2"].cancel(record.task_id)
    assert cancelled.state == CANCELLED and "CancelTask call to g2" in cancelled.error
    await until(lambda: (record.executor, b"j6") in f.gates.cancelled, "the run to stop")
    again = await f.tasks["a1"].cancel(record.task_id)
    assert again.state == CANCELLED and again.error == cancelled.error


async def test_a_task_nobody_can_run_is_refused_at_once() -> None:
    f = fleet()
    with pytest.raises(TaskRejected) as unknown:
        await f.tasks["a0"].start(job(b"x", handler="nope"))
    assert unknown.value.why is Refusal.INVALID and "'nope'" in str(unknown.value)
    with pytest.raises(TaskRejected) as negative:
        await f.tasks["a0"].start(job(b"x", deadline=-1.0))
    assert negative.value.why is Refusal.INVALID and "deadline_seconds" in str(negative.value)
    f.records.refusing.update(n for n in NAMES if n != "a0")
    with pytest.raises(TaskRejected) as alone:
        await f.tasks["a0"].start(job(b"x"))
    assert alone.value.why is Refusal.UNAVAILABLE and "2 needed" in str(alone.value)


async def test_a_refused_start_never_runs_later() -> None:
    """The client heard a refusal and no id: the record stored before the launch ends
    FAILED on its holders, so no supervisor runs it when it falls silent."""
    f = fleet()
    with pytest.raises(TaskRejected) as refused:
        await f.tasks["a0"].start(job(b"refused", handler="gpu"))
    assert refused.value.why is Refusal.INVALID
    copies = [r for agent in f.tasks.values() for r in agent.store.records()
              if r.task.payload == b"refused"]
    assert len(copies) == 3
    assert {(r.state, r.error.split(":")[0]) for r in copies} == {(FAILED, "not started")}
    f.cluster.run_for(4 * SETTINGS.report_interval)
    await f.check()
    assert f.running_on(b"refused") == []


async def test_an_outcome_the_supervisor_missed_is_not_overwritten_by_its_deadline() -> None:
    f = fleet()
    record = await f.tasks["a0"].start(job(b"d0", deadline=100.0))
    supervisor = record.holders[0]
    await until(lambda: f.running_on(b"d0") == [record.executor], "the run")
    f.records.refusing.add(supervisor)  # the final report does not reach it
    f.gates.release(b"d0")
    asker = next(n for n in NAMES if n != supervisor)
    done = await f.tasks[asker].wait(record.task_id, timeout=5.0)
    assert done.state == SUCCEEDED
    f.records.refusing.discard(supervisor)
    f.cluster.run_for(101.0)
    await f.check()  # the supervisor, past the deadline, asks the holders first
    for name in NAMES:
        seen = await f.tasks[name].get(record.task_id)
        assert (seen.state, seen.output) == (SUCCEEDED, done.output), name
