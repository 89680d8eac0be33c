"""Long-running tasks: accepted at once with a task id, run detached on an executor, their
record kept by several holders, answered by id from any agent, and run again elsewhere
when the host running them is lost. The I/O shell around three cores: who holds a record
and which copy wins (`records`), what a supervisor does (`supervision`), the records this
agent keeps (`record_store`); the executor's side is `detached`.

Start. The accepting agent chooses the holders (`tasks.record_copies` up members, by rank
of the task id), stores the record QUEUED on them, and needs a majority of them to take
it before it goes on, so that one more loss cannot take the only copy; it then launches
the first run under the policy (the same balancer and failover as any task: the run's
executor is chosen by `TaskFlight`) and answers with the record. A refusal of that first
launch is the call's status, as for Submit.

Any agent answers by id: it asks the members that rank highest for the id (the holders,
unless members joined since), and `LOOKUP_FURTHER` more if none of those has it.

What is lost when agents die:
- the accepting agent: nothing (it holds no state the holders do not);
- the executor: the run's progress; the supervisor runs it again on another executor once
  membership finds the executor dead (or after `silence` without a report), with the same
  idempotency key, so a second run never lands where the first one still runs;
- holders: with `copies` = 3, any two at once lose nothing (the third has it, and the
  supervisor's repair brings the copies back to three); all three at once lose the
  record, while the run goes on: its outcome has nowhere to go, and GetTask answers
  NOT_FOUND. Records are in memory: a whole fleet restarting loses them all.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import Awaitable, Callable, Sequence
from typing import Protocol

from skyfleet._generated.skyfleet.v1 import tasks_pb2
from skyfleet.config.tasks import TaskSettings
from skyfleet.membership.messages import MemberState
from skyfleet.membership.swim import Swim
from skyfleet.tasks.detached import DetachedRuns
from skyfleet.tasks.errors import Refusal, TaskRejected
from skyfleet.tasks.executor import Executor, Overloaded
from skyfleet.tasks.flight import Done, Failed, Refused
from skyfleet.tasks.handlers import UnknownHandler
from skyfleet.tasks.record_store import RecordStore, StoreFull
from skyfleet.tasks.records import (
    CANCELLED,
    FAILED,
    MAX_PAYLOAD,
    QUEUED,
    RUNNING,
    ended,
    holders_for,
    outcome_of,
    ranked,
    report,
    supervisor,
)
from skyfleet.tasks.requests import check_request
from skyfleet.tasks.router import Router
from skyfleet.tasks.supervision import Action, Finish, Repair, SupervisionRules, decide
from skyfleet.tasks.verdict import AttemptResult, Verdict

log = logging.getLogger("skyfleet.tasks")

PEER_CALL_TIMEOUT = 2.0
"""Seconds a record call to one peer may take: holders answer from memory."""

LOOKUP_FURTHER = 8
"""Members asked beyond the `record_copies + 2` highest-ranked when those do not have a
record: holders are chosen among the members up at the start, so members joining since
may rank above them. An unknown id costs at most this many calls more, not one per
member of the fleet; a record whose holders were pushed down by more joins than that is
not found by id (until a holder is lost and the repair adds the top-ranked members)."""

WAIT_POLL = 0.5
"""Seconds between asking the holders again in WaitTask when this agent holds no copy."""


class TaskNotFound(LookupError):
    """No live holder has the record (an unknown id, or every holder lost)."""


class RecordPeers(Protocol):
    """The record calls to other agents; each says None (or raises nothing) for a peer
    that cannot be reached. The agent's are gRPC (`skyfleet.transport.task_records`)."""

    async def store(self, peer: str, address: str, record: tasks_pb2.TaskRecord) -> bool | None:
        """Whether `peer` took it; None if not reached."""

    async def fetch(self, peer: str, address: str, task_id: str) -> tasks_pb2.TaskRecord | None:
        """`peer`'s copy; None if it has none or was not reached."""

    async def launch(self, peer: str, address: str, record: tasks_pb2.TaskRecord
                     ) -> AttemptResult:
        """Start `record`'s run on `peer`: OK once accepted; Execute's verdicts else."""

    async def cancel(self, peer: str, address: str, task_id: str) -> None:
        """Ask `peer` to stop its run of the task (best effort)."""


class LongTasks:
    def __init__(
        self,
        *,
        swim: Swim,
        router: Router,
        executor: Executor,
        peers: RecordPeers,
        settings: TaskSettings,
        clock: Callable[[], float] = time.monotonic,
        wall: Callable[[], float] = time.time,
        new_id: Callable[[], str] = lambda: uuid.uuid4().hex,
    ) -> None:
        """`new_id` makes task ids: unique across the fleet and unguessable (random
        128 bits), since an id is all it takes to read or cancel a task."""
        self.name = swim.name
        self._new_id = new_id
        self._spreading: set[asyncio.Task[int]] = set()
        self._nudged = asyncio.Event()
        self._swim = swim
        self._router = router
        self._peers = peers
        self._settings = settings
        self._clock = clock
        self._wall = wall
        self.store = RecordStore(limit=settings.max_records, ttl=settings.record_ttl, clock=clock)
        self.runs = DetachedRuns(self.name, executor, self._report,
                                 report_interval=settings.report_interval, wall=wall)
        self._rules = SupervisionRules(
            copies=settings.record_copies, silence=3 * settings.report_interval,
            max_runs=settings.max_runs,
        )

    # ------------------------------------------------------------------ members

    def _up(self) -> dict[str, str]:
        """Up members (this agent included) -> address ("" for this agent)."""
        up = {m.name: m.meta.address for m in self._swim.members() if m.is_up}
        up[self.name] = ""
        return up

    def _alive(self) -> set[str]:
        """Members not even suspected (this agent included)."""
        alive = {m.name for m in self._swim.members() if m.state is MemberState.ALIVE}
        return alive | {self.name}

    # ------------------------------------------------------------------ client calls

    async def start(self, req: tasks_pb2.SubmitTaskRequest) -> tasks_pb2.TaskRecord:
        """Accept a task and launch its first run; raises TaskRejected as Submit would,
        or UNAVAILABLE if too few holders took its record."""
        check_request(req)
        deadline = req.deadline_seconds
        if deadline < 0 or deadline != deadline:
            raise TaskRejected(Refusal.INVALID, "deadline_seconds: must be >= 0")
        if len(req.payload) > MAX_PAYLOAD:
            raise TaskRejected(Refusal.INVALID, (
                f"payload: {len(req.payload)} bytes, over the {MAX_PAYLOAD} a long-running "
                "task's record carries"))
        task_id = self._new_id()
        task = tasks_pb2.SubmitTaskRequest()
        task.CopyFrom(req)
        task.idempotency_key = req.idempotency_key or task_id
        now = self._wall()
        up = self._up()
        record = tasks_pb2.TaskRecord(
            task_id=task_id, task=task, state=QUEUED, accepted_by=self.name,
            accepted_unix=now, deadline_unix=now + deadline if deadline else 0.0,
            holders=holders_for(task_id, up, self._settings.record_copies),
        )
        stored = await self._store_on_holders(record)
        needed = len(record.holders) // 2 + 1
        if stored < needed:
            raise TaskRejected(
                Refusal.UNAVAILABLE,
                f"task record taken by {stored} of its holders "
                f"({', '.join(record.holders)}), {needed} needed",
            )
        try:
            return await self._launch(record)
        except BaseException as exc:
            # The caller hears no id: the record must not run later under the supervisor.
            why = str(exc) if isinstance(exc, TaskRejected) else "the Start call ended"
            refused = report(record, state=FAILED, seq=1, error=f"not started: {why}")
            told = asyncio.get_running_loop().create_task(self._store_on_holders(refused))
            self._spreading.add(told)
            told.add_done_callback(self._spreading.discard)
            await asyncio.shield(told)
            raise

    async def get(self, task_id: str) -> tasks_pb2.TaskRecord:
        """The record as its holders have it; raises TaskNotFound."""
        up = self._up()
        order = ranked(task_id, up)
        first = self._settings.record_copies + 2
        record = outcome_of(await self._copies(task_id, order[:first], up))
        if record is None:
            further = order[first:first + LOOKUP_FURTHER]
            record = outcome_of(await self._copies(task_id, further, up))
        if record is None:
            raise TaskNotFound(f"task {task_id!r}: no live agent holds its record")
        return record

    async def wait(self, task_id: str, timeout: float | None) -> tasks_pb2.TaskRecord:
        """The record once ended, or as it is when `timeout` seconds have passed. A holder
        waits for its own copy to change (asking the others every `report_interval`, in
        case an outcome reached them only); any other agent asks every `WAIT_POLL`."""
        loop = asyncio.get_running_loop()
        until = None if timeout is None else loop.time() + timeout
        while True:
            held = self.store.get(task_id) is not None
            changed = self.store.changed(task_id) if held else None  # before asking
            record = await self.get(task_id)
            left = None if until is None else until - loop.time()
            if ended(record) or (left is not None and left <= 0):
                return record
            pause = self._settings.report_interval if held else WAIT_POLL
            pause = pause if left is None else min(pause, left)
            if changed is None:
                await asyncio.sleep(pause)
                continue
            try:
                async with asyncio.timeout(pause):
                    await changed.wait()
            except TimeoutError:
                pass

    async def cancel(self, task_id: str) -> tasks_pb2.TaskRecord:
        """End the task CANCELLED unless it has ended; stop its run where it runs."""
        self.runs.cancel(task_id)
        record = await self.get(task_id)
        if ended(record):
            return record
        done = report(record, state=CANCELLED, seq=record.seq + 1,
                      error=f"cancelled by a CancelTask call to {self.name}")
        await self._store_on_holders(done)
        await self._stop_run(record)
        return await self.get(task_id)

    # ------------------------------------------------------------------ agent calls

    def take(self, record: tasks_pb2.TaskRecord) -> bool:
        """StoreRecord: keep `record` (or a report of its run) if it supersedes ours;
        raises StoreFull if it is new and there is no room. The supervisor passes an
        outcome on to every holder: the run reports to the holders it was launched with,
        and a holder added since would not hear of its end."""
        changed = self.store.put(record)
        held = self.store.get(record.task_id)
        if changed and held is not None and ended(held) and (
                supervisor(held, self._up()) == self.name):
            spread = asyncio.get_running_loop().create_task(self._store_on_holders(held))
            self._spreading.add(spread)
            spread.add_done_callback(self._spreading.discard)
        return changed

    def launch_here(self, record: tasks_pb2.TaskRecord) -> None:
        """Launch: run `record`'s attempt here, detached (its holders keep the record, not
        this agent unless it is one). Raises Overloaded, UnknownHandler."""
        self.runs.launch(record)

    def launched_here(self, record: tasks_pb2.TaskRecord) -> AttemptResult:
        """`launch_here` as an attempt's verdict: how a launch on this agent, or on one of
        this process (the in-memory seam), ends."""
        try:
            self.launch_here(record)
        except UnknownHandler as exc:
            return AttemptResult(Verdict.CLIENT, error=str(exc))
        except Overloaded as exc:
            return AttemptResult(Verdict.FULL, error=f"full: {exc}")
        return AttemptResult(Verdict.OK)

    # ------------------------------------------------------------------ supervision

    async def supervise(self) -> None:
        """Check every record held here every `report_interval`, and at once when
        nudged, while the agent runs."""
        while True:
            try:
                async with asyncio.timeout(self._settings.report_interval):
                    await self._nudged.wait()
            except TimeoutError:
                pass
            self._nudged.clear()
            try:
                await self.check()
            except Exception:
                log.exception("task supervision failed")

    def nudge(self) -> None:
        """Check now: membership lost a member, maybe a run's executor or a supervisor."""
        self._nudged.set()

    async def check(self) -> None:
        """One round of the supervision rule (`supervision.decide`) over the records
        held here, their actions taken side by side."""
        up, alive = self._up(), self._alive()
        acts: list[Awaitable[object]] = []
        for record in self.store.running():
            silent = self.store.silent_for(record.task_id)
            actions = decide(record, me=self.name, up=up, alive=alive, now_unix=self._wall(),
                             silent_for=silent, rules=self._rules)
            if actions:
                acts.append(self._act(record, actions))
            elif silent > self._rules.silence:
                acts.append(self._catch_up(record))
        await asyncio.gather(*acts)

    async def _catch_up(self, record: tasks_pb2.TaskRecord) -> bool:
        """Take what the other holders have of a record gone silent here: an outcome
        (or a newer run) this holder missed. Whether there was any."""
        copies = await self._copies(record.task_id, list(record.holders), self._up())
        latest = outcome_of(copies)
        return latest is not None and self.store.put(latest) and (
            ended(latest) or latest.attempt > record.attempt)

    async def stop(self) -> None:
        """Stop every run here, reporting nothing: this agent is going away, and the
        holders' next supervisor takes over."""
        for spread in list(self._spreading):
            spread.cancel()
        await asyncio.gather(*self._spreading, return_exceptions=True)
        await self.runs.stop()

    async def _act(self, record: tasks_pb2.TaskRecord, actions: Sequence[Action]) -> None:
        try:
            for action in actions:
                await self._one(record, action)
        except Exception:
            log.exception("task supervision failed", extra={"task": record.task_id})

    async def _one(self, record: tasks_pb2.TaskRecord, action: Action) -> None:
        if isinstance(action, Repair):
            await self._store_on_holders(self._with_holders(record, action.add))
        elif isinstance(action, Finish):
            if await self._catch_up(record):
                return  # it ended (or ran again) where this supervisor had not heard
            done = report(record, state=action.state, seq=record.seq + 1, error=action.error)
            log.info("task ended by its supervisor",
                     extra={"task": record.task_id, "error": action.error})
            await self._store_on_holders(done)
            await self._stop_run(record)
        else:
            await self._relaunch(record, action.reason)

    async def _relaunch(self, record: tasks_pb2.TaskRecord, reason: str) -> None:
        if await self._catch_up(record):
            return  # ended, or relaunched meanwhile: nothing to do
        log.info("task run again", extra={"task": record.task_id, "reason": reason,
                                          "attempt": record.attempt + 1})
        try:
            await self._launch(record)
        except TaskRejected as exc:
            if exc.why is Refusal.INVALID:
                failed = report(record, state=FAILED, seq=record.seq + 1,
                                error=f"cannot run again after {reason}: {exc}")
                await self._store_on_holders(failed)
            else:  # nobody can take it now: the next check tries again
                log.warning("task not run again yet",
                            extra={"task": record.task_id, "error": str(exc)})

    def _with_holders(self, record: tasks_pb2.TaskRecord, add: Sequence[str]
                      ) -> tasks_pb2.TaskRecord:
        out = tasks_pb2.TaskRecord()
        out.CopyFrom(record)
        out.holders[:] = ranked(record.task_id, [*record.holders, *add])
        return out

    # ------------------------------------------------------------------ runs

    async def _launch(self, record: tasks_pb2.TaskRecord) -> tasks_pb2.TaskRecord:
        """Start the record's next run under the policy; the record RUNNING there, stored
        on the holders. Raises TaskRejected if no peer can take it."""
        flight = self._router.flight(record.task, None)
        attempt = record.attempt + 1
        up = self._up()
        while True:
            step = flight.next(self._router.peers(), self._clock())
            if isinstance(step, Refused):
                raise TaskRejected(step.why, step.detail)
            if isinstance(step, Failed):
                raise TaskRejected(Refusal.UNAVAILABLE, step.error)
            peer = step.choice.peer.name
            run = tasks_pb2.TaskRecord()
            run.CopyFrom(record)
            run.state, run.attempt, run.executor = RUNNING, attempt, peer
            run.seq, run.progress, run.note, run.error = 0, 0.0, "", ""
            try:
                result = await self._launch_on(peer, up.get(peer), run)
            except BaseException:
                flight.abandon(step)  # cancelled, or a bug: the peer is not to blame
                raise
            end = flight.settle(step, result, self._clock())
            if isinstance(end, Done):
                await self._store_on_holders(run)
                now = outcome_of(await self._copies(run.task_id, list(run.holders), up))
                if now is not None and ended(now):
                    await self._stop_run(run)  # cancelled while it was being launched
                    return now
                return now or run
            if isinstance(end, Refused):
                raise TaskRejected(end.why, end.detail)

    async def _launch_on(self, peer: str, address: str | None, run: tasks_pb2.TaskRecord
                         ) -> AttemptResult:
        if peer == self.name:
            return self.launched_here(run)
        if address is None:
            return AttemptResult(Verdict.UNREACHABLE, error="no longer a member")
        return await self._peers.launch(peer, address, run)

    async def _stop_run(self, record: tasks_pb2.TaskRecord) -> None:
        if record.executor == self.name:
            self.runs.cancel(record.task_id)
        elif record.executor:
            address = self._up().get(record.executor)
            if address:
                await self._peers.cancel(record.executor, address, record.task_id)

    async def _report(self, record: tasks_pb2.TaskRecord, final: bool) -> None:
        """DetachedRuns' reports: to every holder; a final one again until one takes it
        (for up to `silence`), so an outcome is not lost to one dropped call."""
        loop = asyncio.get_running_loop()
        until = loop.time() + self._rules.silence
        while True:
            if await self._store_on_holders(record) or not final or loop.time() > until:
                return
            await asyncio.sleep(self._settings.report_interval / 4)

    # ------------------------------------------------------------------ holders

    async def _store_on_holders(self, record: tasks_pb2.TaskRecord) -> int:
        """Send `record` to its holders (this agent directly); how many took it or
        already had what supersedes it (a holder out of room or out of reach did not)."""
        up = self._up()
        holders = self.store.get(record.task_id)
        names = ranked(record.task_id, [*record.holders, *(holders.holders if holders else [])])

        async def one(name: str) -> bool:
            if name == self.name:
                try:
                    self.take(record)
                except StoreFull as exc:
                    log.warning("task record refused here",
                                extra={"task": record.task_id, "error": str(exc)})
                    return False
                return True
            address = up.get(name)
            if address is None:
                return False
            return await self._peers.store(name, address, record) is not None

        return sum(await asyncio.gather(*(one(n) for n in names)))

    async def _copies(self, task_id: str, names: Sequence[str], up: dict[str, str]
                      ) -> list[tasks_pb2.TaskRecord | None]:
        async def one(name: str) -> tasks_pb2.TaskRecord | None:
            if name == self.name:
                return self.store.get(task_id)
            address = up.get(name)
            return None if address is None else await self._peers.fetch(name, address, task_id)

        return list(await asyncio.gather(*(one(n) for n in names)))
