"""Shared fixtures: free loopback ports and local fleets of real agent processes."""

from __future__ import annotations

import socket
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

# Test helpers import each other as `tests.<package>.<module>`.
REPO_ROOT = Path(__file__).resolve().parents[1]
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))


@pytest.fixture
def free_ports() -> Callable[[int], list[int]]:
    """Ports free on 127.0.0.1 right now (bound then released; the kernel does not hand
    them out again soon, and a clash fails the agent's start loudly rather than silently)."""

    def take(n: int) -> list[int]:
        socks = []
        for _ in range(n):
            s = socket.socket()
            s.bind(("127.0.0.1", 0))
            socks.append(s)
        ports = [s.getsockname()[1] for s in socks]
        for s in socks:
            s.close()
        return ports

    return take
