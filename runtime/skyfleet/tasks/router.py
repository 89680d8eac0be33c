"""Routes each submitted task to the best peer under the policy in force, and fails over.

The decisions (which peer, whether a retry is allowed, outlier ejection, locality) are the
pure `Balancer`'s; this module is the edge that carries them out: it builds the balancer's
view of the peers from gossiped status plus its own sends, runs the attempt here or
forwards it with the remaining deadline, classifies what happened, and closes every task
with exactly one outcome in the ledger.

Attempt results, and what follows:
- the client's fault (unknown handler, bad payload): INVALID_ARGUMENT at once, no retry;
- the peer is full (RESOURCE_EXHAUSTED): retry elsewhere; the peer is not an outlier;
- the handler failed, the peer is unreachable or the attempt timed out: retry elsewhere,
  and the failure feeds outlier detection; unreachable/timeout also marks the peer's
  cloud as failed for this task, so the retry leaves that cloud at once.
"""

from __future__ import annotations

import asyncio
import enum
import logging
import random
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass

import grpc

from skyfleet._generated.skyfleet.v1 import tasks_pb2, tasks_pb2_grpc
from skyfleet.balancing.balancer import Balancer, NoEligiblePeer, TaskRequest
from skyfleet.balancing.peers import Locale, PeerLoad
from skyfleet.membership.messages import MemberState
from skyfleet.membership.swim import Swim
from skyfleet.policy.model import PolicyDocument
from skyfleet.tasks.executor import Executor, Overloaded
from skyfleet.tasks.handlers import BadPayload, UnknownHandler
from skyfleet.tasks.ledger import Ledger, Outcome
from skyfleet.transport.peers import PeerChannels

log = logging.getLogger("skyfleet.tasks")


class TaskRejected(Exception):
    """The task cannot run anywhere; `code` is the gRPC status for the caller."""

    def __init__(self, code: grpc.StatusCode, message: str) -> None:
        super().__init__(message)
        self.code = code


@dataclass(frozen=True, slots=True)
class Result:
    outcome: Outcome
    output: bytes = b""
    error: str = ""
    executed_by: str = ""
    attempts: int = 0
    latency: float = 0.0


class _Verdict(enum.Enum):
    OK = "ok"
    CLIENT = "client"
    FULL = "full"
    FAILED = "failed"
    UNREACHABLE = "unreachable"


_REMOTE_VERDICT = {
    grpc.StatusCode.INVALID_ARGUMENT: _Verdict.CLIENT,
    grpc.StatusCode.RESOURCE_EXHAUSTED: _Verdict.FULL,
    grpc.StatusCode.UNAVAILABLE: _Verdict.UNREACHABLE,
    grpc.StatusCode.DEADLINE_EXCEEDED: _Verdict.UNREACHABLE,
    grpc.StatusCode.CANCELLED: _Verdict.UNREACHABLE,
}


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
        self._channels = channels
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
        self._running: dict[str, asyncio.Task[Result]] = {}
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
                e = self._executor
                report = e.report(0, "")
                views.append(
                    PeerLoad(
                        name=m.name,
                        cloud=m.meta.cloud,
                        region=m.meta.region,
                        zone=m.meta.zone,
                        capacity=report.capacity,
                        inflight=report.inflight,
                        queued=report.queued,
                        latency_ewma=report.latency_ms / 1000.0,
                        error_rate=report.error_rate,
                        status_at=self._clock(),
                    )
                )
                continue
            known = statuses.get(m.name)
            if known is None or known[0].report.capacity == 0:
                continue  # no executor advertised yet
            status, received = known
            seq, sent = self._sent.get(m.name, (status.seq, 0))
            if seq != status.seq:
                sent = 0  # a fresher status already includes our earlier sends
            r = status.report
            views.append(
                PeerLoad(
                    name=m.name,
                    cloud=m.meta.cloud,
                    region=m.meta.region,
                    zone=m.meta.zone,
                    capacity=r.capacity,
                    inflight=r.inflight,
                    queued=r.queued,
                    latency_ewma=r.latency_ms / 1000.0,
                    error_rate=r.error_rate,
                    status_at=received,
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

    async def submit(self, req: tasks_pb2.SubmitTaskRequest, deadline: float | None) -> Result:
        """Run a task somewhere; exactly one ledger outcome whatever happens. Raises
        TaskRejected for outcomes the caller should see as a gRPC status."""
        self.ledger.submitted += 1
        # Unkeyed tasks get a key too: retries must never run twice on one executor.
        key = req.idempotency_key or uuid.uuid4().hex
        task = asyncio.current_task()
        outcome = Outcome.FAILED
        try:
            if task is not None:
                self._running[key] = task  # type: ignore[assignment]
            result = await self._route(req, key, deadline)
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
        finally:
            self._running.pop(key, None)
            self.ledger.close(outcome)

    def cancel(self, key: str) -> bool:
        task = self._running.get(key)
        if task is None:
            return False
        task.cancel()
        return True

    async def _route(
        self, req: tasks_pb2.SubmitTaskRequest, key: str, deadline: float | None
    ) -> Result:
        start = self._clock()
        kind = req.kind or req.handler
        tried: list[str] = []
        failed_clouds: list[str] = []
        first_cloud, last_error, all_full = "", "", True
        attempt = 1
        while True:
            now = self._clock()
            if deadline is not None and now >= deadline:
                raise TaskRejected(
                    grpc.StatusCode.DEADLINE_EXCEEDED,
                    f"deadline exceeded after {attempt - 1} attempt(s): {last_error}",
                )
            request = TaskRequest(
                kind=kind,
                allowed_clouds=tuple(req.constraints.clouds),
                allowed_regions=tuple(req.constraints.regions),
                attempt=attempt,
                tried=tuple(tried),
                failed_clouds=tuple(failed_clouds),
                first_cloud=first_cloud,
            )
            choice = self.balancer.choose(request, self.peers(), now)
            if isinstance(choice, NoEligiblePeer):
                return self._give_up(choice, attempt, last_error, all_full)
            peer = choice.peer
            if attempt > 1:
                self.ledger.retried += 1
                if tried and peer.cloud != self._cloud_of(tried[-1]):
                    self.ledger.failed_over += 1
            tried.append(peer.name)
            first_cloud = first_cloud or peer.cloud
            self.ledger.attempts += 1
            timeout = self.balancer.policy.failover.per_attempt_timeout_seconds
            if deadline is not None:
                timeout = min(timeout, deadline - now)
            verdict, output, error = await self._attempt(peer, req, key, attempt, timeout)
            self.balancer.record(
                choice,
                ok=verdict in (_Verdict.OK, _Verdict.FULL, _Verdict.CLIENT),
                now=self._clock(),
            )
            if verdict is _Verdict.OK:
                return Result(
                    Outcome.SUCCEEDED, output, "", peer.name, attempt, self._clock() - start
                )
            if verdict is _Verdict.CLIENT:
                raise TaskRejected(grpc.StatusCode.INVALID_ARGUMENT, error)
            all_full = all_full and verdict is _Verdict.FULL
            last_error = f"{peer.name}: {error}"
            if verdict is _Verdict.UNREACHABLE:
                failed_clouds.append(peer.cloud)
            log.info(
                "attempt failed",
                extra={"task": key, "attempt": attempt, "peer": peer.name, "error": error},
            )
            attempt += 1

    def _cloud_of(self, name: str) -> str:
        member = self._swim.member(name)
        return member.meta.cloud if member else ""

    def _give_up(
        self, why: NoEligiblePeer, attempt: int, last_error: str, all_full: bool
    ) -> Result:
        if attempt == 1:
            raise TaskRejected(grpc.StatusCode.UNAVAILABLE, why.detail)
        if all_full:
            raise TaskRejected(
                grpc.StatusCode.RESOURCE_EXHAUSTED, f"every peer tried is full: {last_error}"
            )
        return Result(Outcome.FAILED, error=f"{last_error}; {why.detail}", attempts=attempt - 1)

    async def _attempt(
        self,
        peer: PeerLoad,
        req: tasks_pb2.SubmitTaskRequest,
        key: str,
        attempt: int,
        timeout: float,
    ) -> tuple[_Verdict, bytes, str]:
        if peer.name == self._swim.name:
            return await self._run_here(req, key, timeout)
        member = self._swim.member(peer.name)
        if member is None:
            return _Verdict.UNREACHABLE, b"", "no longer a member"
        self._count_send(peer.name)
        forwarded = tasks_pb2.SubmitTaskRequest()
        forwarded.CopyFrom(req)
        forwarded.idempotency_key = key
        stub = tasks_pb2_grpc.TasksStub(self._channels.get(member.meta.address, peer.name))
        request = tasks_pb2.ExecuteRequest(
            task=forwarded, routed_by=self._swim.name, attempt=attempt
        )
        try:
            reply = await stub.Execute(request, timeout=max(0.001, timeout))
        except grpc.aio.AioRpcError as exc:
            verdict = _REMOTE_VERDICT.get(exc.code(), _Verdict.FAILED)
            return verdict, b"", f"{exc.code().name}: {exc.details()}"
        return _Verdict.OK, reply.output, ""

    async def _run_here(
        self, req: tasks_pb2.SubmitTaskRequest, key: str, timeout: float
    ) -> tuple[_Verdict, bytes, str]:
        try:
            async with asyncio.timeout(max(0.001, timeout)):
                done = await self._executor.execute(req.handler, req.payload, key)
        except (UnknownHandler, BadPayload) as exc:
            return _Verdict.CLIENT, b"", str(exc)
        except Overloaded as exc:
            return _Verdict.FULL, b"", f"full: {exc}"
        except TimeoutError:
            return _Verdict.UNREACHABLE, b"", "attempt timed out"
        except Exception as exc:  # the handler's own failure, whatever it raised
            return _Verdict.FAILED, b"", f"handler failed: {type(exc).__name__}: {exc}"
        return _Verdict.OK, done.output, ""
