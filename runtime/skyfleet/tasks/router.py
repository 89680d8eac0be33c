"""Routes each submitted task to the best peer under the policy in force, and fails over.

The decisions (which peer, whether a retry is allowed, outlier ejection, locality) are the
pure `Balancer`'s; this module is the edge that carries them out: it builds the balancer's
view of the peers from gossiped status plus its own sends, has each attempt run here or
forwarded with the remaining deadline (`skyfleet.tasks.attempts`, which also says what
each way an attempt can end leads to), and closes every task with exactly one outcome in
the ledger, whatever happens: a malformed request, a Cancel call, the caller's deadline
or disconnection, or a bug in this code.

Cancellation has two sources, told apart so that each gets its outcome: a Cancel call
cancels the task's own routing task (FAILED, "cancelled"); the caller going away cancels
the submitting coroutine (DEADLINE_EXCEEDED if the deadline has come, else FAILED), and
with it the routing task and the attempt in flight, which frees the executor's slot.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass

import grpc

from skyfleet._generated.skyfleet.v1 import tasks_pb2
from skyfleet.balancing.balancer import Balancer, Choice, NoEligiblePeer, TaskRequest
from skyfleet.balancing.peers import Locale, PeerLoad
from skyfleet.membership.members import MemberView
from skyfleet.membership.messages import MemberState, StatusReport
from skyfleet.membership.swim import Swim
from skyfleet.policy.model import PolicyDocument
from skyfleet.tasks.attempts import AttemptResult, Attempts, Verdict
from skyfleet.tasks.executor import Executor
from skyfleet.tasks.ledger import Ledger, Outcome
from skyfleet.tasks.requests import TaskRejected, check_request
from skyfleet.transport.peers import PeerChannels

log = logging.getLogger("skyfleet.tasks")

DEADLINE_SLACK = 0.005
"""Seconds by which this node's reading of a caller's deadline may trail gRPC's own: a
caller cancelled this close to its deadline was cancelled by the deadline."""


@dataclass(frozen=True, slots=True)
class Result:
    outcome: Outcome
    output: bytes = b""
    error: str = ""
    executed_by: str = ""
    attempts: int = 0
    latency: float = 0.0
    duplicate: bool = False
    """The executor had already run this idempotency key: `output` is the first run's."""


@dataclass(slots=True)
class _Progress:
    """One task's routing so far: what the next `TaskRequest` is built from."""

    tried: list[str]
    failed_clouds: list[str]
    first_cloud: str = ""
    last_error: str = ""
    all_full: bool = True
    never_reached: bool = False
    """The last attempt's peer could not be reached at all."""


class Router:
    def __init__(
        self,
        *,
        swim: Swim,
        executor: Executor,
        channels: PeerChannels,
        policy: PolicyDocument,
        clock: Callable[[], float] = time.monotonic,
        rng: random.Random | None = None,
    ) -> None:
        self.name = swim.name
        self._swim = swim
        self._executor = executor
        self._attempts = Attempts(swim.name, executor, channels)
        self._clock = clock
        meta = swim.meta
        self.balancer = Balancer(
            local=Locale(cloud=meta.cloud, region=meta.region, zone=meta.zone),
            policy=policy,
            rng=rng or random.Random(),
        )
        self.ledger = Ledger()
        self._sent: dict[str, tuple[int, int]] = {}
        """Per peer: (status seq counted from, tasks sent since that status)."""
        self._flights: dict[str, set[asyncio.Task[Result]]] = {}
        """Routing tasks in progress by idempotency key, for Cancel."""
        self.on_result: Callable[[Result], None] | None = None
        """Called with every successful or failed routed task (metrics)."""

    def set_policy(self, policy: PolicyDocument) -> None:
        self.balancer.set_policy(policy)

    # ------------------------------------------------------------------ view

    def peers(self) -> list[PeerLoad]:
        """The balancer's view: every live member with a status, ourselves exact."""
        statuses = self._swim.statuses()
        views = []
        for m in self._swim.members():
            if m.state not in (MemberState.ALIVE, MemberState.SUSPECT):
                continue
            if m.name == self._swim.name:
                views.append(_peer_load(m, self._executor.report(0, ""), self._clock()))
                continue
            known = statuses.get(m.name)
            if known is None or known[0].report.capacity == 0:
                continue  # no executor advertised yet
            status, received = known
            seq, sent = self._sent.get(m.name, (status.seq, 0))
            if seq != status.seq:
                sent = 0  # a fresher status already includes our earlier sends
            views.append(
                _peer_load(
                    m,
                    status.report,
                    received,
                    sent_since_status=sent,
                    healthy=m.state == MemberState.ALIVE,
                )
            )
        return views

    def _count_send(self, peer: str) -> None:
        known = self._swim.statuses().get(peer)
        if known is None:
            return
        seq, sent = self._sent.get(peer, (known[0].seq, 0))
        self._sent[peer] = (known[0].seq, sent + 1 if seq == known[0].seq else 1)

    # ------------------------------------------------------------------ submit

    async def submit(self, req: tasks_pb2.SubmitTaskRequest, timeout: float | None) -> Result:
        """Run a task somewhere within `timeout` seconds (None: no deadline); exactly one
        ledger outcome whatever happens. Raises TaskRejected for the outcomes a caller
        should see as a gRPC status."""
        self.ledger.submitted += 1
        deadline = None if timeout is None else self._clock() + timeout
        outcome = Outcome.FAILED
        try:
            check_request(req)
            result = await self._fly(req, deadline)
            outcome = result.outcome
            if self.on_result is not None:
                self.on_result(result)
            return result
        except TaskRejected as exc:
            outcome = (
                Outcome.DEADLINE_EXCEEDED
                if exc.code == grpc.StatusCode.DEADLINE_EXCEEDED
                else Outcome.REJECTED
            )
            raise
        except asyncio.CancelledError:
            if deadline is not None and self._clock() >= deadline - DEADLINE_SLACK:
                outcome = Outcome.DEADLINE_EXCEEDED
            raise
        finally:
            self.ledger.close(outcome)

    async def _fly(self, req: tasks_pb2.SubmitTaskRequest, deadline: float | None) -> Result:
        """Route in a task of its own, so that Cancel can stop the routing without
        cancelling the caller, who still gets its one answer."""
        # Unkeyed tasks get a key too: retries must never run twice on one executor.
        key = req.idempotency_key or uuid.uuid4().hex
        flight = asyncio.get_running_loop().create_task(self._route(req, key, deadline))
        flights = self._flights.setdefault(key, set())
        flights.add(flight)
        try:
            return await flight
        except asyncio.CancelledError:
            caller = asyncio.current_task()
            if caller is not None and caller.cancelling():
                raise  # our caller is going away; awaiting cancelled the flight too
            return Result(Outcome.FAILED, error="cancelled by a Cancel call")
        except TaskRejected:
            raise
        except Exception:
            # A bug here must not lose the task: it still gets its one outcome.
            log.exception("routing failed", extra={"task": key})
            return Result(Outcome.FAILED, error="internal error while routing (logged)")
        finally:
            flights.discard(flight)
            if not flights:
                self._flights.pop(key, None)

    def cancel(self, key: str) -> bool:
        """Cancel the routing (and the attempt in flight) of every task with this key."""
        flights = self._flights.get(key, set())
        for flight in flights:
            flight.cancel()
        return bool(flights)

    async def _route(
        self, req: tasks_pb2.SubmitTaskRequest, key: str, deadline: float | None
    ) -> Result:
        start = self._clock()
        kind = req.kind or req.handler
        task = tasks_pb2.SubmitTaskRequest()
        task.CopyFrom(req)
        task.idempotency_key = key
        progress = _Progress(tried=[], failed_clouds=[])
        attempt = 1
        while True:
            now = self._clock()
            if deadline is not None and now >= deadline:
                raise TaskRejected(
                    grpc.StatusCode.DEADLINE_EXCEEDED,
                    f"deadline exceeded after {attempt - 1} attempt(s): {progress.last_error}",
                )
            request = TaskRequest(
                kind=kind,
                allowed_clouds=tuple(req.constraints.clouds),
                allowed_regions=tuple(req.constraints.regions),
                attempt=attempt,
                tried=tuple(progress.tried),
                failed_clouds=tuple(progress.failed_clouds),
                first_cloud=progress.first_cloud,
                never_reached=progress.never_reached,
            )
            choice = self.balancer.choose(request, self.peers(), now)
            if isinstance(choice, NoEligiblePeer):
                return self._give_up(choice, attempt, progress)
            peer = choice.peer
            self._count_attempt(peer, progress)
            result = await self._attempt(choice, task, deadline, now)
            if result.verdict is Verdict.OK:
                latency = self._clock() - start
                return Result(Outcome.SUCCEEDED, result.output, "", peer.name, attempt, latency,
                              duplicate=result.duplicate)
            if result.verdict is Verdict.CLIENT:
                raise TaskRejected(grpc.StatusCode.INVALID_ARGUMENT, result.error)
            if result.verdict is Verdict.DEADLINE:
                raise TaskRejected(
                    grpc.StatusCode.DEADLINE_EXCEEDED,
                    f"deadline exceeded during attempt {attempt} on {peer.name}: {result.error}",
                )
            progress.all_full = progress.all_full and result.verdict is Verdict.FULL
            progress.last_error = f"{peer.name}: {result.error}"
            if result.verdict is Verdict.UNREACHABLE:
                progress.failed_clouds.append(peer.cloud)
            progress.never_reached = _never_reached(result)
            log.info(
                "attempt failed",
                extra={
                    "task": key,
                    "attempt": attempt,
                    "peer": peer.name,
                    "cloud": peer.cloud,
                    "verdict": result.verdict.value,
                    "error": result.error,
                },
            )
            attempt += 1

    def _count_attempt(self, peer: PeerLoad, progress: _Progress) -> None:
        if progress.tried:
            self.ledger.retried += 1
            if peer.cloud != self._cloud_of(progress.tried[-1]):
                self.ledger.failed_over += 1
        progress.tried.append(peer.name)
        progress.first_cloud = progress.first_cloud or peer.cloud
        self.ledger.attempts += 1

    async def _attempt(
        self,
        choice: Choice,
        task: tasks_pb2.SubmitTaskRequest,
        deadline: float | None,
        now: float,
    ) -> AttemptResult:
        """Run one attempt and always close it with the balancer, even when cancelled:
        an attempt never closed would hold a retry-budget slot forever."""
        peer = choice.peer
        timeout = self.balancer.policy.failover.per_attempt_timeout_seconds
        by_deadline = deadline is not None and deadline - now <= timeout
        if deadline is not None:
            timeout = min(timeout, deadline - now)
        result = AttemptResult(Verdict.DEADLINE, error="cancelled")
        try:
            if peer.name == self.name:
                address = ""
            else:
                member = self._swim.member(peer.name)
                if member is None:
                    result = AttemptResult(Verdict.UNREACHABLE, error="no longer a member")
                    return result
                address = member.meta.address
                self._count_send(peer.name)
            result = await self._attempts.run(
                peer.name, address, task, choice.attempt, timeout, timeout_is_deadline=by_deadline
            )
            return result
        finally:
            if result.verdict is Verdict.DEADLINE:
                # Neither a success nor the peer's failure (Balancer.record would count
                # it as one or the other).
                self.balancer.release(choice)
            else:
                ok = not result.verdict.blames_peer
                self.balancer.record(
                    choice, ok=ok, now=self._clock(), unreachable=_never_reached(result)
                )

    def _cloud_of(self, name: str) -> str:
        member = self._swim.member(name)
        return member.meta.cloud if member else ""

    def _give_up(self, why: NoEligiblePeer, attempt: int, progress: _Progress) -> Result:
        if attempt == 1:
            raise TaskRejected(grpc.StatusCode.UNAVAILABLE, why.detail)
        if progress.all_full:
            raise TaskRejected(
                grpc.StatusCode.RESOURCE_EXHAUSTED,
                f"every peer tried is full: {progress.last_error}",
            )
        return Result(
            Outcome.FAILED, error=f"{progress.last_error}; {why.detail}", attempts=attempt - 1
        )


def _never_reached(result: AttemptResult) -> bool:
    """No connection at all (refused, no route, gone from membership), as opposed to a
    peer that was reached and did not answer in time."""
    return result.verdict is Verdict.UNREACHABLE and not result.timed_out


def _peer_load(
    member: MemberView,
    report: StatusReport,
    status_at: float,
    *,
    sent_since_status: int = 0,
    healthy: bool = True,
) -> PeerLoad:
    """The balancer's view of a member from its status report."""
    return PeerLoad(
        name=member.name,
        cloud=member.meta.cloud,
        region=member.meta.region,
        zone=member.meta.zone,
        capacity=report.capacity,
        inflight=report.inflight,
        queued=report.queued,
        latency_ewma=report.latency_ms / 1000.0,
        error_rate=report.error_rate,
        status_at=status_at,
        sent_since_status=sent_since_status,
        healthy=healthy,
    )
