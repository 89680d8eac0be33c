"""Agent processes: start, signal, stop, and watch them through the admin API.

Each agent is `python -m skyfleet agent run --config FILE` with its stderr (JSON log lines)
in DIR/logs/<name>.log. Waiting is always polling with a deadline, never a fixed sleep.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterable
from pathlib import Path

from skyfleet.client import tls_files_in
from skyfleet.localfleet.layout import AgentSpec, FleetLayout
from skyfleet.localfleet.netns import exec_prefix
from skyfleet.localfleet.watch import FleetTimeout, FleetWatch
from skyfleet.transport.tls import TlsMaterial

__all__ = ["AgentProcess", "FleetTimeout", "LocalFleet", "runs_agent", "start_detached",
           "stop_agents"]


def agent_command(spec: AgentSpec, config: Path) -> list[str]:
    command = [sys.executable, "-m", "skyfleet", "agent", "run", "--config", str(config)]
    return exec_prefix(spec.netns) + command if spec.netns is not None else command


def start_detached(spec: AgentSpec, config: Path, log: Path) -> int:
    """Start an agent that outlives this process (the engine's provider process exits
    after each command): its own session, stdin and stdout on /dev/null, stderr appended to
    `log`. Returns the pid; nothing waits on it here (`exited` reaps it if it is ours)."""
    log.parent.mkdir(parents=True, exist_ok=True)
    command = agent_command(spec, config)
    executable = shutil.which(command[0]) or command[0]
    return os.posix_spawn(executable, command, dict(os.environ), setsid=True, file_actions=[
        (os.POSIX_SPAWN_OPEN, 0, os.devnull, os.O_RDONLY, 0),
        (os.POSIX_SPAWN_OPEN, 1, os.devnull, os.O_WRONLY, 0),
        (os.POSIX_SPAWN_OPEN, 2, str(log), os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644),
    ])


class AgentProcess:
    def __init__(self, spec: AgentSpec, config: Path, log: Path) -> None:
        self.spec = spec
        self.config = config
        self.log = log
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self.log.parent.mkdir(parents=True, exist_ok=True)
        with self.log.open("ab") as log:
            self.proc = subprocess.Popen(
                agent_command(self.spec, self.config),
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


class LocalFleet(FleetWatch):
    """A set of agent processes sharing one CA under `root`, started by this process
    (the runtime's own start: real-process tests and benchmarks; the `local` stack
    starts its agents through the engine instead)."""

    def __init__(self, root: Path, specs: Iterable[AgentSpec]) -> None:
        self.layout = FleetLayout(root)
        self.specs = {s.name: s for s in specs}
        self.agents: dict[str, AgentProcess] = {}
        self.layout.ensure_ca()
        super().__init__({s.name: s.address for s in self.specs.values()},
                         TlsMaterial.load(tls_files_in(self.layout.tls, "admin")))

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
    try:  # reap it if it is a child of ours (start_detached), else let its parent
        os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:
        pass
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


def stop_agents(agents: Iterable[tuple[int, Path | str]], grace: float = STOP_GRACE) -> list[int]:
    """AgentProcess.stop for agents known by (pid, config), all at once: SIGCONT (a
    stopped process cannot handle SIGTERM) and SIGTERM (graceful leave) to every one, then
    SIGKILL to those still running when `grace` runs out. Returns the pids it killed."""
    running = [(pid, config) for pid, config in agents if runs_agent(pid, config)]
    for pid, config in running:
        for sig in (signal.SIGCONT, signal.SIGTERM):
            _signal_agent(pid, config, sig)
    deadline = time.monotonic() + grace
    killed: list[int] = []
    while left := [(pid, config) for pid, config in running if not exited(pid)]:
        if time.monotonic() > deadline:
            for pid, config in left:
                if pid not in killed:
                    _signal_agent(pid, config, signal.SIGKILL)
                    killed.append(pid)
            deadline = time.monotonic() + grace
        time.sleep(_POLL)
    return killed
