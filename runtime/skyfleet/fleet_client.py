"""A client of the whole fleet, not of one agent: it submits through any entry agent and,
when that agent is unreachable, resubmits the same task (same idempotency key) through
another, so losing a cloud loses no task. This is what a client SDK of Skyfleet does."""

from __future__ import annotations

import random
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace

import grpc

from skyfleet._generated.skyfleet.v1 import tasks_pb2, tasks_pb2_grpc
from skyfleet.client import outcome_name
from skyfleet.transport.peers import TASK_CHANNEL_OPTIONS
from skyfleet.transport.tls import TlsMaterial, secure_channel

# Entry-agent failures worth another entry agent: the agent is gone or overloaded.
_RETRY_ELSEWHERE = {grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.RESOURCE_EXHAUSTED}


@dataclass(frozen=True, slots=True)
class Entry:
    name: str
    address: str


@dataclass(frozen=True, slots=True)
class Outcome:
    """One task's single terminal outcome as the client saw it."""

    key: str
    status: str
    """succeeded | failed | deadline_exceeded | rejected (gRPC code name after `rejected:`)."""
    entry: str
    executed_by: str = ""
    attempts: int = 0
    """Executors the entry agent tried (more than 1: it failed over)."""
    entries: int = 1
    """Entry agents the client tried (more than 1: the first was unreachable)."""
    error: str = ""


class FleetClient:
    def __init__(
        self,
        entries: Sequence[Entry],
        tls: TlsMaterial,
        *,
        rng: random.Random | None = None,
        rest: float = 5.0,
        max_rest: float = 60.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        """An entry agent that fails to answer is tried last for `rest` seconds, twice as
        long after each further failure in a row (up to `max_rest`), as Envoy ejects a
        host for longer each time; an answer clears it."""
        self._entries = list(entries)
        self._rng = rng or random.Random()
        self._rest = rest
        self._max_rest = max_rest
        self._clock = clock
        self._down_until: dict[str, float] = {}
        self._strikes: dict[str, int] = {}
        creds = tls.channel_credentials()
        # Kept alive like an agent's task channels: a call to an entry agent whose cloud
        # went dark fails within about 1.5 s and is tried at the next entry.
        self._channels = {
            e.name: secure_channel(e.address, creds, e.name, TASK_CHANNEL_OPTIONS)
            for e in entries
        }
        self._stubs = {n: tasks_pb2_grpc.TasksStub(c) for n, c in self._channels.items()}

    async def close(self) -> None:
        for channel in self._channels.values():
            await channel.close(grace=None)

    async def submit(
        self, handler: str, payload: bytes, *, timeout: float, kind: str = ""
    ) -> Outcome:
        """Run one task; always returns its single outcome (never raises for the fleet's
        failures). Entry agents are tried in random order, those that recently failed
        last, until one answers: a whole cloud of entry points may be gone."""
        key = uuid.uuid4().hex
        request = tasks_pb2.SubmitTaskRequest(
            handler=handler, payload=payload, idempotency_key=key, kind=kind
        )
        now = self._clock()
        deadline = now + timeout
        order = self._rng.sample(self._entries, len(self._entries))
        entries = sorted(order, key=lambda e: self._down_until.get(e.name, 0.0) > now)
        last: Outcome | None = None
        for tried, entry in enumerate(entries, start=1):
            # One deadline for the task: the next entry gets what the last one left.
            left = deadline - self._clock()
            if left <= 0 and last is not None:
                return replace(last, status="deadline_exceeded", error=(
                    f"deadline exceeded after {tried - 1} entry agent(s): {last.error}"))
            try:
                reply = await self._stubs[entry.name].Submit(request, timeout=max(left, 0.0))
            except grpc.aio.AioRpcError as exc:
                code = exc.code()
                if code == grpc.StatusCode.DEADLINE_EXCEEDED:
                    return Outcome(
                        key,
                        "deadline_exceeded",
                        entry.name,
                        entries=tried,
                        error=exc.details() or "",
                    )
                last = Outcome(
                    key,
                    f"rejected:{code.name}",
                    entry.name,
                    entries=tried,
                    error=exc.details() or "",
                )
                if code in _RETRY_ELSEWHERE:
                    self._rest_entry(entry.name)
                    continue
                return last
            self._down_until.pop(entry.name, None)
            self._strikes.pop(entry.name, None)
            return Outcome(
                key,
                outcome_name(reply.outcome),
                entry.name,
                executed_by=reply.executed_by,
                attempts=reply.attempts,
                entries=tried,
                error=reply.error,
            )
        assert last is not None
        return last

    def _rest_entry(self, name: str) -> None:
        strikes = self._strikes.get(name, 0) + 1
        self._strikes[name] = strikes
        rest = min(self._max_rest, self._rest * 2 ** (strikes - 1))
        self._down_until[name] = self._clock() + rest
