"""LocalHosts: the `local` stack's hosts are real agent processes on this machine.

Every agent lives in the stack's state folder (`skyfleet:localStateDir`), laid out by
`skyfleet.localfleet.layout.FleetLayout`: the CA and the admin certificate in DIR/tls, the
policy signing key in DIR/policy, one TOML config per agent in DIR/agents, its state in
DIR/state/<node>, its log in DIR/logs/<node>.log, and the published policy in
DIR/policy/source/, the folder every agent watches. Its address and network namespace come
from the stack's LocalNetwork.

A dynamic provider owns each agent: `create` writes the agent's certificate and config
through FleetLayout and starts it detached (`skyfleet.localfleet.procs.start_detached`); `read`
reports whether it still runs (so `pulumi refresh` drops a dead agent and the next
`pulumi up` starts it again, on the state it kept, as a rebooted host); `delete` stops it
(SIGTERM for a graceful leave, SIGKILL after a grace) and removes its files but the log,
as a deleted host's disk goes with it. Any input change replaces the agent, stopping the
old one first, because the new one needs the same address. One more resource,
LocalFleetReady, stands for the fleet as a whole: `pulumi up` returns once it has joined,
and `pulumi destroy` drains it in one go.

Pulumi deserializes a fresh provider object for each call, and a later `pulumi up` runs in
a new process, so providers know an agent only by its pid; the pid is trusted only while
/proc shows it still running that agent's config, so a recycled pid is never signalled
(Linux only, like the rest of the local tooling).
"""

from __future__ import annotations

import asyncio
import socket
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pulumi
from pulumi.dynamic import (
    CreateResult,
    DiffResult,
    ReadResult,
    Resource,
    ResourceProvider,
    UpdateResult,
)

from infra.components.local_network import LOOPBACK, LocalNetwork
from infra.config import resolve_host
from infra.topology import HostSpec
from skyfleet.localfleet.layout import AgentSpec, FleetLayout
from skyfleet.localfleet.procs import runs_agent, start_detached, stop_agents

START_TIMEOUT = 60.0
"""Seconds for a fleet to start and join: interpreter start plus imports on a busy host."""
STOP_GRACE = 10.0
POLL = 0.1

INPUTS = ("node_name", "cloud", "region", "zone", "environment", "endpoint", "seeds",
          "profile", "state_dir", "ca_cert_pem", "trusted_key_pem", "netns", "metrics_port",
          "handlers", "handler_settings")
"""What an agent is; changing any of it replaces the process (the CA and the trusted key
are inputs so that a regenerated CA or signing key restarts every agent on it). `handlers`
is absent (None) for every built-in handler, and `handler_settings` when there are none,
as in states written before they existed, so their agents are not replaced."""


def agent_spec(props: dict[str, Any]) -> AgentSpec:
    return AgentSpec(name=props["node_name"], cloud=props["cloud"], zone=props["zone"],
                     address=props["endpoint"], region=props["region"],
                     seeds=tuple(props["seeds"]), profile=props["profile"],
                     netns=props.get("netns") or None,
                     metrics_port=int(props.get("metrics_port") or 0),
                     handlers=None if props.get("handlers") is None else tuple(props["handlers"]),
                     handler_config=dict(props.get("handler_settings") or {}))


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
    def create(self, props: dict[str, Any]) -> CreateResult:
        """Write the agent's certificate and config, start it, and return at once: the
        stack's LocalFleetReady waits for the whole fleet in one call (the engine runs a
        dynamic provider's calls on a few threads only, so waiting here would make the
        fleet's start time grow with its size)."""
        layout = FleetLayout(Path(props["state_dir"]))
        spec = agent_spec(props)
        if port_open(spec.address):
            raise RuntimeError(f"agent {spec.name}: {spec.address} is already in use; stop "
                               "whatever listens there (another local fleet?) and retry")
        config, log = layout.write_agent(spec), layout.log_path(spec.name)
        pid = start_detached(spec, config, log)
        outs = {**props, "pid": pid, "config": str(config), "log": str(log)}
        return CreateResult(id_=str(pid), outs=outs)

    def diff(self, _id: str, olds: dict[str, Any], news: dict[str, Any]) -> DiffResult:
        changed = [k for k in INPUTS if olds.get(k) != news.get(k)]
        return DiffResult(changes=bool(changed), replaces=changed, delete_before_replace=True)

    def read(self, id_: str, props: dict[str, Any]) -> ReadResult:
        if not (id_.isdigit() and runs_agent(int(id_), props.get("config", ""))):
            return ReadResult(id_="", outs={})
        return ReadResult(id_=id_, outs=props)

    def delete(self, id_: str, props: dict[str, Any]) -> None:
        if id_.isdigit():
            stop_agents([(int(id_), props.get("config", ""))], STOP_GRACE)
        FleetLayout(Path(props["state_dir"])).remove_agent(props["node_name"])


class LocalAgent(Resource, module="skyfleet", name="LocalAgent"):
    pid: pulumi.Output[int]
    config: pulumi.Output[str]
    log: pulumi.Output[str]
    netns: pulumi.Output[str]
    endpoint: pulumi.Output[str]

    def __init__(self, name: str, props: dict[str, Any],
                 opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__(LocalAgentProvider(), name,
                         {**props, "pid": None, "config": None, "log": None}, opts)


class LocalFleetReadyProvider(ResourceProvider):
    """The fleet as a whole. create/update return once every agent answers and lists
    every other alive (so `pulumi up` ends with a joined fleet); read reports it gone when
    an agent has died; delete drains every agent at once (graceful leaves in parallel, so
    `pulumi destroy` takes one agent's leave, not one per agent)."""

    def create(self, props: dict[str, Any]) -> CreateResult:
        _await_fleet(props)
        return CreateResult(id_="ready", outs=props)

    def diff(self, _id: str, olds: dict[str, Any], news: dict[str, Any]) -> DiffResult:
        return DiffResult(changes=olds.get("agents") != news.get("agents"))

    def update(self, _id: str, _olds: dict[str, Any], news: dict[str, Any]) -> UpdateResult:
        _await_fleet(news)
        return UpdateResult(outs=news)

    def read(self, id_: str, props: dict[str, Any]) -> ReadResult:
        agents = props.get("agents") or {}
        if not all(runs_agent(int(a["pid"]), a["config"]) for a in agents.values()):
            return ReadResult(id_="", outs={})
        return ReadResult(id_=id_, outs=props)

    def delete(self, _id: str, props: dict[str, Any]) -> None:
        agents = props.get("agents") or {}
        stop_agents([(int(a["pid"]), a["config"]) for a in agents.values()], STOP_GRACE)


def _await_fleet(props: dict[str, Any]) -> None:
    from skyfleet.client import tls_files_in
    from skyfleet.localfleet.watch import FleetWatch
    from skyfleet.transport.tls import TlsMaterial

    agents: dict[str, dict[str, Any]] = props["agents"]
    admin = TlsMaterial.load(tls_files_in(FleetLayout(Path(props["state_dir"])).tls, "admin"))
    watch = FleetWatch({n: a["endpoint"] for n, a in agents.items()}, admin)
    names = sorted(agents)
    deadline = time.monotonic() + START_TIMEOUT
    while True:
        for name, agent in sorted(agents.items()):
            if not runs_agent(int(agent["pid"]), agent["config"]):
                raise RuntimeError(f"agent {name} exited during start:\n"
                                   f"{_tail(Path(agent['log']))}")
        views = asyncio.run(watch.views(names))
        if len(views) == len(names) and all(
                all(n in v and v[n].state == "alive" for n in names) for v in views.values()):
            return
        if time.monotonic() > deadline:
            seen = {o: sorted(m for m, r in v.items() if r.state == "alive")
                    for o, v in views.items()}
            raise RuntimeError(f"after {START_TIMEOUT:.0f}s the {len(names)} agents do not "
                               f"all see each other alive; who answered, seeing whom: {seen}")
        time.sleep(POLL)


class LocalFleetReady(Resource, module="skyfleet", name="LocalFleetReady"):
    def __init__(self, name: str, *, agents: pulumi.Input[dict[str, Any]], state_dir: str,
                 opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__(LocalFleetReadyProvider(), name,
                         {"agents": agents, "state_dir": state_dir}, opts)


@dataclass(frozen=True)
class LocalHostsArgs:
    environment: str
    hosts: tuple[HostSpec, ...]
    network: LocalNetwork
    """Where each agent lives: its namespace comes from the network."""
    endpoints: pulumi.Output[dict[str, str]]
    """host:port of every agent, by name: its address on the network, its planned port."""
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
        self.agents = {host.name: self._agent(name, host, args) for host in args.hosts}
        self.ready = LocalFleetReady(
            f"{name}-ready", state_dir=str(args.state_dir),
            agents=pulumi.Output.all(*(
                pulumi.Output.all(a.pid, a.config, a.log, a.endpoint)
                for a in self.agents.values())).apply(
                lambda rows: {n: {"pid": r[0], "config": r[1], "log": r[2], "endpoint": r[3]}
                              for n, r in zip(self.agents, rows, strict=True)}),
            opts=pulumi.ResourceOptions(parent=self))
        self.register_outputs({"hosts": [h.name for h in args.hosts]})

    def _agent(self, name: str, host: HostSpec, args: LocalHostsArgs) -> LocalAgent:
        """One host's agent; a method of its own so the callbacks below capture this host,
        not the last one of a loop."""
        seeds = [h.name for h in args.hosts if h.seed and h.name != host.name]
        # `{host}` in a setting: this machine, as the agent reaches it from where it runs.
        settings = args.network.gateway.apply(
            lambda gateway: resolve_host(host.handler_settings, gateway or LOOPBACK) or None)
        return LocalAgent(f"{name}-{host.name}", {
            "node_name": host.name, "cloud": host.cloud, "region": host.region,
            "zone": host.zone, "environment": args.environment,
            "endpoint": args.endpoints.apply(lambda e: e[host.name]),
            "seeds": args.endpoints.apply(lambda e: [e[n] for n in seeds]),
            "netns": args.network.namespaces.apply(lambda ns: ns[host.name]),
            "metrics_port": host.metrics_port, "profile": args.profile,
            "handlers": None if host.handlers is None else list(host.handlers),
            "handler_settings": settings,
            "state_dir": str(args.state_dir), "ca_cert_pem": args.ca_cert_pem,
            "trusted_key_pem": args.trusted_key_pem,
        }, opts=pulumi.ResourceOptions(parent=self))
