"""Skyfleet under test: `skyfleet agent run --config FILE` with the LAN membership profile,
polled through `skyfleet.v1.Admin/ListMembers` over mutual TLS, as an operator would.

Real parts only: a fresh fleet CA per invocation, a node certificate per agent, an admin
client certificate for the bench, and one long-lived gRPC channel per agent (opening a TLS
channel per poll would measure handshakes, not membership).
"""

from __future__ import annotations

import shutil
import sys
from collections.abc import Mapping
from pathlib import Path

import grpc
from membership_procs import LOOPBACK
from membership_systems import NodeSpec, Status

from skyfleet._generated.skyfleet.v1 import admin_pb2, admin_pb2_grpc, membership_pb2
from skyfleet.security.certs import (
    create_ca,
    issue_admin_cert,
    issue_node_cert,
    write_cert_file,
    write_key_file,
)

ADMIN_NAME = "bench-admin"

RPC_TIMEOUT = 2.0
"""Seconds one ListMembers call may take before the poll counts as failed."""
JOIN_TIMEOUT = 15.0

_STATE = {
    membership_pb2.MEMBER_STATE_ALIVE: Status.ALIVE,
    membership_pb2.MEMBER_STATE_SUSPECT: Status.SUSPECT,
    membership_pb2.MEMBER_STATE_DEAD: Status.DEAD,
    membership_pb2.MEMBER_STATE_LEFT: Status.LEFT,
}

# Reconnect quickly: the default backoff (1 s, growing) after one refused connection would
# be charged to the agent's join time.
_CHANNEL_OPTIONS = [
    ("grpc.initial_reconnect_backoff_ms", 50),
    ("grpc.min_reconnect_backoff_ms", 50),
    ("grpc.max_reconnect_backoff_ms", 250),
]


class AdminMembersClient:
    """One mTLS channel to one agent's Admin service."""

    def __init__(self, channel: grpc.aio.Channel, node: str) -> None:
        self._channel = channel
        self._stub = admin_pb2_grpc.AdminStub(channel)
        self._node = node

    async def members(self) -> Mapping[str, Status]:
        try:
            reply = await self._stub.ListMembers(
                admin_pb2.ListMembersRequest(), timeout=RPC_TIMEOUT
            )
        except grpc.aio.AioRpcError as exc:
            raise OSError(f"{self._node}: ListMembers {exc.code().name}: {exc.details()}") from None
        view: dict[str, Status] = {}
        for member in reply.members:
            state = _STATE.get(member.state)
            if state is None:
                raise ValueError(
                    f"{self._node}: member {member.node.name!r} has state {member.state}"
                )
            view[member.node.name] = state
        # The answering agent is alive by definition, whether or not it lists itself.
        view.setdefault(reply.local_node or self._node, Status.ALIVE)
        return view

    async def join(self, seed: NodeSpec) -> None:
        request = admin_pb2.JoinRequest(seeds=[seed.gossip_addr])
        try:
            await self._stub.Join(request, timeout=JOIN_TIMEOUT)
        except grpc.aio.AioRpcError as exc:
            raise OSError(f"{self._node}: Join {exc.code().name}: {exc.details()}") from None

    async def close(self) -> None:
        await self._channel.close()


class SkyfleetSystem:
    """Skyfleet agents (this repository's `skyfleet agent run`), started alone and joined
    by the Admin/Join RPC, as `serf join` does for Serf."""

    label = "Skyfleet"
    ports_per_node = 1
    shows_suspicion = True

    def __init__(
        self, membership: Mapping[str, float] | None = None, *, runtime: Path | None = None
    ) -> None:
        """`membership`: settings on top of the LAN profile (`[membership]` keys).
        `runtime`: the `runtime/` folder of another checkout to run the agents from (an
        older version, measured side by side with this one as "Skyfleet-baseline")."""
        self._membership = dict(membership or {})
        self._runtime = runtime
        if runtime is not None:
            self.label = "Skyfleet-baseline"
        self._tls_dir: Path | None = None
        self._credentials: grpc.ChannelCredentials | None = None

    def prepare(self, names: list[str], work_dir: Path) -> None:
        tls = work_dir / "tls"
        tls.mkdir(parents=True, exist_ok=True)
        ca_pem, ca_key = create_ca("skyfleet bench CA", valid_days=2)
        write_cert_file(tls / "ca.pem", ca_pem)
        for name in names:
            cert, key = issue_node_cert(ca_pem, ca_key, name, [LOOPBACK], valid_days=2)
            write_cert_file(tls / f"{name}.pem", cert)
            write_key_file(tls / f"{name}.key", key)
        admin_cert, admin_key = issue_admin_cert(ca_pem, ca_key, ADMIN_NAME, valid_days=2)
        self._credentials = grpc.ssl_channel_credentials(
            root_certificates=ca_pem, private_key=admin_key, certificate_chain=admin_cert
        )
        self._tls_dir = tls

    def plan(self, names: list[str], ports: list[int]) -> list[NodeSpec]:
        return [
            NodeSpec(name=n, gossip_port=p, api_port=p) for n, p in zip(names, ports, strict=True)
        ]

    def argv(self, node: NodeSpec, run_dir: Path) -> list[str]:
        if self._tls_dir is None:
            raise RuntimeError("SkyfleetSystem.prepare() must run before argv()")
        config = run_dir / f"{node.name}.toml"
        state = run_dir / f"{node.name}-state"
        config.write_text(agent_toml(node, self._tls_dir, state, self._membership))
        command = [_skyfleet_command()]
        if self._runtime is not None:
            command = ["env", f"PYTHONPATH={self._runtime}", sys.executable, "-m", "skyfleet"]
        return [*command, "agent", "run", "--config", str(config)]

    async def connect(self, node: NodeSpec) -> AdminMembersClient:
        if self._credentials is None:
            raise RuntimeError("SkyfleetSystem.prepare() must run before connect()")
        channel = grpc.aio.secure_channel(
            node.api_addr,
            self._credentials,
            options=[("grpc.ssl_target_name_override", node.name), *_CHANNEL_OPTIONS],
        )
        return AdminMembersClient(channel, node.name)


def _skyfleet_command() -> str:
    """The `skyfleet` console script of the Python running the bench (the venv's), else
    the one on PATH."""
    beside = Path(sys.executable).with_name("skyfleet")
    found = str(beside) if beside.exists() else shutil.which("skyfleet")
    if found is None:
        raise FileNotFoundError("`skyfleet` not found: install the package (pip install -e .)")
    return found


def agent_toml(
    node: NodeSpec, tls_dir: Path, state_dir: Path, membership: Mapping[str, float] | None = None
) -> str:
    """The agent config file (format: skyfleet/config/agent.py) for one bench node, with
    no seeds: it joins when the bench says so."""
    overrides = "".join(f"{key} = {value!r}\n" for key, value in (membership or {}).items())
    return f"""\
[node]
name = "{node.name}"
cloud = "local"
region = "local"
zone = "local-a"
bind = "{node.gossip_addr}"

[tls]
ca = "{tls_dir / "ca.pem"}"
cert = "{tls_dir / f"{node.name}.pem"}"
key = "{tls_dir / f"{node.name}.key"}"

[membership]
profile = "lan"
{overrides}
[agent]
state_dir = "{state_dir}"
metrics_bind = ""
log_level = "warning"
"""
