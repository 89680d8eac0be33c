"""Routes each submitted task to the best peer under the policy in force, and fails over.

The decisions are pure cores': which peer, outlier ejection and locality the `Balancer`'s;
retry, failover and when to give up the `TaskFlight`'s (`skyfleet.tasks.flight`, the same
rules the task simulator runs). This module is the I/O shell around them: it builds the
balancer's view of the peers from gossiped status plus its own sends, has each attempt run
here or forwarded with the remaining deadline (`skyfleet.tasks.attempts`), and closes every
task with exactly one outcome in the ledger, whatever happens: a malformed request, a
Cancel call, the caller's deadline or disconnection, or a bug in this code.

Cancellation has two sources, told apart so that each gets its outcome: a Cancel call
cancels the task's own routing task (FAILED, "cancelled"); the caller going away cancels
the submitting coroutine (DEADLINE_EXCEEDED if the deadline has come, else FAILED), and
with it the routing task and the attempt in flight, which frees the executor's slot.

A streamed task (`stream`) passes its chunks on as they come, pulled by its reader: the
attempt's next chunk is asked for only once the last one was taken, so the reader's pace
reaches the handler and nothing is buffered here. It runs in its reader's task: the
reader going away closes it, and with it the attempt (Cancel by key is for one-shot
tasks; a stream is cancelled by hanging up).
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
import uuid
from collections.abc import AsyncGenerator, Callable
from contextlib import aclosing
from dataclasses import dataclass

from skyfleet._generated.skyfleet.v1 import tasks_pb2
from skyfleet.balancing.balancer import Balancer
from skyfleet.balancing.peers import Locale, PeerLoad
from skyfleet.membership.swim import Swim
from skyfleet.policy.model import PolicyDocument
from skyfleet.tasks.attempts import Attempts, RemoteExecute
from skyfleet.tasks.errors import TaskRejected
from skyfleet.tasks.executor import Executor
from skyfleet.tasks.flight import Cut, Done, Failed, Refused, Retry, Send, TaskFlight
from skyfleet.tasks.ledger import Ledger, Outcome, refused
from skyfleet.tasks.peer_views import PeerViews
from skyfleet.tasks.requests import check_request
from skyfleet.tasks.verdict import AttemptResult, Verdict

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
    chunks: int = 0
    """A stream's chunks delivered (its output is in them, not in `output`)."""
    size: int = 0
    """Their bytes."""
    first_chunk: float = 0.0
    """Seconds from submission to a stream's first chunk; 0 if none came."""


class Router:
    def __init__(
        self,
        *,
        swim: Swim,
        executor: Executor,
        remote: RemoteExecute,
        policy: PolicyDocument,
        clock: Callable[[], float] = time.monotonic,
        rng: random.Random | None = None,
    ) -> None:
        self.name = swim.name
        self._swim = swim
        self._executor = executor
        self._attempts = Attempts(swim.name, executor, remote)
        self._clock = clock
        meta = swim.meta
        self.balancer = Balancer(
            local=Locale(cloud=meta.cloud, region=meta.region, zone=meta.zone),
            policy=policy,
            rng=rng or random.Random(),
        )
        self.ledger = Ledger()
        self._views = PeerViews(swim.name)
        self._flights: dict[str, set[asyncio.Task[Result]]] = {}
        """Routing tasks in progress by idempotency key, for Cancel."""
        self.on_result: Callable[[Result], None] | None = None
        """Called with every successful or failed routed task (metrics)."""

    def set_policy(self, policy: PolicyDocument) -> None:
        self.balancer.set_policy(policy)

    # ------------------------------------------------------------------ view

    def peers(self) -> list[PeerLoad]:
        """The balancer's view (`skyfleet.tasks.peer_views`), ourselves exact."""
        return self._views.views(
            self._swim.members(), self._swim.statuses(), self._executor.report(0, ""),
            self._clock(),
        )

    def _advertisers(self, handler: str) -> list[str]:
        """Members, in any state, whose last status lists `handler`, ourselves included."""
        return self._views.advertisers(
            handler, self._swim.members(), self._swim.statuses(), self._executor.report(0, "")
        )

    # ------------------------------------------------------------------ submit

    async def submit(self, req: tasks_pb2.SubmitTaskRequest, timeout: float | None) -> Result:
        """Run a task somewhere within `timeout` seconds (None: no deadline); exactly one
        ledger outcome whatever happens. Raises TaskRejected for the outcomes a caller
        should see as an error of its own (`skyfleet.tasks.errors`)."""
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
            outcome = refused(exc.why)
            raise
        except asyncio.CancelledError:
            if deadline is not None and self._clock() >= deadline - DEADLINE_SLACK:
                outcome = Outcome.DEADLINE_EXCEEDED
            raise
        finally:
            self.ledger.close(outcome)

    async def stream(
        self, req: tasks_pb2.SubmitTaskRequest, timeout: float | None
    ) -> AsyncGenerator[bytes | Result, None]:
        """Run a task somewhere within `timeout` seconds and give its output chunks as
        they come, then its one `Result`; exactly one ledger outcome whatever happens,
        the reader hanging up (closing this) included. Raises TaskRejected only before
        the first chunk: after it, every end is a `Result` saying what was delivered."""
        self.ledger.submitted += 1
        deadline = None if timeout is None else self._clock() + timeout
        outcome = Outcome.FAILED
        try:
            check_request(req)
            key = req.idempotency_key or uuid.uuid4().hex
            async with aclosing(self._stream_route(req, key, deadline)) as items:
                async for item in items:
                    if isinstance(item, Result):
                        outcome = item.outcome
                        if self.on_result is not None:
                            self.on_result(item)
                    yield item
        except TaskRejected as exc:
            outcome = refused(exc.why)
            raise
        except (asyncio.CancelledError, GeneratorExit):
            if deadline is not None and self._clock() >= deadline - DEADLINE_SLACK:
                outcome = Outcome.DEADLINE_EXCEEDED
            raise
        except Exception:
            # A bug here must not lose the task: it still gets its one outcome.
            log.exception("streaming failed", extra={"task": req.idempotency_key})
            yield Result(Outcome.FAILED, error="internal error while streaming (logged)")
        finally:
            self.ledger.close(outcome)

    async def _stream_route(
        self, req: tasks_pb2.SubmitTaskRequest, key: str, deadline: float | None
    ) -> AsyncGenerator[bytes | Result, None]:
        start = self._clock()
        task = tasks_pb2.SubmitTaskRequest()
        task.CopyFrom(req)
        task.idempotency_key = key
        flight = self.flight(req, deadline)
        chunks = size = 0
        first_chunk = 0.0
        while True:
            step = flight.next(self.peers(), self._clock())
            if isinstance(step, Refused):
                raise _rejection(step)
            if isinstance(step, Failed):
                yield Result(Outcome.FAILED, error=step.error, attempts=step.attempts)
                return
            self._count_attempt(step)
            peer = step.choice.peer
            sent = self._clock()
            remaining = None if deadline is None else deadline - sent
            result = AttemptResult(Verdict.UNREACHABLE, error="no longer a member")
            address: str | None = ""
            token = None
            if peer.name != self.name:
                member = self._swim.member(peer.name)
                address = None if member is None else member.meta.address
                if address is not None:
                    token = self._views.sent(peer.name, self._clock())
            try:
                if address is not None:
                    events = self._attempts.stream(
                        peer.name, address, task, step.choice.attempt, step.timeout, remaining,
                        timeout_is_deadline=step.timeout_is_deadline,
                    )
                    async with aclosing(events) as attempt:
                        async for event in attempt:
                            if isinstance(event, AttemptResult):
                                result = event
                            elif isinstance(event, bytes):
                                if not chunks:
                                    first_chunk = self._clock() - start
                                chunks += 1
                                size += len(event)
                                yield event
            except BaseException:
                flight.abandon(step)  # cancelled, or a bug: the peer is not to blame
                raise
            finally:
                if token is not None:
                    self._views.returned(peer.name, token)
            end = flight.settle(step, result, self._clock(), delivered=chunks > 0)
            latency = self._clock() - start
            if isinstance(end, Done):
                yield Result(Outcome.SUCCEEDED, b"", "", end.peer, end.attempts, latency,
                             chunks=chunks, size=size, first_chunk=first_chunk)
                return
            if isinstance(end, Cut):
                outcome = (Outcome.DEADLINE_EXCEEDED if end.verdict is Verdict.DEADLINE
                           else Outcome.FAILED)
                yield Result(
                    outcome, b"", f"stream cut after {chunks} chunks ({size} bytes): {end.error}",
                    end.peer, end.attempts, latency, chunks=chunks, size=size,
                    first_chunk=first_chunk,
                )
                return
            if isinstance(end, Refused):
                raise _rejection(end)
            self._log_retry(
                key, flight.attempt, peer.name, peer.cloud, end.verdict, end.error, sent
            )

    def flight(self, req: tasks_pb2.SubmitTaskRequest, deadline: float | None) -> TaskFlight:
        """A flight of `req` under this router's balancer (long-running tasks launch
        their runs through it too)."""
        return TaskFlight(
            self.balancer,
            req.kind or req.handler,
            handler=req.handler,
            advertisers=self._advertisers,
            unheard=lambda: self._views.unheard(self._swim.members(), self._swim.statuses()),
            clouds=req.constraints.clouds,
            regions=req.constraints.regions,
            session=req.session,
            deadline=deadline,
        )

    def _log_retry(
        self, key: str, attempt: int, peer: str, cloud: str, verdict: Verdict, error: str,
        sent: float,
    ) -> None:
        """`sent`: when the attempt went out, on the router's clock; the line says how
        long it lasted, so a reader can tell when traffic last went to a failed peer."""
        log.info(
            "attempt failed",
            extra={"task": key, "attempt": attempt, "peer": peer, "cloud": cloud,
                   "verdict": verdict.value, "error": error,
                   "seconds": round(self._clock() - sent, 4)},
        )

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
        task = tasks_pb2.SubmitTaskRequest()
        task.CopyFrom(req)
        task.idempotency_key = key
        flight = self.flight(req, deadline)
        while True:
            step = flight.next(self.peers(), self._clock())
            if isinstance(step, Refused):
                raise _rejection(step)
            if isinstance(step, Failed):
                return Result(Outcome.FAILED, error=step.error, attempts=step.attempts)
            self._count_attempt(step)
            peer = step.choice.peer
            sent = self._clock()
            try:
                result = await self._attempt(step, task)
            except BaseException:
                flight.abandon(step)  # cancelled, or a bug: the peer is not to blame
                raise
            end = flight.settle(step, result, self._clock())
            if isinstance(end, Done):
                latency = self._clock() - start
                return Result(Outcome.SUCCEEDED, end.output, "", end.peer, end.attempts, latency,
                              duplicate=end.duplicate)
            if isinstance(end, Refused):
                raise _rejection(end)
            assert isinstance(end, Retry)  # a one-shot attempt delivers nothing before it ends
            self._log_retry(
                key, flight.attempt, peer.name, peer.cloud, end.verdict, end.error, sent
            )

    def _count_attempt(self, send: Send) -> None:
        self.ledger.attempts += 1
        self.ledger.retried += send.retry
        self.ledger.failed_over += send.failover

    async def _attempt(self, send: Send, task: tasks_pb2.SubmitTaskRequest) -> AttemptResult:
        peer = send.choice.peer
        if peer.name == self.name:
            return await self._attempts.run(
                peer.name, "", task, send.choice.attempt, send.timeout,
                timeout_is_deadline=send.timeout_is_deadline,
            )
        member = self._swim.member(peer.name)
        if member is None:
            return AttemptResult(Verdict.UNREACHABLE, error="no longer a member")
        token = self._views.sent(peer.name, self._clock())
        try:
            return await self._attempts.run(
                peer.name, member.meta.address, task, send.choice.attempt, send.timeout,
                timeout_is_deadline=send.timeout_is_deadline,
            )
        finally:
            self._views.returned(peer.name, token)


def _rejection(refused: Refused) -> TaskRejected:
    return TaskRejected(refused.why, refused.detail)
