"""LocalHosts: the `local` stack's hosts are real agent processes on this machine.

The local stack and `skyfleet local demo` are two ways to run the same fleet, so they share
one state folder and one layout, `skyfleet.localfleet.layout.FleetLayout`: the CA and the
admin certificate in DIR/tls, the policy signing key in DIR/policy, one TOML config per
agent in DIR/agents, its state in DIR/state/<node>, its log in DIR/logs/<node>.log, and the
published policy in DIR/policy/source/, the folder every agent watches.

A dynamic provider owns each agent: `create` writes the agent's certificate and config
through FleetLayout and starts it as `skyfleet.localfleet.procs.AgentProcess`, returning
once its port accepts connections; `read` reports whether it still runs (a dead agent
leaves state, so the next `pulumi up` starts it again); `delete` stops it (SIGTERM for a
graceful leave, SIGKILL after a grace). Any input change replaces the agent, stopping the
old one first, because the new one needs the same port.

Pulumi deserializes a fresh provider object for each call, and a later `pulumi up` runs in
a new process, so `read` and `delete` usually know an agent only by its pid; the pid is
trusted only while /proc shows it still running that agent's config, so a recycled pid is
never signalled (Linux only, like the rest of the local tooling).
"""

from __future__ import annotations

import socket
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pulumi
from pulumi.dynamic import CreateResult, DiffResult, ReadResult, Resource, ResourceProvider

from infra.topology import HostSpec
from skyfleet.localfleet.layout import AgentSpec, FleetLayout
from skyfleet.localfleet.procs import AgentProcess, runs_agent, stop_agent

START_TIMEOUT = 30.0
"""Seconds for an agent to open its port: interpreter start plus imports on a busy host."""
STOP_GRACE = 10.0
POLL = 0.05

INPUTS = ("node_name", "cloud", "region", "zone", "environment", "endpoint", "seeds",
          "profile", "state_dir", "ca_cert_pem", "trusted_key_pem")
"""What an agent is; changing any of it replaces the process (the CA and the trusted key
are inputs so that a regenerated CA or signing key restarts every agent on it)."""


def agent_spec(props: dict[str, Any]) -> AgentSpec:
    return AgentSpec(name=props["node_name"], cloud=props["cloud"], zone=props["zone"],
                     address=props["endpoint"], region=props["region"],
                     seeds=tuple(props["seeds"]), profile=props["profile"])


def port_open(endpoint: str) -> bool:
    host, _, port = endpoint.rpartition(":")
    try:
        with socket.create_connection((host, int(port)), timeout=0.5):
            return True
    except OSError:
        return False


def _tail(path: Path, limit: int = 2000) -> str:
    return path.read_text(errors="replace")[-limit:] if path.is_file() else "(no log)"


class LocalAgentProvider(ResourceProvider):
    def __init__(self) -> None:
        super().__init__()
        self._started: dict[int, AgentProcess] = {}
        """Agents this provider object started: stopped and reaped through their
        AgentProcess when the same object deletes them (tests, or one engine call)."""

    def create(self, props: dict[str, Any]) -> CreateResult:
        layout = FleetLayout(Path(props["state_dir"]))
        spec = agent_spec(props)
        if port_open(spec.address):
            raise RuntimeError(f"agent {spec.name}: {spec.address} is already in use; stop "
                               "whatever listens there (another local fleet?) and retry")
        agent = AgentProcess(spec, layout.write_agent(spec), layout.log_path(spec.name))
        agent.start()
        assert agent.proc is not None
        pid = agent.proc.pid
        self._started[pid] = agent
        deadline = time.monotonic() + START_TIMEOUT
        while not port_open(spec.address):
            if not agent.running or time.monotonic() > deadline:
                self._started.pop(pid).stop(STOP_GRACE)
                raise RuntimeError(f"agent {spec.name} did not start:\n{_tail(agent.log)}")
            time.sleep(POLL)
        outs = {**props, "pid": pid, "config": str(agent.config), "log": str(agent.log)}
        return CreateResult(id_=str(pid), outs=outs)

    def diff(self, _id: str, olds: dict[str, Any], news: dict[str, Any]) -> DiffResult:
        changed = [k for k in INPUTS if olds.get(k) != news.get(k)]
        return DiffResult(changes=bool(changed), replaces=changed, delete_before_replace=True)

    def read(self, id_: str, props: dict[str, Any]) -> ReadResult:
        if not self._alive(id_, props):
            return ReadResult(id_="", outs={})
        return ReadResult(id_=id_, outs=props)

    def delete(self, id_: str, props: dict[str, Any]) -> None:
        if not id_.isdigit():
            return
        agent = self._started.pop(int(id_), None)
        if agent is not None:
            agent.stop(STOP_GRACE)
        else:
            stop_agent(int(id_), props.get("config", ""))

    def _alive(self, id_: str, props: dict[str, Any]) -> bool:
        if not id_.isdigit():
            return False
        agent = self._started.get(int(id_))
        if agent is not None:
            return agent.running
        return runs_agent(int(id_), props.get("config", ""))


class LocalAgent(Resource, module="skyfleet", name="LocalAgent"):
    pid: pulumi.Output[int]
    config: pulumi.Output[str]
    log: pulumi.Output[str]

    def __init__(self, name: str, props: dict[str, Any],
                 opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__(LocalAgentProvider(), name,
                         {**props, "pid": None, "config": None, "log": None}, opts)


@dataclass(frozen=True)
class LocalHostsArgs:
    environment: str
    hosts: tuple[HostSpec, ...]
    seeds: dict[str, tuple[str, ...]]
    state_dir: Path
    """The FleetLayout root, absolute (agents' configs name files relative to it)."""
    ca_cert_pem: pulumi.Input[str]
    trusted_key_pem: pulumi.Input[str]
    profile: str = "local"
    """Membership timing preset: loopback RTTs, so the LAN-like `local` profile."""


class LocalHosts(pulumi.ComponentResource):
    def __init__(self, name: str, args: LocalHostsArgs,
                 opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("skyfleet:infra:LocalHosts", name, None, opts)
        self.agents: dict[str, LocalAgent] = {}
        for host in args.hosts:
            self.agents[host.name] = LocalAgent(f"{name}-{host.name}", {
                "node_name": host.name, "cloud": host.cloud, "region": host.region,
                "zone": host.zone, "environment": args.environment, "endpoint": host.endpoint,
                "seeds": list(args.seeds[host.name]), "profile": args.profile,
                "state_dir": str(args.state_dir), "ca_cert_pem": args.ca_cert_pem,
                "trusted_key_pem": args.trusted_key_pem,
            }, opts=pulumi.ResourceOptions(parent=self))
        self.register_outputs({"hosts": [h.name for h in args.hosts]})
