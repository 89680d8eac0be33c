"""An open-loop workload (Poisson arrivals at a fixed rate, like real users, who do not
wait for each other) through random entry agents, recording every task's one outcome."""

from __future__ import annotations

import asyncio
import random
import time
from dataclasses import dataclass, field

from skyfleet.fleet_client import FleetClient, Outcome


@dataclass(frozen=True, slots=True)
class Record:
    started: float
    """Seconds since the workload's start."""
    finished: float
    phase: str
    outcome: Outcome


@dataclass(slots=True)
class Workload:
    client: FleetClient
    rate: float
    """Tasks per second."""
    payload: bytes
    handler: str = "sleep"
    timeout: float = 10.0
    rng: random.Random = field(default_factory=random.Random)
    phase: str = "start"
    records: list[Record] = field(default_factory=list)
    submitted: int = 0
    _t0: float = 0.0
    _tasks: set[asyncio.Task[None]] = field(default_factory=set)

    def __post_init__(self) -> None:
        self._t0 = time.monotonic()

    def now(self) -> float:
        return time.monotonic() - self._t0

    async def run(self, stop: asyncio.Event) -> None:
        """Submit until `stop` is set, then wait for every task's outcome."""
        next_at = self.now()
        while not stop.is_set():
            next_at += self.rng.expovariate(self.rate)
            delay = next_at - self.now()
            if delay > 0:
                try:
                    async with asyncio.timeout(delay):
                        await stop.wait()
                    break
                except TimeoutError:
                    pass
            task = asyncio.get_running_loop().create_task(self._one(self.phase))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
        if self._tasks:
            await asyncio.wait(self._tasks, timeout=self.timeout * 3 + 5)

    async def _one(self, phase: str) -> None:
        self.submitted += 1
        started = self.now()
        outcome = await self.client.submit(self.handler, self.payload, timeout=self.timeout)
        self.records.append(Record(started, self.now(), phase, outcome))

    @property
    def lost(self) -> int:
        """Tasks submitted that never got an outcome."""
        return self.submitted - len(self.records)
