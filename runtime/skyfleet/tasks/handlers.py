"""Task handlers: async functions from payload bytes to output bytes, or async generators
of output chunks (a model's tokens as they come), found through the `skyfleet.handlers`
entry-point group (built-ins included), so a deployment adds its own by installing a
package, and the agent config chooses which ones it serves.

Either kind serves either call: a streamed task of a one-shot handler gets its output as
one chunk; a one-shot task of a streaming handler gets the chunks joined (up to
`MAX_JOINED_OUTPUT`). A streaming handler is suspended at each `yield` until the reader
takes the chunk, so a slow reader slows it down instead of filling memory.

A handler raises `BadPayload` for input that can never succeed (the client's fault:
INVALID_ARGUMENT, not retried elsewhere); any other exception is a failure of this run
(retried on another peer under the policy, unless chunks were already delivered).
"""

from __future__ import annotations

import asyncio
import inspect
import json
import math
import random
import threading
from collections.abc import AsyncGenerator, Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass, field
from importlib.metadata import distribution, entry_points
from typing import Any, TypeGuard

from skyfleet.config.tasks import TaskSettings
from skyfleet.tasks.requests import MAX_NAME_LENGTH

ENTRY_POINT_GROUP = "skyfleet.handlers"

MAX_HANDLERS = 256
"""Handlers one agent may serve: its status lists every one, and peers refuse a status
with more (`skyfleet.transport.codec`)."""


def is_handler_name(name: str) -> bool:
    """What a status may advertise: 1-`MAX_NAME_LENGTH` characters, no whitespace."""
    return 0 < len(name) <= MAX_NAME_LENGTH and not any(c.isspace() for c in name)


class BadPayload(ValueError):
    """The payload cannot be handled by this handler, anywhere."""


MAX_CHUNK = 1024 * 1024
"""Largest chunk a streaming handler may yield: one gRPC message carries it, with room
under gRPC's 4 MiB default."""

MAX_JOINED_OUTPUT = 3 * 1024 * 1024
"""Largest output of a streaming handler run as a one-shot task (chunks joined): the
answer is one gRPC message. Larger outputs are for the streamed call."""


Progress = Callable[[float, str], None]
"""How a handler reports how far it is: a fraction from 0 to 1 and a short note."""


def no_progress(fraction: float, note: str) -> None:
    """Where a run's progress goes when nothing reads it (one-shot and streamed tasks)."""


@dataclass(frozen=True, slots=True)
class HandlerContext:
    """What one run of a handler may read besides its payload: made per run."""

    settings: TaskSettings
    rng: random.Random = field(default_factory=random.Random)
    session: str = ""
    """The task's session (`SubmitTaskRequest.session`), empty if none: a handler that
    keeps conversation state keys it by this; the policy's session affinity sends the
    session's next task here while this agent serves it."""
    config: Mapping[str, Any] = field(default_factory=dict)
    """This handler's own table of the agent config (`[handlers.<name>]`), e.g. the
    model endpoint an agent calls."""
    progress: Progress = no_progress
    """Report progress: a long-running task's record shows the last report, and its
    holders hear of it with the run's next heartbeat."""


Handler = Callable[[bytes, HandlerContext], Awaitable[bytes]]
StreamHandler = Callable[[bytes, HandlerContext], AsyncGenerator[bytes, None]]


def is_streaming(fn: Handler | StreamHandler) -> TypeGuard[StreamHandler]:
    """A handler written as an async generator streams its output."""
    return inspect.isasyncgenfunction(fn)


def _json_payload(payload: bytes) -> dict[str, Any]:
    if not payload:
        return {}
    try:
        value = json.loads(payload)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise BadPayload(f"payload: not JSON ({exc})") from None
    if not isinstance(value, dict):
        raise BadPayload("payload: expected a JSON object")
    return value


def _number(doc: dict[str, Any], key: str, default: float, lo: float, hi: float) -> float:
    value = doc.get(key, default)
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not lo <= value <= hi:
        raise BadPayload(f"payload.{key}: expected a number in [{lo}, {hi}], got {value!r}")
    return float(value)


async def echo(payload: bytes, ctx: HandlerContext) -> bytes:
    """Returns the payload: the no-op for routing overhead benchmarks."""
    return payload


def draw_service_time(dist: str, mean: float, scv: float, rng: random.Random) -> float:
    """A service time with the given mean and squared coefficient of variation."""
    if dist == "fixed" or mean == 0.0:
        # A zero mean is a valid "return at once"; the exponential and lognormal
        # formulas would divide by it or take its log.
        return mean
    if dist == "exponential":
        return rng.expovariate(1.0 / mean)
    if dist == "lognormal":
        sigma2 = math.log1p(scv)
        return rng.lognormvariate(math.log(mean) - sigma2 / 2, math.sqrt(sigma2))
    if dist == "bimodal":
        # 90 % short, 10 % ten times longer, scaled to the requested mean.
        short = mean / (0.9 + 0.1 * 10)
        return short * (10 if rng.random() < 0.1 else 1)
    raise BadPayload(f"payload.dist: unknown distribution {dist!r}")


async def sleep(payload: bytes, ctx: HandlerContext) -> bytes:
    """Sleeps for a service time drawn from a distribution (payload or agent defaults):
    stands in for an I/O-bound agent call in demos and benchmarks."""
    doc = _json_payload(payload)
    s = ctx.settings
    dist = doc.get("dist", s.sleep_distribution)
    mean = _number(doc, "mean", s.sleep_mean, 0.0, 3600.0)
    scv = _number(doc, "scv", s.sleep_scv, 0.0, 100.0)
    seconds = draw_service_time(str(dist), mean, scv, ctx.rng)
    # In slices of at most a second, each reported: a long sleep stands in for a
    # long-running agent task, whose record shows how far it is.
    loop = asyncio.get_running_loop()
    start = loop.time()
    while (left := start + seconds - loop.time()) > 0:
        await asyncio.sleep(min(1.0, left))
        done = min(seconds, loop.time() - start)
        ctx.progress(done / seconds, f"slept {done:.1f}s of {seconds:.1f}s")
    return json.dumps({"slept": round(seconds, 6)}).encode()


async def chunks(payload: bytes, ctx: HandlerContext) -> AsyncGenerator[bytes, None]:
    """Streams `count` chunks of `size` bytes, `interval` seconds apart, and fails after
    `fail_after` of them if asked: stands in for a model streaming tokens in demos,
    benchmarks and the fleet's own streaming tests."""
    doc = _json_payload(payload)
    count = int(_number(doc, "count", 10, 0, 10_000_000))
    size = int(_number(doc, "size", 16, 0, MAX_CHUNK))
    interval = _number(doc, "interval", 0.0, 0.0, 3600.0)
    fail_after = int(_number(doc, "fail_after", -1, -1, 10_000_000))
    body = b"." * size
    for i in range(count):
        if i == fail_after:
            raise RuntimeError(f"chunks: failed after {i} chunks, as asked")
        if interval:
            await asyncio.sleep(interval)
        yield (b"%d:" % i + body)[:size]


def matrix_power_norm(n: int, rounds: int, seed: int, stop: threading.Event) -> float | None:
    """||M^rounds|| for a seeded random n x n matrix M, or None once `stop` is set: checked
    between rounds, so a cancelled task frees its core within one matrix product."""
    import numpy as np  # here, not at the top: every agent start would pay ~0.2 s for it

    rng = np.random.default_rng(seed)
    m = rng.standard_normal((n, n)) / np.sqrt(n)
    acc = np.eye(n)
    for _ in range(rounds):
        if stop.is_set():
            return None
        acc = acc @ m
    return float(np.linalg.norm(acc))


async def cpu(payload: bytes, ctx: HandlerContext) -> bytes:
    """A CPU-bound numpy job (n x n matrix products), run off the event loop. A thread
    cannot be cancelled, so cancellation (the task's deadline) asks it to stop."""
    doc = _json_payload(payload)
    n = int(_number(doc, "n", 128, 1, 2048))
    rounds = int(_number(doc, "rounds", 4, 1, 1000))
    seed = int(_number(doc, "seed", 0, 0, 2**31))
    stop = threading.Event()
    try:
        norm = await asyncio.to_thread(matrix_power_norm, n, rounds, seed, stop)
    finally:
        stop.set()
    return json.dumps({"n": n, "rounds": rounds, "norm": norm}).encode()


def installed_handlers() -> frozenset[str]:
    """The names `HandlerRegistry.from_entry_points` accepts here: what a stack may ask
    its hosts to serve, checked before any agent is started with a name none would load."""
    return frozenset(ep.name for ep in entry_points(group=ENTRY_POINT_GROUP))


def builtin_handlers() -> tuple[str, ...]:
    """The handlers skyfleet itself declares (pyproject's `skyfleet.handlers` entries),
    sorted: what every host serves unless its stack says otherwise."""
    return tuple(sorted(ep.name for ep in distribution("skyfleet").entry_points
                        if ep.group == ENTRY_POINT_GROUP))


class UnknownHandler(LookupError):
    pass


class HandlerRegistry:
    def __init__(self, handlers: Mapping[str, Handler | StreamHandler]) -> None:
        """Refuses what the agent's status could not advertise: peers would drop every
        packet carrying it, and with them the agent's membership."""
        bad = [name for name in handlers if not is_handler_name(name)]
        if bad:
            raise UnknownHandler(
                f"tasks.handlers: {bad[0][:80]!r} is no handler name "
                f"(1-{MAX_NAME_LENGTH} characters, no spaces)"
            )
        if len(handlers) > MAX_HANDLERS:
            raise UnknownHandler(
                f"tasks.handlers: {len(handlers)} handlers, more than {MAX_HANDLERS}"
            )
        self._handlers: dict[str, Handler | StreamHandler] = dict(handlers)

    @classmethod
    def from_entry_points(cls, enabled: Iterable[str] | None = None) -> HandlerRegistry:
        """Load every installed handler, or only `enabled` (an unknown name is an error
        naming it, so a typo in the config fails the start)."""
        found = {ep.name: ep for ep in entry_points(group=ENTRY_POINT_GROUP)}
        names = list(found) if enabled is None else list(enabled)
        missing = [n for n in names if n not in found]
        if missing:
            raise UnknownHandler(
                f"tasks.handlers: no handler named {', '.join(missing)} "
                f"(installed: {', '.join(sorted(found))})"
            )
        return cls({n: found[n].load() for n in names})

    def get(self, name: str) -> Handler | StreamHandler:
        try:
            return self._handlers[name]
        except KeyError:
            raise UnknownHandler(f"handler: unknown handler {name!r}") from None

    def names(self) -> list[str]:
        return sorted(self._handlers)
