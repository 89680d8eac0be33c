"""A closed-loop load generator: C workers, each submitting its next task as soon as the
previous one has an outcome, through a `FleetClient` (the client SDK: random entry
agent, another one when an entry is unreachable). The same generator drives Skyfleet
and the bare echo server, so their ratio isolates what lies between them.
"""

from __future__ import annotations

import asyncio
import statistics
import time
from dataclasses import dataclass

from skyfleet.fleet_client import FleetClient

PAYLOAD = b"x" * 64
TASK_TIMEOUT = 10.0


@dataclass(frozen=True, slots=True)
class Record:
    started: float
    """Wall clock (time.time()), so it compares with agents' log stamps."""
    finished: float
    status: str
    executed_by: str
    attempts: int
    entries: int


@dataclass(frozen=True, slots=True)
class Throughput:
    concurrency: int
    tasks: int
    seconds: float
    per_second: float
    p50_ms: float
    p99_ms: float
    succeeded: float
    """Fraction of tasks that succeeded."""


async def closed_loop(
    client: FleetClient, concurrency: int, stop: asyncio.Event, records: list[Record]
) -> None:
    """Run `concurrency` workers until `stop` is set; append every outcome."""

    async def worker() -> None:
        while not stop.is_set():
            started = time.time()
            out = await client.submit("echo", PAYLOAD, timeout=TASK_TIMEOUT)
            records.append(
                Record(
                    started,
                    time.time(),
                    out.status,
                    out.executed_by,
                    out.attempts,
                    out.entries,
                )
            )

    await asyncio.gather(*(worker() for _ in range(concurrency)))


async def measure(
    client: FleetClient, concurrency: int, *, warmup: float, seconds: float
) -> Throughput:
    """Tasks completed in a window of `seconds` after `warmup` (channels open, caches
    warm); latency percentiles of the tasks started and finished in the window."""
    stop = asyncio.Event()
    records: list[Record] = []
    load = asyncio.get_running_loop().create_task(closed_loop(client, concurrency, stop, records))
    await asyncio.sleep(warmup)
    start = time.time()
    await asyncio.sleep(seconds)
    end = time.time()
    stop.set()
    await load
    window = [r for r in records if r.started >= start and r.finished <= end]
    done = [r for r in records if start <= r.finished <= end]
    lat = sorted((r.finished - r.started) * 1000 for r in window) or [float("nan")]
    return Throughput(
        concurrency=concurrency,
        tasks=len(done),
        seconds=end - start,
        per_second=len(done) / (end - start),
        p50_ms=statistics.median(lat),
        p99_ms=lat[min(len(lat) - 1, int(0.99 * len(lat)))],
        succeeded=sum(r.status == "succeeded" for r in done) / max(1, len(done)),
    )
