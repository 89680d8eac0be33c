"""Runs tasks on this agent: at most `capacity` at once, at most `queue_limit` waiting,
and at most once per idempotency key.

Idempotency: a retried task (same key) that already ran here returns the first run's
result; one still running is awaited rather than started again. That is what makes
"retry on another peer" safe for the peers that did get the first attempt.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass

from skyfleet.config.tasks import TaskSettings
from skyfleet.membership.messages import StatusReport
from skyfleet.tasks.handlers import Handler, HandlerContext, HandlerRegistry
from skyfleet.tasks.stats import Ewma

MAX_REMEMBERED = 100_000
"""Idempotency entries kept at most, oldest dropped first (besides the TTL)."""


class Overloaded(Exception):
    """Capacity and queue are full: the caller should try another peer."""


@dataclass(frozen=True, slots=True)
class Execution:
    output: bytes
    duplicate: bool


class Executor:
    def __init__(
        self,
        registry: HandlerRegistry,
        settings: TaskSettings,
        *,
        clock: Callable[[], float] = time.monotonic,
        rng: random.Random | None = None,
    ) -> None:
        self.registry = registry
        self.settings = settings
        self._clock = clock
        self._slots = asyncio.Semaphore(settings.capacity)
        self._ctx = HandlerContext(settings, rng or random.Random())
        self._results: OrderedDict[str, tuple[float, asyncio.Future[bytes]]] = OrderedDict()
        self.inflight = 0
        self.queued = 0
        self.executed = 0
        self.failed = 0
        self._latency = Ewma(settings.latency_decay)
        self._errors = Ewma(settings.latency_decay)

    def report(self, policy_version: int, policy_hash: str) -> StatusReport:
        """This executor's status, with the handlers it serves. One that serves none
        advertises no capacity either: an empty handler list with capacity is how agents
        that predate the list look, and those are taken as serving every handler."""
        handlers = tuple(self.registry.names())
        return StatusReport(
            policy_version=policy_version,
            policy_hash=policy_hash,
            inflight=self.inflight,
            queued=self.queued,
            capacity=self.settings.capacity if handlers else 0,
            latency_ms=self._latency.value * 1000.0,
            error_rate=self._errors.value,
            handlers=handlers,
        )

    async def execute(self, handler: str, payload: bytes, idempotency_key: str) -> Execution:
        """Run the task here. Raises UnknownHandler, BadPayload, Overloaded, or the
        handler's own exception; cancellation (deadline) propagates."""
        fn = self.registry.get(handler)
        if idempotency_key:
            self._expire()
            known = self._results.get(idempotency_key)
            if known is not None:
                return Execution(await asyncio.shield(known[1]), duplicate=True)
        if self.inflight >= self.settings.capacity and self.queued >= self.settings.queue_limit:
            raise Overloaded(
                f"{self.inflight} running and {self.queued} queued (capacity "
                f"{self.settings.capacity}, queue {self.settings.queue_limit})"
            )
        future: asyncio.Future[bytes] = asyncio.get_running_loop().create_future()
        if idempotency_key:
            self._results[idempotency_key] = (self._clock(), future)
        try:
            output = await self._run(fn, payload)
        except BaseException as exc:
            # A failed or cancelled run may be retried here: forget it, and release
            # anyone waiting on it with the same error.
            if idempotency_key:
                self._results.pop(idempotency_key, None)
            if not future.done():
                future.set_exception(
                    exc if isinstance(exc, Exception) else RuntimeError("cancelled")
                )
                future.exception()  # retrieved: no "never retrieved" warning
            raise
        future.set_result(output)
        return Execution(output, duplicate=False)

    async def _run(self, fn: Handler, payload: bytes) -> bytes:
        self.queued += 1
        try:
            await self._slots.acquire()
        finally:
            self.queued -= 1
        self.inflight += 1
        start = self._clock()
        try:
            output = await fn(payload, self._ctx)
        except Exception:
            self.failed += 1
            self._errors.observe(1.0, self._clock())
            raise
        finally:
            self.inflight -= 1
            self._slots.release()
        now = self._clock()
        self.executed += 1
        self._latency.observe(now - start, now)
        self._errors.observe(0.0, now)
        return output

    def _expire(self) -> None:
        horizon = self._clock() - self.settings.idempotency_ttl
        while self._results:
            key, (at, future) = next(iter(self._results.items()))
            if (at >= horizon or not future.done()) and len(self._results) <= MAX_REMEMBERED:
                break
            self._results.popitem(last=False)
