"""Runs tasks on this agent: at most `capacity` at once, at most `queue_limit` waiting,
and at most once per idempotency key; one-shot (`execute`) or streamed (`streaming`).

Idempotency: a retried task (same key) that already ran here returns the first run's
result; one still running is awaited rather than started again. That is what makes
"retry on another peer" safe for the peers that did get the first attempt. A streamed
run is not replayed (its output is not kept): a repeat of its key while it runs or
after it ended is refused (`AlreadyStreamed`), so no output is ever produced twice.

A streamed run holds its slot from the moment `streaming` is entered until it is left,
and the handler advances only as its chunks are taken: the reader's pace is the run's.
Its latency, for the status peers balance by, is the time to its first chunk: a stream
that lasts minutes says nothing about how quickly this agent answers.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections import OrderedDict
from collections.abc import AsyncGenerator, AsyncIterator, Callable, Mapping
from contextlib import aclosing, asynccontextmanager
from dataclasses import dataclass
from typing import Any, cast

from skyfleet.config.tasks import TaskSettings
from skyfleet.membership.messages import StatusReport
from skyfleet.tasks.handlers import (
    MAX_CHUNK,
    MAX_JOINED_OUTPUT,
    Handler,
    HandlerContext,
    HandlerRegistry,
    Progress,
    StreamHandler,
    is_streaming,
    no_progress,
)
from skyfleet.tasks.stats import Ewma

MAX_REMEMBERED = 100_000
"""Idempotency entries kept at most, oldest dropped first (besides the TTL)."""


class Overloaded(Exception):
    """Capacity and queue are full: the caller should try another peer."""


class AlreadyStreamed(LookupError):
    """A streamed run with this idempotency key ran or runs here: its output is not
    replayed (the caller's mistake, INVALID_ARGUMENT; a failover never asks twice)."""


class OutputTooLarge(RuntimeError):
    """A streaming handler's output, joined for a one-shot call, or one of its chunks,
    exceeds what one message carries: a failure of the handler's run."""


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
        handler_config: Mapping[str, Mapping[str, Any]] | None = None,
    ) -> None:
        """`handler_config`: each handler's table of the agent config, by name."""
        self.registry = registry
        self.settings = settings
        self._clock = clock
        self._slots = asyncio.Semaphore(settings.capacity)
        self._rng = rng or random.Random()
        self._handler_config = dict(handler_config or {})
        self._running: dict[str, asyncio.Future[bytes]] = {}
        """Keys of one-shot runs going on: a repeat waits for the run's output."""
        self._results: OrderedDict[str, tuple[float, bytes]] = OrderedDict()
        """Keys of one-shot runs that succeeded, oldest end first: (when, output)."""
        self._streaming: set[str] = set()
        """Keys of streamed runs going on (never expired: a stream may outlast the TTL)."""
        self._streamed: OrderedDict[str, float] = OrderedDict()
        """Keys of streamed runs that ended well, oldest end first."""
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

    def _context(
        self, handler: str, session: str, progress: Progress = no_progress
    ) -> HandlerContext:
        return HandlerContext(
            self.settings, self._rng, session=session,
            config=self._handler_config.get(handler, {}), progress=progress,
        )

    def has_room(self) -> bool:
        """Whether a task given now would run or queue rather than be refused."""
        return not (self.inflight >= self.settings.capacity
                    and self.queued >= self.settings.queue_limit)

    def _check_room(self) -> None:
        if not self.has_room():
            raise Overloaded(
                f"{self.inflight} running and {self.queued} queued (capacity "
                f"{self.settings.capacity}, queue {self.settings.queue_limit})"
            )

    async def execute(
        self,
        handler: str,
        payload: bytes,
        idempotency_key: str,
        *,
        session: str = "",
        progress: Progress = no_progress,
    ) -> Execution:
        """Run the task here. Raises UnknownHandler, BadPayload, AlreadyStreamed,
        Overloaded, or the handler's own exception; cancellation (deadline) propagates."""
        fn = self.registry.get(handler)
        if idempotency_key:
            self._expire()
            if idempotency_key in self._streaming or idempotency_key in self._streamed:
                raise AlreadyStreamed(_streamed_message(idempotency_key))
            done = self._results.get(idempotency_key)
            if done is not None:
                return Execution(done[1], duplicate=True)
            going = self._running.get(idempotency_key)
            if going is not None:
                return Execution(await asyncio.shield(going), duplicate=True)
        self._check_room()
        future: asyncio.Future[bytes] = asyncio.get_running_loop().create_future()
        if idempotency_key:
            self._running[idempotency_key] = future
        try:
            output = await self._run(fn, payload, self._context(handler, session, progress))
        except BaseException as exc:
            # A failed or cancelled run may be retried here: nothing is kept of it, and
            # anyone waiting on it is released with the same error.
            if not future.done():
                future.set_exception(
                    exc if isinstance(exc, Exception) else RuntimeError("cancelled")
                )
                future.exception()  # retrieved: no "never retrieved" warning
            raise
        else:
            future.set_result(output)
            if idempotency_key:
                self._results[idempotency_key] = (self._clock(), output)
        finally:
            if idempotency_key:
                self._running.pop(idempotency_key, None)
        return Execution(output, duplicate=False)

    @asynccontextmanager
    async def streaming(
        self, handler: str, payload: bytes, idempotency_key: str, *, session: str = ""
    ) -> AsyncIterator[AsyncIterator[bytes]]:
        """Run the task here as a stream: entered once the run holds a slot (the
        caller may say "started"), it gives the run's chunks, taken at the caller's
        pace; leaving it ends the run, cancelling the handler if it has not finished.
        Raises what `execute` raises, the handler's own exception from the chunks."""
        fn = self.registry.get(handler)
        if idempotency_key:
            self._expire()
            if idempotency_key in self._streaming or idempotency_key in self._streamed or (
                    idempotency_key in self._results or idempotency_key in self._running):
                raise AlreadyStreamed(_streamed_message(idempotency_key))
        self._check_room()
        if idempotency_key:
            self._streaming.add(idempotency_key)
        finished = False
        try:
            await self._acquire()
            try:
                ctx = self._context(handler, session)
                async with aclosing(self._stream_run(fn, payload, ctx)) as run:
                    yield run
                finished = True
            finally:
                self.inflight -= 1
                self._slots.release()
        finally:
            if idempotency_key:
                self._streaming.discard(idempotency_key)
                if finished:  # a failed or cut run may be tried here again
                    self._streamed[idempotency_key] = self._clock()

    async def _stream_run(
        self, fn: Handler | StreamHandler, payload: bytes, ctx: HandlerContext
    ) -> AsyncGenerator[bytes, None]:
        start = self._clock()
        first = True
        try:
            async with aclosing(_chunks_of(fn, payload, ctx)) as chunks:
                async for chunk in chunks:
                    if first:
                        now = self._clock()
                        self._latency.observe(now - start, now)
                        first = False
                    yield chunk
        except Exception:
            self.failed += 1
            self._errors.observe(1.0, self._clock())
            raise
        now = self._clock()
        if first:
            self._latency.observe(now - start, now)
        self.executed += 1
        self._errors.observe(0.0, now)

    async def _acquire(self) -> None:
        self.queued += 1
        try:
            await self._slots.acquire()
        finally:
            self.queued -= 1
        self.inflight += 1

    async def _run(self, fn: Handler | StreamHandler, payload: bytes, ctx: HandlerContext) -> bytes:
        await self._acquire()
        start = self._clock()
        try:
            output = await _joined(fn, payload, ctx)
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
            at = next(iter(self._results.values()))[0]
            if at >= horizon and len(self._results) <= MAX_REMEMBERED:
                break
            self._results.popitem(last=False)
        while self._streamed:
            at = next(iter(self._streamed.values()))
            if at >= horizon and len(self._streamed) <= MAX_REMEMBERED:
                break
            self._streamed.popitem(last=False)


def _streamed_message(key: str) -> str:
    return (f"idempotency_key {key!r}: a stream with this key ran or runs here; "
            "streamed output is not replayed")


async def _chunks_of(
    fn: Handler | StreamHandler, payload: bytes, ctx: HandlerContext
) -> AsyncGenerator[bytes, None]:
    """A handler's output as chunks, each checked: a one-shot handler's is one chunk."""
    if not is_streaming(fn):
        output = await cast(Handler, fn)(payload, ctx)
        if output:
            yield output
        return
    async with aclosing(fn(payload, ctx)) as chunks:
        async for chunk in chunks:
            if not isinstance(chunk, bytes):
                raise TypeError(f"handler yielded {type(chunk).__name__}, expected bytes")
            if len(chunk) > MAX_CHUNK:
                raise OutputTooLarge(f"a chunk of {len(chunk)} bytes, over {MAX_CHUNK}")
            yield chunk


async def _joined(fn: Handler | StreamHandler, payload: bytes, ctx: HandlerContext) -> bytes:
    """A handler's output whole, for a one-shot call."""
    if not is_streaming(fn):
        return await cast(Handler, fn)(payload, ctx)
    parts: list[bytes] = []
    size = 0
    async with aclosing(_chunks_of(fn, payload, ctx)) as chunks:
        async for chunk in chunks:
            size += len(chunk)
            if size > MAX_JOINED_OUTPUT:
                raise OutputTooLarge(
                    f"output over {MAX_JOINED_OUTPUT} bytes for a one-shot call: stream it"
                )
            parts.append(chunk)
    return b"".join(parts)
