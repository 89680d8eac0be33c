"""One measured run: N real agents of one system on loopback, from launch to teardown.

Phases, each bounded by a deadline:
1. Launch all N agents at once, none knowing any other, and poll until every agent's
   membership API answers: the *start-up* time (process start, imports, listening).
2. Open one more API connection per agent and use it once (so no connection set-up is
   timed), then tell agents 1..N-1 at once to join through node 0 (`serf join`, Admin/
   Join) and poll every agent's member list until every agent lists all N alive: the
   *join* time, from the join command. The launch-to-converged time is reported too.
3. Settle, then pause polling and count the bytes the agents send each other (iptables)
   and the CPU they burn (/proc) over a steady-state window. Polling is paused because
   Skyfleet's admin API shares the gossip port, and its traffic must not be counted.
4. `kill -9` the last node and poll until every survivor shows it dead: *detection*.
Every agent is killed and reaped when the run ends, however it ends.
"""

from __future__ import annotations

import asyncio
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from membership_iptables import LoopbackByteCounter
from membership_procs import AgentProcesses, PortAllocator, cpu_seconds
from membership_recorder import RunRecorder
from membership_systems import MembershipClient, MembershipSystem, NodeSpec, port_accepts


@dataclass(frozen=True, slots=True, kw_only=True)
class RunSettings:
    poll_interval: float = 0.05
    """Pause between two polls of one agent; the achieved gaps are reported."""
    start_timeout: float = 30.0
    """Seconds for the seed's API to answer."""
    join_timeout: float = 60.0
    settle: float = 2.0
    """Seconds after convergence before the byte window, so join traffic is not counted."""
    steady_window: float = 10.0
    detect_timeout: float = 60.0


@dataclass(slots=True)
class RunResult:
    system: str
    n: int
    run: int
    up_s: float | None = None
    join_s: float | None = None
    launch_to_converged_s: float | None = None
    detect_first_s: float | None = None
    detect_all_s: float | None = None
    bytes_per_node_s: float | None = None
    bytes_per_node_s_by_proto: dict[str, float] = field(default_factory=dict)
    cpu_per_node_pct: float | None = None
    false_deaths: int = 0
    false_suspicions: int | None = None
    """None for a system that does not show suspicion (Serf)."""
    polls: int = 0
    poll_errors: int = 0
    poll_gap_ms: dict[str, float] = field(default_factory=dict)
    slowest_pair: tuple[str, str, float] | None = None
    """(observer, subject, s after launch): the last pair to see each other alive."""
    error: str | None = None


class RunFailed(RuntimeError):
    """A phase missed its deadline or an agent died on its own; the message says which."""


class PollGate:
    """Lets the bench stop all polling and know when the last in-flight poll is done."""

    def __init__(self) -> None:
        self._open = asyncio.Event()
        self._open.set()
        self._idle = asyncio.Event()
        self._idle.set()
        self._inflight = 0

    async def enter(self) -> None:
        await self._open.wait()
        self._inflight += 1
        self._idle.clear()

    def leave(self) -> None:
        self._inflight -= 1
        if self._inflight == 0:
            self._idle.set()

    async def pause(self, timeout: float) -> None:
        self._open.clear()
        async with asyncio.timeout(timeout):
            await self._idle.wait()

    def resume(self) -> None:
        self._open.set()


@dataclass
class _Ctx:
    system: MembershipSystem
    settings: RunSettings
    recorder: RunRecorder
    gate: PollGate
    procs: AgentProcesses
    pollers: list[asyncio.Task[None]] = field(default_factory=list)
    polls: int = 0
    errors: int = 0
    last_error: str = ""


async def _connect(ctx: _Ctx, node: NodeSpec, timeout: float) -> MembershipClient:
    """Connect to the agent's API once it listens; fail fast if the agent died."""
    deadline = time.monotonic() + timeout
    while True:
        _check_alive(ctx, spared="")
        if await port_accepts(node.api_port):
            try:
                return await ctx.system.connect(node)
            except OSError as exc:
                ctx.last_error = f"{node.name}: {exc}"
        if time.monotonic() >= deadline:
            raise RunFailed(f"{node.name}: API not answering within {timeout:.0f} s")
        await asyncio.sleep(0.02)


def _check_alive(ctx: _Ctx, spared: str) -> None:
    """Raise if an agent other than `spared` (the victim) has exited on its own."""
    crashed = {n: c for n, c in ctx.procs.exited().items() if n != spared}
    if crashed:
        name, code = next(iter(crashed.items()))
        tail = ctx.procs.log_tail(name)
        raise RunFailed(f"agent {name} exited with status {code}:\n{tail}")


async def _poll(ctx: _Ctx, node: NodeSpec, client: MembershipClient | None) -> None:
    """Poll one agent until cancelled; errors (agent busy, restarting) are counted, retried."""
    try:
        if client is None:
            client = await _connect(ctx, node, ctx.settings.start_timeout)
        for _ in range(10_000_000):  # ends by cancellation; the bound only guards a bug
            await ctx.gate.enter()
            try:
                view = await client.members()
            except (OSError, ValueError, TimeoutError) as exc:
                ctx.errors += 1
                ctx.last_error = f"{node.name}: {exc}"
                view = None
            finally:
                ctx.gate.leave()
            if view is not None:
                ctx.polls += 1
                ctx.recorder.observe(time.monotonic(), node.name, view)
            await asyncio.sleep(ctx.settings.poll_interval)
    finally:
        if client is not None:
            await client.close()


async def _until(
    ctx: _Ctx, done: Callable[[], bool], timeout: float, what: str, spared: str = ""
) -> None:
    """Wait for `done()` while watching for agents that exit on their own."""
    deadline = time.monotonic() + timeout
    while not done():
        _check_alive(ctx, spared)
        for task in ctx.pollers:
            if task.done() and not task.cancelled() and (exc := task.exception()):
                raise RunFailed(f"{what}: polling {task.get_name()} failed: {exc}")
        if time.monotonic() >= deadline:
            hint = f"(last poll error: {ctx.last_error})" if ctx.last_error else ""
            raise RunFailed(f"{what}: not reached within {timeout:.0f} s {hint}".rstrip())
        await asyncio.sleep(0.02)


async def _steady_state(
    ctx: _Ctx, counter: LoopbackByteCounter, nodes: list[NodeSpec], result: RunResult
) -> None:
    await ctx.gate.pause(timeout=10)
    ctx.recorder.polling_paused()
    try:
        pids = ctx.procs.pids()
        counter.zero()
        cpu0 = {name: cpu_seconds(pid) for name, pid in pids.items()}
        start = time.monotonic()
        await asyncio.sleep(ctx.settings.steady_window)
        sent = counter.read_bytes()
        elapsed = time.monotonic() - start
        cpu = sum(cpu_seconds(pid) - cpu0[name] for name, pid in pids.items())
    finally:
        ctx.gate.resume()
    per_node_s = {proto: count / len(nodes) / elapsed for proto, count in sent.items()}
    result.bytes_per_node_s = sum(per_node_s.values())
    result.bytes_per_node_s_by_proto = per_node_s
    result.cpu_per_node_pct = 100.0 * cpu / len(nodes) / elapsed


async def run_once(
    system: MembershipSystem,
    names: list[str],
    run: int,
    *,
    settings: RunSettings,
    ports: PortAllocator,
    counter: LoopbackByteCounter,
    run_dir: Path,
) -> RunResult:
    """Measure one run; a missed deadline is reported in `error`, never raised."""
    nodes = system.plan(names, ports.take(len(names) * system.ports_per_node))
    counter.watch([node.gossip_port for node in nodes])
    run_dir.mkdir(parents=True, exist_ok=True)
    result = RunResult(system=system.label, n=len(nodes), run=run)
    procs = AgentProcesses(run_dir)
    seed = nodes[0]
    ctx = _Ctx(system, settings, RunRecorder(names, 0.0), PollGate(), procs)
    pollers = ctx.pollers
    try:
        ctx.recorder.launched_at = time.monotonic()
        for node in nodes:
            procs.start(node.name, system.argv(node, run_dir))
        for node in nodes:
            pollers.append(asyncio.create_task(_poll(ctx, node, None), name=node.name))
        await _until(ctx, ctx.recorder.all_up, settings.start_timeout, "start-up")

        joiners = [await _connect(ctx, node, settings.start_timeout) for node in nodes[1:]]
        try:
            await asyncio.gather(*(client.members() for client in joiners))  # warm up
            ctx.recorder.join_started(time.monotonic())
            await asyncio.gather(*(client.join(seed) for client in joiners))
            await _until(ctx, ctx.recorder.all_converged, settings.join_timeout, "join")
        except RunFailed as exc:
            short = ctx.recorder.not_converged()
            detail = "; ".join(f"{o} sees {what}" for o, what in sorted(short.items())[:5])
            raise RunFailed(f"{exc} ({len(short)} not converged: {detail})") from None
        finally:
            await asyncio.gather(*(client.close() for client in joiners))

        await asyncio.sleep(settings.settle)
        await _steady_state(ctx, counter, nodes, result)

        victim = nodes[-1].name
        pollers[-1].cancel()
        ctx.recorder.kill(victim, procs.kill(victim))
        await _until(ctx, ctx.recorder.all_detected, settings.detect_timeout, "detect", victim)
    except (RunFailed, OSError, TimeoutError) as exc:
        result.error = f"{type(exc).__name__}: {exc}"
    finally:
        for task in pollers:
            task.cancel()
        await asyncio.gather(*pollers, return_exceptions=True)
        procs.close()
    _summarise(ctx, result)
    return result


def _summarise(ctx: _Ctx, result: RunResult) -> None:
    rec = ctx.recorder
    result.up_s = rec.up_seconds()
    result.join_s = rec.join_seconds()
    result.launch_to_converged_s = rec.launch_to_converged_seconds()
    result.slowest_pair = rec.slowest_pair()
    result.detect_first_s, result.detect_all_s = rec.detection_seconds()
    result.false_deaths = len(rec.false_deaths)
    if ctx.system.shows_suspicion:
        result.false_suspicions = len(rec.false_suspicions)
    result.polls, result.poll_errors = ctx.polls, ctx.errors
    gaps = sorted(rec.poll_gaps)
    if gaps:
        result.poll_gap_ms = {
            "p50": 1000 * statistics.median(gaps),
            "p95": 1000 * gaps[min(len(gaps) - 1, int(0.95 * len(gaps)))],
            "max": 1000 * gaps[-1],
        }
