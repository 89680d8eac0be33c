"""Run `skyfleet` as an operator does: a process of its own (the console script's exit
status and every byte it writes, tracebacks included), with an environment that holds no
SKYFLEET_* variable unless the test sets it."""

from __future__ import annotations

import asyncio
import os
import sys
from dataclasses import dataclass

COMMAND = (sys.executable, "-m", "skyfleet")


@dataclass(frozen=True, slots=True)
class Run:
    code: int
    out: bytes
    err: str

    @property
    def text(self) -> str:
        return self.out.decode()


def environment(env: dict[str, str] | None) -> dict[str, str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("SKYFLEET_")}
    return clean | (env or {})


async def skyfleet(*args: str, env: dict[str, str] | None = None, stdin: bytes = b"") -> Run:
    """From a test whose event loop serves in-process agents meanwhile."""
    proc = await asyncio.create_subprocess_exec(
        *COMMAND, *args, env=environment(env), stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(proc.communicate(stdin), timeout=60)
    assert proc.returncode is not None
    return Run(proc.returncode, out, err.decode())


async def started(*args: str, env: dict[str, str] | None = None) -> asyncio.subprocess.Process:
    """A command left running, for a test that reads its output line by line meanwhile
    (`policy status --wait`), its stdin closed."""
    return await asyncio.create_subprocess_exec(
        *COMMAND, *args, env=environment(env), stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )
