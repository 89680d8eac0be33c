"""Agent processes: start, signal, stop, and watch them through the admin API.

Each agent is `python -m skyfleet agent run --config FILE` with its stderr (JSON log lines)
in DIR/logs/<name>.log. Waiting is always polling with a deadline, never a fixed sleep.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterable
from pathlib import Path

from skyfleet.client import AgentClient, AgentError, MemberRow, tls_files_in
from skyfleet.localfleet.layout import AgentSpec, FleetLayout
from skyfleet.localfleet.netns import exec_prefix
from skyfleet.transport.tls import TlsMaterial


class FleetTimeout(AssertionError):
    """A fleet did not reach the awaited state in time; the message says what was seen."""


class AgentProcess:
    def __init__(self, spec: AgentSpec, config: Path, log: Path) -> None:
        self.spec = spec
        self.config = config
        self.log = log
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self.log.parent.mkdir(parents=True, exist_ok=True)
        with self.log.open("ab") as log:
            command = [sys.executable, "-m", "skyfleet", "agent", "run"]
            command += ["--config", str(self.config)]
            if self.spec.netns is not None:
                command = exec_prefix(self.spec.netns) + command
            self.proc = subprocess.Popen(
                command,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=log,
                start_new_session=True,  # Ctrl-C in a terminal reaches only the supervisor
            )

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def signal(self, sig: signal.Signals) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(sig)

    def stop(self, timeout: float = 10.0) -> int | None:
        """SIGTERM (graceful leave), then SIGKILL if it does not exit in time."""
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGCONT)  # a stopped process cannot handle SIGTERM
            self.proc.terminate()
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        return self.proc.returncode


class LocalFleet:
    """A set of agent processes sharing one CA under `root`."""

    def __init__(self, root: Path, specs: Iterable[AgentSpec]) -> None:
        self.layout = FleetLayout(root)
        self.specs = {s.name: s for s in specs}
        self.agents: dict[str, AgentProcess] = {}
        self.layout.ensure_ca()
        self._admin = TlsMaterial.load(tls_files_in(self.layout.tls, "admin"))

    def start(self, names: Iterable[str] | None = None) -> None:
        for name in names if names is not None else self.specs:
            spec = self.specs[name]
            config = self.layout.write_agent(spec)
            agent = AgentProcess(spec, config, self.layout.log_path(name))
            agent.start()
            self.agents[name] = agent

    def stop(self) -> None:
        for agent in self.agents.values():
            agent.signal(signal.SIGCONT)
            agent.signal(signal.SIGTERM)
        for agent in self.agents.values():
            agent.stop()

    def __enter__(self) -> LocalFleet:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def running(self) -> list[str]:
        return [n for n, a in self.agents.items() if a.running]

    async def views(self, names: Iterable[str]) -> dict[str, dict[str, MemberRow]]:
        """Each named agent's member table (an agent that does not answer is left out)."""

        async def one(name: str) -> tuple[str, dict[str, MemberRow] | None]:
            spec = self.specs[name]
            async with AgentClient(spec.address, self._admin, agent_name=name) as client:
                try:
                    _, rows = await client.list_members(timeout=2.0)
                except AgentError:
                    return name, None
            return name, {r.name: r for r in rows}

        results = await asyncio.gather(*(one(n) for n in names))
        return {n: v for n, v in results if v is not None}

    async def wait_for(
        self,
        predicate: Callable[[dict[str, dict[str, MemberRow]]], bool],
        observers: Iterable[str],
        *,
        timeout: float,
        what: str,
        interval: float = 0.1,
    ) -> float:
        """Poll the observers' views until `predicate(views)` holds; seconds it took."""
        observers = list(observers)
        start = time.monotonic()
        views: dict[str, dict[str, MemberRow]] = {}
        while time.monotonic() - start < timeout:
            views = await self.views(observers)
            if len(views) == len(observers) and predicate(views):
                return time.monotonic() - start
            await asyncio.sleep(interval)
        summary = {o: {m: r.state for m, r in v.items()} for o, v in views.items()}
        raise FleetTimeout(f"timed out after {timeout:.0f}s waiting for {what}; views: {summary}")

    async def wait_states(
        self, subject: str, states: set[str], observers: Iterable[str], *, timeout: float
    ) -> float:
        """Wait until every observer sees `subject` in one of `states`."""
        return await self.wait_for(
            lambda views: all(subject in v and v[subject].state in states for v in views.values()),
            observers,
            timeout=timeout,
            what=f"{subject} in {sorted(states)}",
        )

    async def wait_converged(self, names: Iterable[str], *, timeout: float) -> float:
        """Wait until each named agent sees every named agent alive."""
        names = list(names)
        return await self.wait_for(
            lambda views: all(
                all(n in v and v[n].state == "alive" for n in names) for v in views.values()
            ),
            names,
            timeout=timeout,
            what=f"{len(names)} agents to see each other alive",
        )


# Agents this process did not start (a later `skyfleet local down`, a later `pulumi up`)
# are known by pid and config path only. A pid is signalled only while /proc shows it
# still running that config, so a reused pid is never touched.

STOP_GRACE = 10.0
_POLL = 0.05


def _proc_state(pid: int) -> str | None:
    """The kernel's one-letter state of `pid` (Z: exited, not yet reaped), None if gone."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return stat.rpartition(")")[2].split()[0]


def exited(pid: int) -> bool:
    return _proc_state(pid) in (None, "Z", "X")


def runs_agent(pid: int, config: Path | str) -> bool:
    """Whether `pid` is alive and still the agent started with `config`."""
    if exited(pid):
        return False
    try:
        argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return False
    return str(config).encode() in argv


def _signal_agent(pid: int, config: Path | str, sig: signal.Signals) -> None:
    if runs_agent(pid, config):
        with contextlib.suppress(ProcessLookupError):  # it exited since the check
            os.kill(pid, sig)


def stop_agent(pid: int, config: Path | str, grace: float = STOP_GRACE) -> bool:
    """AgentProcess.stop for an agent known by pid: SIGCONT (a stopped process cannot
    handle SIGTERM), SIGTERM (graceful leave), SIGKILL once `grace` runs out. True if it
    had to be killed."""
    if not runs_agent(pid, config):
        return False
    for sig in (signal.SIGCONT, signal.SIGTERM):
        _signal_agent(pid, config, sig)
    deadline = time.monotonic() + grace
    killed = False
    while not exited(pid):
        if time.monotonic() > deadline:
            _signal_agent(pid, config, signal.SIGKILL)
            killed, deadline = True, time.monotonic() + grace
        time.sleep(_POLL)
    return killed
