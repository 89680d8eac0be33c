"""HashiCorp Serf as the reference: `serf agent -profile=lan`, polled over its RPC.

Serf's RPC is a stream of msgpack objects over TCP: a request is a header
`{"Command", "Seq"}` optionally followed by a body; a response is a header
`{"Seq", "Error"}` followed by a body for commands that return one. One connection per
agent, kept open, answers `members` in well under a millisecond, so polling costs the
agents almost nothing (spawning `serf members -format json` per poll would cost a process
per node per poll on a two-core machine and blur the timings it measures).
"""

from __future__ import annotations

import asyncio
import shutil
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import msgpack
from membership_procs import LOOPBACK
from membership_systems import NodeSpec, Status

# Serf member status -> SWIM state. "failed" is memberlist's dead; "leaving"/"left" are a
# graceful departure, which this benchmark never asks for.
_STATUS = {
    "alive": Status.ALIVE,
    "failed": Status.DEAD,
    "leaving": Status.LEFT,
    "left": Status.LEFT,
}

RPC_TIMEOUT = 2.0
"""Seconds one RPC may take before the poll counts as failed."""


class SerfRpcError(RuntimeError):
    """The agent answered a request with an error, or with something that is not Serf RPC."""


class SerfRpcClient:
    """One msgpack RPC connection to one Serf agent."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._reader = reader
        self._writer = writer
        self._unpacker = msgpack.Unpacker(raw=False)
        self._seq = 0

    @classmethod
    async def open(cls, port: int) -> SerfRpcClient:
        reader, writer = await asyncio.open_connection(LOOPBACK, port)
        client = cls(reader, writer)
        try:
            await client._call("handshake", {"Version": 1}, has_body=False)
        except BaseException:
            await client.close()
            raise
        return client

    async def _next_object(self) -> Any:
        for obj in self._unpacker:
            return obj
        for _ in range(1024):  # a members answer for 20 nodes is a few reads at most
            chunk = await self._reader.read(65536)
            if not chunk:
                raise ConnectionResetError("serf RPC connection closed")
            self._unpacker.feed(chunk)
            for obj in self._unpacker:
                return obj
        raise SerfRpcError("serf RPC: no complete msgpack object after 1024 reads")

    async def _call(self, command: str, body: dict[str, Any] | None, has_body: bool) -> Any:
        seq = self._seq
        self._seq += 1
        payload = msgpack.packb({"Command": command, "Seq": seq})
        if body is not None:
            payload += msgpack.packb(body)
        self._writer.write(payload)
        await self._writer.drain()
        async with asyncio.timeout(RPC_TIMEOUT):
            header = await self._next_object()
            if not isinstance(header, dict) or header.get("Seq") != seq:
                raise SerfRpcError(f"serf RPC {command}: unexpected header {header!r}")
            if header.get("Error"):
                raise SerfRpcError(f"serf RPC {command}: {header['Error']}")
            return await self._next_object() if has_body else None

    async def members(self) -> Mapping[str, Status]:
        body = await self._call("members", None, has_body=True)
        try:
            return {m["Name"]: _STATUS[m["Status"]] for m in body["Members"]}
        except (KeyError, TypeError) as exc:
            raise SerfRpcError(f"serf RPC members: unexpected answer ({exc!r})") from None

    async def join(self, seed: NodeSpec) -> None:
        body = await self._call(
            "join", {"Existing": [seed.gossip_addr], "Replay": False}, has_body=True
        )
        if not isinstance(body, dict) or body.get("Num", 0) < 1:
            raise SerfRpcError(f"serf RPC join {seed.gossip_addr}: joined nobody ({body!r})")

    async def close(self) -> None:
        self._writer.close()
        try:
            await self._writer.wait_closed()
        except OSError:
            pass


class SerfSystem:
    """Serf agents with the LAN profile, started alone and joined by `serf join` RPC."""

    label = "Serf"
    ports_per_node = 2
    shows_suspicion = False

    def __init__(self, binary: str = "serf") -> None:
        path = shutil.which(binary)
        if path is None:
            raise FileNotFoundError(f"{binary!r} not found on PATH (apt-get install serf)")
        self._binary = path

    def prepare(self, names: list[str], work_dir: Path) -> None:
        """Serf needs no setup: no encryption key, as Serf's own quick start."""

    def plan(self, names: list[str], ports: list[int]) -> list[NodeSpec]:
        return [
            NodeSpec(name=name, gossip_port=ports[2 * i], api_port=ports[2 * i + 1])
            for i, name in enumerate(names)
        ]

    def argv(self, node: NodeSpec, run_dir: Path) -> list[str]:
        return [
            self._binary,
            "agent",
            "-profile=lan",
            f"-node={node.name}",
            f"-bind={node.gossip_addr}",
            f"-rpc-addr={node.api_addr}",
            "-log-level=warn",
        ]

    async def connect(self, node: NodeSpec) -> SerfRpcClient:
        return await SerfRpcClient.open(node.api_port)
