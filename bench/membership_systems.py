"""What the benchmark needs from a membership system, so Serf and Skyfleet run the same
script: how to start one agent, and how to ask an agent whom it sees in which state.
"""

from __future__ import annotations

import asyncio
import enum
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from membership_procs import LOOPBACK


class Status(enum.Enum):
    """A member's state as one observer reports it, mapped onto SWIM's four states.

    Serf shows no `suspect` (it surfaces only memberlist's alive/dead as alive/failed), so
    suspicions are visible for Skyfleet only.
    """

    ALIVE = "alive"
    SUSPECT = "suspect"
    DEAD = "dead"
    LEFT = "left"


@dataclass(frozen=True, slots=True)
class NodeSpec:
    """One agent of a run: its name and the loopback ports it owns."""

    name: str
    gossip_port: int
    """Where peers reach the agent; the byte counter watches exactly these ports."""
    api_port: int
    """Where the bench polls membership (Serf: a separate RPC port; Skyfleet: the same)."""

    @property
    def gossip_addr(self) -> str:
        return f"{LOOPBACK}:{self.gossip_port}"

    @property
    def api_addr(self) -> str:
        return f"{LOOPBACK}:{self.api_port}"


class MembershipClient(Protocol):
    async def members(self) -> Mapping[str, Status]:
        """The observer's current member list, itself included."""
        ...

    async def join(self, seed: NodeSpec) -> None:
        """Have the agent join the fleet through `seed` (`serf join`, Admin/Join);
        returns once the agent says it joined."""
        ...

    async def close(self) -> None: ...


class MembershipSystem(Protocol):
    label: str
    """Column name in the results, e.g. "Serf"."""

    ports_per_node: int

    shows_suspicion: bool
    """Whether member lists can show `suspect` (false suspicions are counted only then)."""

    def prepare(self, names: list[str], work_dir: Path) -> None:
        """One-time setup for an invocation (Skyfleet: the CA and node certificates)."""
        ...

    def plan(self, names: list[str], ports: list[int]) -> list[NodeSpec]:
        """Assign the freshly allocated ports (`ports_per_node` per name) to nodes."""
        ...

    def argv(self, node: NodeSpec, run_dir: Path) -> list[str]:
        """Command line of one agent, started alone (it joins on the bench's command)."""
        ...

    async def connect(self, node: NodeSpec) -> MembershipClient:
        """A client for the node's membership API; raises OSError until the API is up."""
        ...


async def port_accepts(port: int) -> bool:
    """Whether something accepts TCP connections on the loopback port right now.

    The bench connects its gRPC client only once this is true: a channel that met a refused
    connection sits in reconnect backoff, which would be charged to the agent's join time.
    """
    try:
        _, writer = await asyncio.open_connection(LOOPBACK, port)
    except OSError:
        return False
    writer.close()
    await writer.wait_closed()
    return True
