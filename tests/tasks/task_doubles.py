"""Handlers for task tests: real async handlers that record every start and wait for the
test to release them, so a test decides when each task ends (no sleeps, no timing)."""

from __future__ import annotations

import asyncio
import json
from collections import Counter
from collections.abc import AsyncGenerator, Callable

from skyfleet.tasks.handlers import Handler, HandlerContext, StreamHandler


class Gates:
    """A `gated` handler and its controls.

    The payload names the task. A start is recorded as (executor, payload); the run
    then waits until `release(payload)`; a payload starting with b"fail" raises once
    released, one in `fail_on` raises on those executors. Cancellation is recorded too.
    """

    def __init__(self) -> None:
        self.starts: list[tuple[str, bytes]] = []
        self.cancelled: list[tuple[str, bytes]] = []
        self._events: dict[bytes, asyncio.Event] = {}
        self.open_all = False
        self.fail_on: set[str] = set()
        self.produced: Counter[bytes] = Counter()

    def event(self, payload: bytes) -> asyncio.Event:
        return self._events.setdefault(payload, asyncio.Event())

    def release(self, *payloads: bytes) -> None:
        for p in payloads:
            self.event(p).set()

    def started(self, payload: bytes) -> int:
        return sum(1 for _, p in self.starts if p == payload)

    def per_executor(self) -> Counter[tuple[str, bytes]]:
        return Counter(self.starts)

    def handler(self, executor: str) -> Handler:
        async def gated(payload: bytes, ctx: HandlerContext) -> bytes:
            self.starts.append((executor, payload))
            if executor in self.fail_on:
                raise RuntimeError(f"{executor} refuses {payload.decode()}")
            try:
                if not self.open_all:
                    await self.event(payload).wait()
            except asyncio.CancelledError:
                self.cancelled.append((executor, payload))
                raise
            if payload.startswith(b"fail"):
                raise RuntimeError(f"{payload.decode()} failed on {executor}")
            return executor.encode() + b":" + payload

        return gated

    def streamer(self, executor: str) -> StreamHandler:
        """The `tokens` streaming handler: payload `{"name", "count", "size", "cut_after",
        "gate_after"}`. Yields `count` chunks of `size` bytes named `<executor>:<name>:<i>`
        (padded); raises after `cut_after` chunks if given; waits for `release(name)`
        after `gate_after` chunks if given. Starts, chunks produced (`produced`) and
        cancellations are recorded by name."""

        async def tokens(payload: bytes, ctx: HandlerContext) -> AsyncGenerator[bytes, None]:
            doc = json.loads(payload)
            name = doc["name"].encode()
            self.starts.append((executor, name))
            if executor in self.fail_on:
                raise RuntimeError(f"{executor} refuses {doc['name']}")
            try:
                for i in range(doc.get("count", 3)):
                    if i == doc.get("cut_after"):
                        raise RuntimeError(f"{doc['name']} cut on {executor} after {i}")
                    if i == doc.get("gate_after"):
                        await self.event(name).wait()
                    chunk = f"{executor}:{doc['name']}:{i};".encode()
                    self.produced[name] += 1
                    yield chunk.ljust(doc.get("size", 0), b".")
            except (asyncio.CancelledError, GeneratorExit):
                self.cancelled.append((executor, name))
                raise

        return tokens


async def until(condition: Callable[[], bool], what: str, steps: int = 10_000) -> None:
    """Let the event loop run (no sleeping) until `condition` holds."""
    for _ in range(steps):
        if condition():
            return
        await asyncio.sleep(0)
    raise AssertionError(f"never happened: {what}")
