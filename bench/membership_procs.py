"""Agent processes and loopback ports for the real-process membership benchmark.

A run starts up to a few dozen agents. Every one of them must die with the run, whatever
ends it: a normal return, an exception, Ctrl-C, SIGTERM, or even SIGKILL of the bench
itself. The first four are handled by `AgentProcesses.close()` in a `finally`; the last by
starting each agent under `setpriv --pdeathsig KILL`, which asks the kernel to kill the
child when the bench dies (a Python `preexec_fn` could do the same, but is unsafe once
grpc's threads exist).
"""

from __future__ import annotations

import os
import random
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path

LOOPBACK = "127.0.0.1"
"""The only address the benchmark binds or dials: it never leaves this machine."""


def _ephemeral_low() -> int:
    """Lowest port the kernel hands out to outgoing connections."""
    try:
        return int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return 32768


def _bindable(port: int) -> bool:
    """True if both TCP and UDP can bind `port` on loopback right now."""
    for kind in (socket.SOCK_STREAM, socket.SOCK_DGRAM):
        with socket.socket(socket.AF_INET, kind) as sock:
            try:
                sock.bind((LOOPBACK, port))
            except OSError:
                return False
    return True


class PortAllocator:
    """Hands out loopback ports that are free for TCP and UDP and never repeats one.

    Ports come from below the kernel's ephemeral range, so an agent's outgoing connection
    can never take a port we are about to give another agent, and the byte counter can tell
    an agent's listening port from a client's ephemeral one. Ports are never reused within
    an invocation, so a run never meets the TIME_WAIT leftovers of the previous one.
    """

    def __init__(self, low: int = 20000, high: int | None = None, seed: int | None = None):
        self._high = min(high or _ephemeral_low(), _ephemeral_low())
        self._rng = random.Random(seed)
        self._next = low + self._rng.randrange(0, 2000)
        self._given: set[int] = set()

    def take(self, count: int) -> list[int]:
        ports: list[int] = []
        while len(ports) < count:
            if self._next >= self._high:
                raise RuntimeError(f"no free loopback port left below {self._high}")
            port = self._next
            self._next += 1
            if port not in self._given and _bindable(port):
                self._given.add(port)
                ports.append(port)
        return ports


class AgentProcesses:
    """Owns every agent process of one run, keyed by node name.

    `close()` kills and reaps all of them; it is idempotent and safe in any `finally`.
    Output goes to one log file per agent in `log_dir`, kept for post-mortems.
    """

    def __init__(self, log_dir: Path) -> None:
        self._log_dir = log_dir
        self._procs: dict[str, subprocess.Popen[bytes]] = {}
        self._pdeathsig = shutil.which("setpriv")

    def start(self, name: str, argv: list[str], env: dict[str, str] | None = None) -> None:
        if name in self._procs:
            raise ValueError(f"agent {name!r} already started")
        if self._pdeathsig:
            argv = [self._pdeathsig, "--pdeathsig", "KILL", "--", *argv]
        with open(self._log_dir / f"{name}.log", "wb") as log:
            self._procs[name] = subprocess.Popen(
                argv,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                # Own session: Ctrl-C in the terminal reaches the bench only, which then
                # tears the agents down in order instead of racing their own shutdown.
                start_new_session=True,
                env=env,
            )

    def pid(self, name: str) -> int:
        return self._procs[name].pid

    def pids(self) -> dict[str, int]:
        return {name: proc.pid for name, proc in self._procs.items()}

    def exited(self) -> dict[str, int]:
        """Agents that have already exited on their own, with their exit status."""
        return {
            name: code for name, proc in self._procs.items() if (code := proc.poll()) is not None
        }

    def kill(self, name: str) -> float:
        """SIGKILL one agent (a crash, no goodbye); returns the monotonic time of the kill."""
        proc = self._procs[name]
        proc.send_signal(signal.SIGKILL)
        killed_at = time.monotonic()
        proc.wait(timeout=5)
        return killed_at

    def log_tail(self, name: str, lines: int = 20) -> str:
        path = self._log_dir / f"{name}.log"
        try:
            return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""

    def close(self) -> None:
        for proc in self._procs.values():
            if proc.poll() is None:
                try:
                    proc.send_signal(signal.SIGKILL)
                except ProcessLookupError:
                    pass
        deadline = time.monotonic() + 10
        for proc in self._procs.values():
            try:
                proc.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                pass


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process so far (0.0 once it is gone)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    # Fields after the ")" start at field 3 (state); utime and stime are fields 14 and 15.
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
