"""LocalHosts: the `local` stack's hosts are real agent processes on this machine.

A dynamic provider owns each process: `create` writes the node's files (config in the
`skyfleet.config.agent` format, CA, node certificate and key, trusted policy key) and
starts `skyfleet agent run --config FILE`, returning once the agent's port accepts
connections; `read` reports whether that process still runs (a dead one disappears from
state, so the next `pulumi up` starts it again); `delete` stops it (SIGTERM, then SIGKILL
after a grace period).
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pulumi
from pulumi.dynamic import CreateResult, ReadResult, Resource, ResourceProvider

from infra import bootstrap
from infra.components.node_cert import NodeCertificate
from infra.topology import HostSpec

START_TIMEOUT = 20.0
STOP_GRACE = 10.0


def agent_command(config_path: Path) -> list[str]:
    """`skyfleet agent run --config FILE`, preferring the console script installed next to
    the interpreter running this program, so the agent is the runtime checked out here."""
    beside = Path(sys.executable).parent / "skyfleet"
    executable = str(beside) if beside.is_file() else shutil.which("skyfleet")
    if executable is None:
        raise RuntimeError("the `skyfleet` command is not installed next to this Python")
    return [executable, "agent", "run", "--config", str(config_path)]


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # A zombie child of this process still "exists"; reap it if it is ours.
    try:
        done, _ = os.waitpid(pid, os.WNOHANG)
        return done == 0
    except ChildProcessError:
        return True


def _port_open(endpoint: str) -> bool:
    host, _, port = endpoint.rpartition(":")
    try:
        with socket.create_connection((host, int(port)), timeout=0.5):
            return True
    except OSError:
        return False


def _write(path: Path, text: str, mode: int = 0o644) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    with os.fdopen(fd, "w") as f:
        f.write(text)


class LocalAgentProvider(ResourceProvider):
    def create(self, props: dict[str, Any]) -> CreateResult:
        node_dir = Path(props["dir"])
        config = node_dir / "agent.toml"
        _write(node_dir / "tls" / "ca.pem", props["ca_pem"])
        _write(node_dir / "tls" / "node.pem", props["cert_pem"])
        _write(node_dir / "tls" / "node.key", props["key_pem"], 0o600)
        _write(node_dir / "policy-keys" / "fleet.pub", props["trusted_key_pem"])
        _write(config, props["config"])
        pid = _spawn(agent_command(config), node_dir)
        deadline = time.monotonic() + START_TIMEOUT
        while not _port_open(props["endpoint"]):
            if not _pid_alive(pid) or time.monotonic() > deadline:
                _stop(pid)
                tail = (node_dir / "agent.log").read_text()[-2000:]
                raise RuntimeError(f"agent {props['node_name']} did not start: {tail}")
            time.sleep(0.1)
        return CreateResult(id_=str(pid), outs={**props, "pid": pid})

    def read(self, id_: str, props: dict[str, Any]) -> ReadResult:
        if not id_.isdigit() or not _pid_alive(int(id_)):
            return ReadResult(id_="", outs={})
        return ReadResult(id_=id_, outs=props)

    def delete(self, id_: str, _props: dict[str, Any]) -> None:
        if id_.isdigit():
            _stop(int(id_))


def _spawn(command: list[str], node_dir: Path) -> int:
    """Start the agent in its own session with output appended to agent.log. A bare
    spawn, not subprocess.Popen: the agent must outlive the provider process, which never
    waits for it."""
    log = str(node_dir / "agent.log")
    actions = [
        (os.POSIX_SPAWN_OPEN, 0, os.devnull, os.O_RDONLY, 0),
        (os.POSIX_SPAWN_OPEN, 1, log, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644),
        (os.POSIX_SPAWN_DUP2, 1, 2),
    ]
    env = dict(os.environ)
    return os.posix_spawn(command[0], command, env, file_actions=actions, setsid=True)


def _stop(pid: int) -> None:
    """SIGTERM lets the agent leave the fleet gracefully; SIGKILL after the grace."""
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    deadline = time.monotonic() + STOP_GRACE
    while _pid_alive(pid):
        if time.monotonic() > deadline:
            os.kill(pid, signal.SIGKILL)
            deadline = time.monotonic() + STOP_GRACE
        time.sleep(0.05)


class LocalAgent(Resource, module="skyfleet", name="LocalAgent"):
    pid: pulumi.Output[int]

    def __init__(self, name: str, props: dict[str, Any],
                 opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__(LocalAgentProvider(), name, {**props, "pid": None},
                         pulumi.ResourceOptions.merge(
                             opts, pulumi.ResourceOptions(additional_secret_outputs=["key_pem"])))


@dataclass(frozen=True)
class LocalHostsArgs:
    environment: str
    hosts: tuple[HostSpec, ...]
    seeds: dict[str, tuple[str, ...]]
    state_dir: Path
    policy_source: Path
    ca_cert_pem: pulumi.Input[str]
    ca_key_pem: pulumi.Input[str]
    trusted_key_pem: pulumi.Input[str]


def local_files(node_dir: Path, policy_source: Path) -> bootstrap.AgentFiles:
    return bootstrap.AgentFiles(
        ca=str(node_dir / "tls" / "ca.pem"), cert=str(node_dir / "tls" / "node.pem"),
        key=str(node_dir / "tls" / "node.key"),
        trusted_key=str(node_dir / "policy-keys" / "fleet.pub"),
        policy_source=str(policy_source), state_dir=str(node_dir / "state"),
    )


class LocalHosts(pulumi.ComponentResource):
    def __init__(self, name: str, args: LocalHostsArgs,
                 opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("skyfleet:infra:LocalHosts", name, None, opts)
        self.agents: dict[str, LocalAgent] = {}
        for host in args.hosts:
            child = pulumi.ResourceOptions(parent=self)
            node_dir = args.state_dir / "nodes" / host.name
            cert = NodeCertificate(f"{name}-{host.name}-cert", node_name=host.name,
                                   hosts=[str(host.address), "localhost"],
                                   ca_cert_pem=args.ca_cert_pem, ca_key_pem=args.ca_key_pem,
                                   opts=child)
            config = bootstrap.render_agent_config(
                host, args.seeds[host.name], local_files(node_dir, args.policy_source),
                profile="local", environment=args.environment,
            )
            self.agents[host.name] = LocalAgent(f"{name}-{host.name}", {
                "node_name": host.name, "dir": str(node_dir), "endpoint": host.endpoint,
                "config": config, "ca_pem": args.ca_cert_pem, "cert_pem": cert.cert_pem,
                "key_pem": cert.key_pem, "trusted_key_pem": args.trusted_key_pem,
            }, opts=child)
        self.register_outputs({"hosts": [h.name for h in args.hosts]})
