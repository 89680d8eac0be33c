"""ZoneRejoined: the gate that makes a new runtime a rolling replacement, one zone at a
time across the whole fleet, `pulumi up` waiting for each zone to rejoin.

How it is enforced. A host is replaced when its user data changes, and its user data
changes exactly when the runtime bundle does (`infra.bootstrap`: the key, scripts and
units are otherwise fixed); replacement deletes the old host first (its name and static
address are the new one's). The zones form one chain: every host of a zone takes an
input from the previous zone's gate (a tag or label naming it), and each gate takes its
zone's hosts' ids as inputs. The engine registers a resource only once the resources it
takes inputs from are done, so the hosts of zone k are not touched before the gate of
zone k-1 has finished its update, and that update returns only when every host of zone
k-1 is alive again in the fleet's member table, seen by the hosts of other zones, at an
incarnation above the one the gate recorded last time (a new agent process, not the old
one still answering). A
zone that does not rejoin in `REJOIN_TIMEOUT` fails the update naming the missing hosts:
the rollout stops there, the zones after it untouched.

`pulumi preview` shows it: every host as a replacement, listed zone after zone with the
gates in between (the engine lists steps in registration order, which is the chain's).

The gate calls the agents' admin API as the stack's rollout identity (an admin
certificate from the fleet CA, `NodeCertificate`'s pulumi-tls resources), so `pulumi up`
must run where it can reach the hosts' agent port: `adminRanges` over the VPN or a peered
network.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from typing import Any

import pulumi
from pulumi.dynamic import CreateResult, DiffResult, Resource, ResourceProvider, UpdateResult

REJOIN_TIMEOUT = 900.0
"""A zone's hosts boot, install the bundle and join in about a minute (tests/boot); 15
minutes leave room for a cloud's slow day and fail a rollout that cannot succeed."""
POLL = 5.0


class RolloutError(Exception):
    pass


async def _alive_above(props: dict[str, Any], floors: dict[str, int]) -> dict[str, int]:
    """The zone's nodes that every reachable observer lists alive at an incarnation above
    its floor (a restarted agent starts at a new, larger one), with the lowest such
    incarnation seen. When no host of another zone answers (the first zone of a new
    fleet: the others do not exist yet), the zone's own hosts are asked instead."""
    from skyfleet.client import AgentClient, AgentError
    from skyfleet.security.certs import check_chain
    from skyfleet.transport.tls import TlsMaterial

    ca, cert, key = (props[k].encode() for k in ("ca_pem", "admin_cert_pem", "admin_key_pem"))
    tls = TlsMaterial(ca=ca, cert=cert, key=key, identity=check_chain(ca, cert, key))
    seen: dict[str, int] | None = None
    for group in (props["observers"], props["own"]):
        for endpoint in group:
            try:
                async with AgentClient(endpoint, tls) as client:
                    _, rows = await client.list_members(timeout=10)
            except AgentError:
                continue
            view = {r.name: r.incarnation for r in rows if r.name in floors
                    and r.state == "alive" and r.incarnation > floors[r.name]}
            seen = view if seen is None else {
                n: min(i, view[n]) for n, i in seen.items() if n in view}
        if seen is not None:
            return seen
    return {}


def wait_for_zone(props: dict[str, Any], floors: dict[str, int], *,
                  timeout: float = REJOIN_TIMEOUT, poll: float = POLL) -> dict[str, int]:
    """Wait until every node of the zone is alive above its floor incarnation (-1: any);
    the incarnations seen, or RolloutError naming the zone and the nodes missing."""
    deadline = time.monotonic() + timeout
    while True:
        seen = asyncio.run(_alive_above(props, floors))
        missing = sorted(set(props["nodes"]) - set(seen))
        if not missing:
            return seen
        if time.monotonic() > deadline:
            raise RolloutError(
                f"zone {props['zone']}: {', '.join(missing)} not back in the fleet after "
                f"{timeout:.0f} s; the rollout stops here (the zones after it keep their "
                "hosts)")
        time.sleep(poll)


class ZoneRejoinedProvider(ResourceProvider):
    """create waits for the zone to join; update (a new runtime, new hosts) waits for
    it to rejoin; nothing to delete."""

    def create(self, props: dict[str, Any]) -> CreateResult:
        seen = wait_for_zone(props, {n: -1 for n in props["nodes"]})
        return CreateResult(id_=props["zone"], outs={**props, "incarnations": seen})

    def diff(self, _id: str, olds: dict[str, Any], news: dict[str, Any]) -> DiffResult:
        keys = ("runtime", "hosts", "nodes")
        return DiffResult(changes=any(olds.get(k) != news.get(k) for k in keys))

    def update(self, _id: str, olds: dict[str, Any], news: dict[str, Any]) -> UpdateResult:
        """The zone's hosts were replaced before this runs: each must be back at an
        incarnation above the one recorded last time (a new agent process)."""
        before = olds.get("incarnations") or {}
        seen = wait_for_zone(news, {n: int(before.get(n, -1)) for n in news["nodes"]})
        return UpdateResult(outs={**news, "incarnations": seen})


class ZoneRejoined(Resource, module="skyfleet", name="ZoneRejoined"):
    zone: pulumi.Output[str]
    """The zone's label: what the next zone's hosts take as input, to come after it."""

    def __init__(self, name: str, *, zone: str, nodes: list[str],
                 hosts: list[pulumi.Input[str]], runtime: str,
                 observers: list[str], own: list[str], ca_pem: pulumi.Input[str],
                 admin_cert_pem: pulumi.Input[str], admin_key_pem: pulumi.Input[str],
                 opts: pulumi.ResourceOptions | None = None) -> None:
        """`hosts`: the zone's host resource ids (the inputs that order the gate after
        them); `observers`: endpoints of hosts in other zones, asked for the fleet's view;
        `own`: the zone's own hosts' endpoints, asked when no observer answers."""
        super().__init__(
            ZoneRejoinedProvider(), name,
            {"zone": zone, "nodes": nodes, "hosts": hosts, "runtime": runtime,
             "observers": observers, "own": own, "ca_pem": ca_pem, "admin_cert_pem": admin_cert_pem,
             "admin_key_pem": pulumi.Output.secret(admin_key_pem)},
            opts,
        )


@dataclass
class RolloutChain:
    """The fleet's zones in rollout order, one gate after each: host components add
    their zones in turn (`after` is what the next zone's hosts take as input)."""

    runtime: str
    """The runtime bundle's hash: a new one is what a rollout rolls out."""
    endpoints: dict[str, str]
    """Every host's agent endpoint, by node: the other zones' hosts observe a zone."""
    ca_pem: pulumi.Input[str]
    admin_cert_pem: pulumi.Input[str]
    admin_key_pem: pulumi.Input[str]
    after: pulumi.Output[str] | None = None
    zones: list[str] = field(default_factory=list)

    @staticmethod
    def label(cloud: str, region: str, zone: str) -> str:
        """`aws-us-east-1a`, `azure-eastus-1`: fits a GCP label value and an AWS tag."""
        return f"{cloud}-{zone}" if zone.startswith(region) else f"{cloud}-{region}-{zone}"

    def after_tag(self, key: str) -> dict[str, pulumi.Output[str]]:
        """The tag (or label) by which the next zone's hosts come after the last gate."""
        return {key: self.after} if self.after is not None else {}

    def gate(self, label: str, nodes: list[str], host_ids: list[pulumi.Input[str]],
             parent: pulumi.Resource) -> None:
        """The gate after zone `label`, whose hosts are `nodes` (resource ids `host_ids`)."""
        observers = [e for n, e in sorted(self.endpoints.items()) if n not in nodes]
        gate = ZoneRejoined(
            f"rollout-{label}", zone=label, nodes=sorted(nodes), hosts=host_ids,
            runtime=self.runtime,
            observers=observers, own=[self.endpoints[n] for n in sorted(nodes)],
            ca_pem=self.ca_pem, admin_cert_pem=self.admin_cert_pem,
            admin_key_pem=self.admin_key_pem, opts=pulumi.ResourceOptions(parent=parent))
        self.after = gate.zone
        self.zones.append(label)
