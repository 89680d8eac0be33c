"""LocalNetwork: the `local` stack's network, the stand-in for each cloud's VPC.

In `netns` mode (root) it is `skyfleet.localfleet.netns.FleetNetwork`: one network
namespace per agent, one bridge per cloud, a router namespace between the clouds, so a
cloud can really be cut off. In `loopback` mode every agent shares 127.0.0.1 and the
network is only a record. Its ingress rules are the stand-in for a cloud's security group:
the router admits the agent and metrics ports only from the fleet, this machine and
`skyfleet:adminRanges` (netns), and the guardrail pack judges them like any other
firewall (both modes). Either way the resource's outputs say where each agent lives
(`addresses`, `namespaces`), so agents are placed by the engine's data flow, not by a
second planner.

The namespaces' prefix and address block are claimed at create time (parallel fleets
never collide) and kept in state: `read` reports the network gone when its router
namespace has vanished (a reboot, a manual cleanup), so `pulumi refresh` drops it and the
next `pulumi up` builds a new one and replaces the agents that lived in it.
"""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass
from typing import Any, Literal

import pulumi
from pulumi.dynamic import (
    CreateResult,
    DiffResult,
    ReadResult,
    Resource,
    ResourceProvider,
    UpdateResult,
)

from skyfleet.localfleet import netns
from skyfleet.localfleet.netplan import NetworkPlan, router_namespace

Mode = Literal["netns", "loopback"]

LOOPBACK = "127.0.0.1"
_REPLACE_ON = ("mode", "agents", "clouds")


def resolve_mode(requested: str) -> Mode:
    """`auto` -> netns for root with iproute2 and iptables, else loopback. Decided without
    touching the system, because the program also runs for `pulumi preview`; a netns
    request that cannot be met fails at create, naming the missing piece."""
    if requested == "netns":
        return "netns"
    if requested == "loopback":
        return "loopback"
    tools = all(shutil.which(t) for t in ("ip", "iptables", "sysctl"))
    return "netns" if os.geteuid() == 0 and tools else "loopback"


class LocalNetworkProvider(ResourceProvider):
    def create(self, props: dict[str, Any]) -> CreateResult:
        agents = [(name, cloud) for name, cloud in props["agents"]]
        if props["mode"] == "loopback":
            outs = {**props, "prefix": "", "block": "", "gateway": "",
                    "addresses": {name: LOOPBACK for name, _ in agents},
                    "namespaces": {name: "" for name, _ in agents}}
            return CreateResult(id_="loopback", outs=outs)
        why_not = netns.unavailable_reason()
        if why_not is not None:
            raise RuntimeError(f"skyfleet:localNetwork: netns requested, but {why_not}; "
                               "set it to loopback")
        network = netns.FleetNetwork.create(agents, clouds=props["clouds"])
        try:
            network.set_ingress(_rules(props["ingress"]))
        except BaseException:
            network.teardown()
            raise
        plan = network.plan
        outs = {
            **props,
            "prefix": plan.prefix,
            "block": str(plan.block),
            "gateway": str(plan.host_address.ip),
            "addresses": {name: str(plan.address(name)) for name, _ in agents},
            "namespaces": {name: plan.namespace(name) for name, _ in agents},
        }
        return CreateResult(id_=plan.prefix, outs=outs)

    def diff(self, _id: str, olds: dict[str, Any], news: dict[str, Any]) -> DiffResult:
        replaced = [k for k in _REPLACE_ON if olds.get(k) != news.get(k)]
        changed = bool(replaced) or olds.get("ingress") != news.get("ingress")
        return DiffResult(changes=changed, replaces=replaced, delete_before_replace=True)

    def update(self, _id: str, olds: dict[str, Any], news: dict[str, Any]) -> UpdateResult:
        """Only the firewall changed (anything else replaces the network)."""
        if news["mode"] == "netns":
            netns.FleetNetwork(NetworkPlan.of_record(olds)).set_ingress(_rules(news["ingress"]))
        return UpdateResult(outs={**olds, "ingress": news["ingress"]})

    def read(self, id_: str, props: dict[str, Any]) -> ReadResult:
        if props.get("mode") == "netns":
            present = netns.leftovers(props["prefix"])
            if f"namespace {router_namespace(props['prefix'])}" not in present:
                return ReadResult(id_="", outs={})
        return ReadResult(id_=id_, outs=props)

    def delete(self, _id: str, props: dict[str, Any]) -> None:
        if props.get("mode") == "netns" and props.get("prefix"):
            netns.teardown(props["prefix"])


def _rules(ingress: list[dict[str, Any]]) -> list[tuple[tuple[int, int], list[str]]]:
    return [((int(r["ports"][0]), int(r["ports"][1])), list(r["sources"])) for r in ingress]


class LocalNetwork(Resource, module="skyfleet", name="LocalNetwork"):
    mode: pulumi.Output[str]
    block: pulumi.Output[str]
    addresses: pulumi.Output[dict[str, str]]
    namespaces: pulumi.Output[dict[str, str]]
    prefix: pulumi.Output[str]
    gateway: pulumi.Output[str]
    """The root namespace's own address in the fleet's block (empty on loopback): where
    the operator's commands reach agents from."""

    def __init__(self, name: str, args: LocalNetworkArgs,
                 opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__(LocalNetworkProvider(), name, {
            "mode": args.mode,
            "agents": [list(a) for a in args.agents],
            "clouds": list(args.clouds),
            "ingress": [{"ports": list(r.ports), "sources": list(r.sources)}
                        for r in args.ingress],
            "prefix": None, "block": None, "gateway": None,
            "addresses": None, "namespaces": None,
        }, opts)


@dataclass(frozen=True, slots=True)
class IngressRule:
    """TCP to `ports` (low, high) is admitted from `sources` only: CIDRs, or `fleet`
    (every cloud subnet) and `host` (this machine's root namespace, where the operator's
    commands run). The guardrail pack reads these like a security group's rules."""

    ports: tuple[int, int]
    sources: tuple[str, ...]


@dataclass(frozen=True)
class LocalNetworkArgs:
    mode: Mode
    agents: tuple[tuple[str, str], ...]
    """(agent name, cloud) in plan order: the order gives interface numbers."""
    clouds: tuple[str, ...]
    ingress: tuple[IngressRule, ...]
    """Enforced by the router's iptables in netns mode; on loopback only declared."""
