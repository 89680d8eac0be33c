"""Real network isolation for a local fleet: one network namespace per agent, one bridge
per cloud, and iptables in between, so a cloud can be cut off or made lossy.

    root namespace (supervisor, tests)
      <prefix>-h 10.N.0.1/30 ── veth ── <prefix>-r 10.N.0.2/30
                                        <prefix>-router namespace, ip_forward=1
                                          <prefix>-b0 10.N.1.254/24 (bridge, cloud 0)
                                            ├─ <prefix>-p0 ── veth ── <prefix>-a0 10.N.1.1
                                            └─ <prefix>-p1 ── veth ── <prefix>-a1 10.N.1.2
                                          <prefix>-b1 10.N.2.254/24 (bridge, cloud 1) ...
                                          FORWARD -> SKYFLEET-CHAOS (our rules only)

Agents in one cloud share a bridge (layer 2), so their traffic never reaches the router's
IP layer; traffic between clouds is routed by the router namespace and passes its FORWARD
chain, where `cut`, `set_loss` and `heal` act. The root namespace reaches every agent
through the router (a route for the fleet's /16), and chaos rules only ever name two cloud
subnets, so the supervisor keeps watching an agent that is cut off from its peers.

Why a router namespace rather than bridges in the root namespace: its iptables tables,
sysctls and bridges are private to the fleet and vanish with it, parallel fleets cannot
see each other's rules, and the host's own firewall and forwarding settings are never
touched. The only things added to the root namespace are one veth and its route.

Parallel fleets: a prefix is claimed by creating `<prefix>-router` (the kernel refuses a
second namespace of that name) and a /16 by adding its route (the kernel refuses an
identical route), so two fleets never share a name or an address.

Agents send traffic only to addresses inside these namespaces: the router has no default
route, so anything else is unreachable from an agent.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import signal
import subprocess
import time
from collections.abc import Iterable
from dataclasses import replace
from ipaddress import IPv4Network, ip_network
from typing import Literal

from skyfleet.localfleet.layout import AgentSpec
from skyfleet.localfleet.netplan import NetworkPlan, PlanError, host_interface, router_namespace

CHAIN = "SKYFLEET-CHAOS"
"""Our iptables chain in the router namespace; FORWARD jumps to it, `heal` flushes it."""

INGRESS_CHAIN = "SKYFLEET-INGRESS"
"""The fleet's firewall, after the chaos chain: who may reach which agent ports through
the router (the local stand-in for a security group; `set_ingress` rewrites it)."""

FLEET_SOURCE = "fleet"
"""An ingress source meaning every cloud subnet of this network."""
HOST_SOURCE = "host"
"""An ingress source meaning the root namespace (the operator's own machine)."""

DEFAULT_STEM = "sf"
"""Prefixes are this stem plus four random hex digits, e.g. `sf3a9c`."""

CANDIDATE_BLOCKS = tuple(IPv4Network(f"10.{n}.0.0/16") for n in range(200, 220))
"""The /16 blocks a fleet may take, in order; one already routed on this host is skipped."""

Direction = Literal["both", "in", "out"]
"""`out`: the cloud's packets to other clouds are dropped; `in`: packets to it; `both`."""

_TEARDOWN_TIMEOUT = 10.0


class NetnsError(RuntimeError):
    """A command that builds or changes the network failed; the message names it."""


def exec_prefix(namespace: str) -> list[str]:
    """argv prefix that runs a command inside `namespace` (`ip netns exec` execs the command
    itself, so the process we start is the agent and our signals reach it)."""
    return ["ip", "netns", "exec", namespace]


def unavailable_reason() -> str | None:
    """Why namespaced fleets cannot run here, or None if they can (probes for real)."""
    if os.geteuid() != 0:
        return "network namespaces need root"
    for tool in ("ip", "iptables", "sysctl"):
        if shutil.which(tool) is None:
            return f"{tool} is not installed"
    probe = f"{DEFAULT_STEM}probe-{os.getpid()}"
    try:
        _run("ip", "netns", "add", probe)
        _run(*exec_prefix(probe), "iptables", "-w", "-L", "-n")
    except NetnsError as exc:
        return f"cannot use network namespaces and iptables: {exc}"
    finally:
        _run("ip", "netns", "del", probe, check=False)
    return None


class FleetNetwork:
    """A fleet's namespaces, bridges and chaos rules; `teardown` (or leaving the `with`
    block) removes all of it, also after a failed `create`."""

    def __init__(self, plan: NetworkPlan) -> None:
        self.plan = plan
        self._rules: dict[tuple[str, ...], list[list[str]]] = {}

    @classmethod
    def create(
        cls,
        agents: Iterable[tuple[str, str]],
        *,
        clouds: Iterable[str] | None = None,
        stem: str = DEFAULT_STEM,
    ) -> FleetNetwork:
        """Build the network for (agent name, cloud) pairs. Bad input is refused before
        anything is created."""
        draft = NetworkPlan.for_agents(f"{stem}0000", CANDIDATE_BLOCKS[0], agents, clouds)
        prefix = _claim_prefix(stem)
        try:
            uplink = replace(draft, prefix=prefix).router_uplink
            host = host_interface(prefix)
            _run("ip", "link", "add", host, "type", "veth",
                 "peer", "name", uplink, "netns", router_namespace(prefix))  # fmt: skip
            _run("ip", "link", "set", host, "up")
            net = cls(replace(draft, prefix=prefix, block=_claim_block(host)))
            net._build()
        except BaseException:
            teardown(prefix)
            raise
        return net

    def __enter__(self) -> FleetNetwork:
        return self

    def __exit__(self, *exc: object) -> None:
        self.teardown()

    def exec_prefix(self, agent: str) -> list[str]:
        return exec_prefix(self.plan.namespace(agent))

    def place(self, specs: Iterable[AgentSpec]) -> list[AgentSpec]:
        """The specs moved into this network: each agent binds its own address (same port)
        inside its namespace, and seeds that named fleet members follow them."""
        specs = list(specs)
        moved = {
            s.address: f"{self.plan.address(s.name)}:{s.address.rpartition(':')[2]}" for s in specs
        }
        placed = []
        for s in specs:
            unknown = [seed for seed in s.seeds if seed not in moved]
            if unknown:
                raise PlanError(f"{s.name}.seeds: {unknown[0]} is not an agent of this network")
            placed.append(
                replace(
                    s,
                    address=moved[s.address],
                    seeds=tuple(moved[seed] for seed in s.seeds),
                    netns=self.plan.namespace(s.name),
                )
            )
        return placed

    # Chaos --------------------------------------------------------------------------------

    def cut(self, cloud: str, direction: Direction = "both") -> None:
        """Drop traffic between `cloud` and every other cloud (one way or both)."""
        if direction not in ("both", "in", "out"):
            raise ValueError(f"direction: expected 'both', 'in' or 'out', got {direction!r}")
        inside = self.plan.subnet(cloud)
        rules = []
        for other in self.plan.clouds:
            if other == cloud:
                continue
            outside = self.plan.subnet(other)
            if direction in ("both", "out"):
                rules.append(_drop(inside, outside))
            if direction in ("both", "in"):
                rules.append(_drop(outside, inside))
        self._set_rules(("cut", cloud), rules)

    def set_loss(self, cloud_a: str, cloud_b: str, probability: float) -> None:
        """Drop each packet between the two clouds (both directions) with `probability`;
        0 removes the loss again. Replaces an earlier loss between the same pair."""
        if not 0.0 <= probability <= 1.0:
            raise ValueError(f"probability: expected 0..1, got {probability!r}")
        if cloud_a == cloud_b:
            # Traffic inside a cloud is bridged and never reaches the router's FORWARD chain.
            raise ValueError(f"cloud_b: loss inside one cloud ({cloud_a!r}) is not supported")
        a, b = self.plan.subnet(cloud_a), self.plan.subnet(cloud_b)
        chance = ["-m", "statistic", "--mode", "random", "--probability", f"{probability:.6f}"]
        rules = [_drop(a, b, chance), _drop(b, a, chance)] if probability > 0 else []
        self._set_rules(("loss", *sorted((cloud_a, cloud_b))), rules)

    def set_ingress(self, rules: Iterable[tuple[tuple[int, int], Iterable[str]]]) -> None:
        """Admit TCP to each (low, high) port range only from its sources (CIDRs, or
        FLEET_SOURCE / HOST_SOURCE) and drop the rest; replaces the previous rules.
        Traffic inside one cloud is bridged and never reaches the router, as traffic
        inside one cloud's subnet never meets a cloud's perimeter firewall."""
        resolved = []
        for (low, high), sources in rules:
            if not 0 < low <= high < 65536:
                raise ValueError(f"ports: expected 1 <= low <= high <= 65535, got {low}-{high}")
            nets = []
            for source in sources:
                if source == FLEET_SOURCE:
                    nets += [str(self.plan.subnet(c)) for c in self.plan.clouds]
                elif source == HOST_SOURCE:
                    nets.append(str(self.plan.host_address.network))
                else:
                    nets.append(str(ip_network(source, strict=False)))
            resolved.append((f"{low}:{high}", nets))
        self._iptables("-F", INGRESS_CHAIN)
        for ports, nets in resolved:
            for net in nets:
                self._iptables("-A", INGRESS_CHAIN, "-p", "tcp", "--dport", ports, "-s", net,
                               "-j", "ACCEPT")
            self._iptables("-A", INGRESS_CHAIN, "-p", "tcp", "--dport", ports, "-j", "DROP")

    def heal(self) -> None:
        """Remove every cut and every loss."""
        self._iptables("-F", CHAIN)
        self._rules.clear()

    def dropped_packets(self) -> int:
        """Packets our chaos rules have dropped since the network was built."""
        out = self._iptables("-L", CHAIN, "-n", "-v", "-x").stdout.splitlines()
        # Two header lines, then one line per rule starting with its packet count.
        return sum(int(line.split()[0]) for line in out[2:] if line.strip())

    # Lifecycle ----------------------------------------------------------------------------

    def teardown(self) -> None:
        """Remove every namespace, interface and route of this fleet (idempotent)."""
        teardown(self.plan.prefix)

    def leftovers(self) -> list[str]:
        return leftovers(self.plan.prefix)

    def _build(self) -> None:
        p = self.plan
        router = p.router_namespace
        _run("ip", "addr", "add", str(p.host_address), "dev", p.host_interface)
        # The route was added as a device route to claim the block; now send it via the router.
        _run("ip", "route", "replace", str(p.block),
             "via", str(p.router_address.ip), "dev", p.host_interface)  # fmt: skip
        _run("ip", "-n", router, "link", "set", "lo", "up")
        _run("ip", "-n", router, "addr", "add", str(p.router_address), "dev", p.router_uplink)
        _run("ip", "-n", router, "link", "set", p.router_uplink, "up")
        _run(*exec_prefix(router), "sysctl", "-qw", "net.ipv4.ip_forward=1")
        self._iptables("-N", CHAIN)
        self._iptables("-A", "FORWARD", "-j", CHAIN)
        self._iptables("-N", INGRESS_CHAIN)
        self._iptables("-A", "FORWARD", "-j", INGRESS_CHAIN)
        for cloud in p.clouds:
            bridge = p.bridge(cloud)
            _run("ip", "-n", router, "link", "add", bridge, "type", "bridge")
            _run("ip", "-n", router, "addr", "add", str(p.gateway(cloud)), "dev", bridge)
            _run("ip", "-n", router, "link", "set", bridge, "up")
        for agent, cloud in p.agents:
            self._build_agent(agent, cloud)

    def _build_agent(self, agent: str, cloud: str) -> None:
        p = self.plan
        ns, port, inner = p.namespace(agent), p.router_port(agent), p.agent_interface(agent)
        _run("ip", "netns", "add", ns)
        # Both ends are created directly in their namespaces: no name ever appears in root.
        _run("ip", "link", "add", port, "netns", p.router_namespace, "type", "veth",
             "peer", "name", inner, "netns", ns)  # fmt: skip
        _run("ip", "-n", p.router_namespace, "link", "set", port,
             "master", p.bridge(cloud), "up")  # fmt: skip
        _run("ip", "-n", ns, "link", "set", "lo", "up")
        _run("ip", "-n", ns, "addr", "add", f"{p.address(agent)}/24", "dev", inner)
        _run("ip", "-n", ns, "link", "set", inner, "up")
        _run("ip", "-n", ns, "route", "add", "default", "via", str(p.gateway(cloud).ip))

    def _set_rules(self, key: tuple[str, ...], rules: list[list[str]]) -> None:
        for rule in self._rules.pop(key, []):
            self._iptables("-D", CHAIN, *rule)
        for rule in rules:
            self._iptables("-A", CHAIN, *rule)
        if rules:
            self._rules[key] = rules

    def _iptables(self, *args: str) -> subprocess.CompletedProcess[str]:
        # -w: the xtables lock is a host-wide file even though the tables are per namespace.
        return _run(*exec_prefix(self.plan.router_namespace), "iptables", "-w", *args)


def teardown(prefix: str, *, timeout: float = _TEARDOWN_TIMEOUT) -> None:
    """Remove everything of the fleet `prefix`: processes still inside its namespaces are
    killed (a namespace lives on while a process holds it), the namespaces are deleted
    (which deletes the bridges and every veth in them) and the root-side veth with its
    route. Safe to call again, or for a fleet that was only half built."""
    killed: list[int] = []
    for ns in _namespaces(prefix):
        for pid in _pids(ns):
            try:
                os.kill(pid, signal.SIGKILL)
                killed.append(pid)
            except ProcessLookupError:
                pass
        _run("ip", "netns", "del", ns, check=False)
    _run("ip", "link", "del", host_interface(prefix), check=False)
    deadline = time.monotonic() + timeout
    while (left := leftovers(prefix) + [f"process {p}" for p in killed if _alive(p)]) and (
        time.monotonic() < deadline
    ):
        time.sleep(0.05)  # namespace cleanup runs asynchronously in the kernel
    if left:
        raise NetnsError(f"teardown of {prefix}: still present after {timeout:.0f}s: {left}")


def leftovers(prefix: str) -> list[str]:
    """Anything of the fleet `prefix` still present: namespaces, processes in them, and
    interfaces in the root namespace (empty after a complete teardown)."""
    found = []
    for ns in _namespaces(prefix):
        found.append(f"namespace {ns}")
        found.extend(f"process {pid} in namespace {ns}" for pid in _pids(ns))
    links = json.loads(_run("ip", "-j", "link", "show").stdout or "[]")
    found.extend(
        f"interface {link['ifname']}"
        for link in links
        if link.get("ifname", "").startswith(f"{prefix}-")
    )
    return found


def _claim_prefix(stem: str) -> str:
    for _ in range(64):
        prefix = f"{stem}{secrets.token_hex(2)}"
        if leftovers(prefix):  # remains of a crashed run: leave them to `teardown(prefix)`
            continue
        result = _run("ip", "netns", "add", router_namespace(prefix), check=False)
        if result.returncode == 0:
            return prefix
        if "File exists" not in result.stderr:
            raise NetnsError(f"ip netns add {router_namespace(prefix)}: {result.stderr.strip()}")
    raise NetnsError(f"no free prefix {stem}XXXX after 64 tries; see `ip netns list`")


def _claim_block(device: str) -> IPv4Network:
    routes = json.loads(_run("ip", "-j", "route", "show", "table", "all").stdout or "[]")
    in_use = [
        net
        for r in routes
        if r.get("dst", "default") != "default"
        and (net := ip_network(r["dst"], strict=False)).version == 4
    ]
    for block in CANDIDATE_BLOCKS:
        if any(block.overlaps(net) for net in in_use):
            continue
        result = _run("ip", "route", "add", str(block), "dev", device, check=False)
        if result.returncode == 0:
            return block
        if "File exists" not in result.stderr:
            raise NetnsError(f"ip route add {block}: {result.stderr.strip()}")
    raise NetnsError(
        f"every candidate block {CANDIDATE_BLOCKS[0]}..{CANDIDATE_BLOCKS[-1]} is routed here"
    )


def _drop(src: IPv4Network, dst: IPv4Network, match: list[str] | None = None) -> list[str]:
    return ["-s", str(src), "-d", str(dst), *(match or []), "-j", "DROP"]


def _namespaces(prefix: str) -> list[str]:
    # `ip netns list` prints "name" or "name (id: N)" per line.
    lines = _run("ip", "netns", "list").stdout.splitlines()
    return [n for line in lines if (n := line.split(" ")[0]).startswith(f"{prefix}-")]


def _pids(namespace: str) -> list[int]:
    result = _run("ip", "netns", "pids", namespace, check=False)
    return [int(p) for p in result.stdout.split()] if result.returncode == 0 else []


def _alive(pid: int) -> bool:
    """True while the process runs; a zombie has already released its namespaces."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rpartition(")")[2].split()[0] != "Z"
    except FileNotFoundError:
        return False


def _run(*argv: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(argv, capture_output=True, text=True)
    if check and result.returncode != 0:
        raise NetnsError(f"{' '.join(argv)}: {result.stderr.strip() or result.returncode}")
    return result
