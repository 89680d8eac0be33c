"""Policy rollout on virtual time: the agent's own `PolicyAdopter` and `PolicySync` on
every simulated node, adverts riding on the simulated gossip, pulls as request/response.

What each node does is what `skyfleet.node.Agent` and `transport.policy_loop.PolicyKeeper`
do, minus the I/O:

- every `status_interval` (staggered) it re-advertises its status (policy version and
  hash) through `Swim.publish_status` when the agent's rule says so (a change, or the
  refresh interval), and at once after an adoption;
- every poll interval it asks its `PolicySync` for a pull, given the adverts it holds,
  and at once after a step in which newer statuses arrived (the keeper's nudge);
- a pull is a request to the chosen peer and a reply carrying the peer's signed envelope
  as the bytes the Fetch RPC would carry, each way delayed (or lost) by the cluster's
  `SimNetwork`; the reply is offered to the node's `PolicyAdopter`, which parses and
  verifies the ed25519 signature like any other offer. A request to a crashed peer, or a
  lost packet, costs the requester its `fetch_timeout`, as a gRPC deadline would.

Policy events go into the cluster's own event heap (`SimCluster.call_at`), in order with
packets and timers; the membership simulation is the unmodified one.

Adverts: the keeper hands `next_fetch` every up member's advertised version, and
`next_fetch` keeps those above the node's own. Here only those are gathered, found
through the nodes that hold a newer version (a status is only ever published by its own
node, so no other node can advertise one): the same decisions, without scanning N
statuses on each of 4 N polls per second.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from typing import Any

from skyfleet.config.membership import MembershipConfig
from skyfleet.config.policy_sync import PolicySyncTimings, policy_sync_timings
from skyfleet.membership.messages import StatusReport
from skyfleet.membership.swim import Swim
from skyfleet.policy.adoption import Decision, PolicyAdopter
from skyfleet.policy.envelope import wire_bytes
from skyfleet.policy.keeping import PolicyKeeping, advert
from skyfleet.policy.signing import TrustedKeys
from skyfleet.policy.sync import Advert, FetchPlan, PolicySync
from skyfleet.sim.cluster import SimCluster
from skyfleet.sim.network import SimNetwork
from skyfleet.status.publication import StatusAdvertiser


@dataclass(frozen=True, slots=True, kw_only=True)
class PolicySimSettings:
    timings: PolicySyncTimings | None = None
    """Poll interval, fetch deadline, retry delay; None: the agent's own, derived from
    the membership config (`policy_sync_timings`)."""
    serve_time: float = 0.0
    """Seconds a peer takes to answer a Fetch, beyond the network delay."""


@dataclass(slots=True)
class PolicyNode:
    keeping: PolicyKeeping
    advertiser: StatusAdvertiser
    """The agent's own re-advertising rule."""
    adopted_at: dict[int, float] = field(default_factory=dict)
    """Virtual time each version was adopted (the initial one at 0)."""
    life: int = 0
    """Which process of this name it is: events of an earlier life (before a crash and
    restart) are dropped, as a dead process's timers and calls die with it."""
    pulls: int = 0
    pull_failures: int = 0
    statuses_seen: int = 0
    """`Swim.statuses_received` when last looked at: a change nudges a poll."""
    events_seen: int = 0
    """Member events handed to the advertiser so far."""

    @property
    def version(self) -> int:
        return self.keeping.version

    @property
    def adopter(self) -> PolicyAdopter:
        return self.keeping.adopter


@dataclass(frozen=True, slots=True)
class _Pull:
    """One Fetch in flight; `envelope` is set on the reply."""

    requester: str
    plan: FetchPlan
    started: float
    envelope: bytes = b""


class PolicyCluster(SimCluster):
    """A `SimCluster` whose nodes also run the agent's policy adoption and pull."""

    def __init__(
        self,
        config: MembershipConfig,
        *,
        trusted_keys: TrustedKeys,
        initial_envelope: dict[str, Any] | None = None,
        settings: PolicySimSettings | None = None,
        seed: int = 1,
        network: SimNetwork | None = None,
    ) -> None:
        super().__init__(config, seed=seed, network=network)
        s = settings or PolicySimSettings()
        self.settings = s
        self.timings = s.timings or policy_sync_timings(config)
        self.policy: dict[str, PolicyNode] = {}
        self.advertising = False
        self.decisions: list[tuple[str, Decision]] = []
        """Every adoption and rejection (not the repeats), for the caller to inspect."""
        self._trusted = trusted_keys
        self._initial = initial_envelope
        self._policy_rng = random.Random(seed + 2)
        self._holders: dict[int, set[str]] = {}
        self._served: dict[tuple[int, str], bytes] = {}
        self.pull_seconds: list[float] = []
        """Duration of every successful pull, request to verified reply."""

    # ------------------------------------------------------------------ fleet control

    def add_node(
        self,
        name: str,
        *,
        seeds: tuple[str, ...] = (),
        cloud: str = "",
        zone: str = "",
        incarnation: int = 0,
        known: frozenset[str] = frozenset(),
        region: str = "",
    ) -> Swim:
        """Start a node with the policy in force at boot (the persisted one); its advert
        and poll loops start with `start_advertising`, or at once if already started."""
        swim = super().add_node(
            name,
            seeds=seeds,
            cloud=cloud,
            zone=zone,
            incarnation=incarnation,
            known=known,
            region=region,
        )
        rng = random.Random(self._policy_rng.random())
        old = self.policy.get(name)
        node = PolicyNode(
            PolicyKeeping(
                PolicyAdopter(trusted_keys=self._trusted, current=self._initial),
                PolicySync(
                    rng,
                    retry_after=self.timings.retry_after,
                    fetch_timeout=self.timings.fetch_timeout,
                ),
            ),
            StatusAdvertiser(self.config.status_refresh_interval),
            life=0 if old is None else old.life + 1,
        )
        node.adopted_at[node.version] = self.now
        if old is not None:
            self._holders.get(old.version, set()).discard(name)
        self.policy[name] = node
        self._holders.setdefault(node.version, set()).add(name)
        if self.advertising:
            self._start_loops(name)
        return swim

    def start_advertising(self) -> None:
        """Start every node's status and poll loops (staggered, as agents booted at
        different moments would be)."""
        self.advertising = True
        for name in self.live_names():
            self._start_loops(name)

    def advertise_now(self, name: str) -> int:
        """Publish `name`'s status at once; the sequence number it carries."""
        self._publish(name)
        status, _ = self.nodes[name].swim.statuses()[name]
        return status.seq

    def offer(self, name: str, envelope: bytes | dict[str, Any], origin: str) -> Decision:
        """Hand `name` an envelope (an admin's Publish, or the watched file)."""
        return self._offer(name, envelope, origin)

    # ------------------------------------------------------------------ observation

    def version_of(self, name: str) -> int:
        return self.policy[name].version

    def on_version(self, version: int, names: list[str] | None = None) -> int:
        """How many of `names` (default: the live nodes) run `version` or newer."""
        names = names if names is not None else self.live_names()
        return sum(1 for n in names if self.policy[n].version >= version)

    # ------------------------------------------------------------------ internals

    def after_step(self, name: str) -> None:
        """Member events reach the advertiser, as the agent's do; newer statuses arrived:
        poll now, as the agent's keeper is nudged."""
        node = self.policy.get(name)
        if node is None or not self.advertising:
            return
        events = self.nodes[name].events
        for event in events[node.events_seen:]:
            node.advertiser.on_member_event(event.kind)
        node.events_seen = len(events)
        received = self.nodes[name].swim.statuses_received
        if received != node.statuses_seen:
            node.statuses_seen = received
            self._poll(name)

    def _at(self, when: float, kind: str, name: str, pull: _Pull | None = None) -> None:
        life = self.policy[name].life
        self.call_at(when, lambda: self._event(kind, name, life, pull))

    def _event(self, kind: str, name: str, life: int, pull: _Pull | None) -> None:
        """A policy event falls due: dropped if its process died since (a crash ends its
        timers and calls); a call to a dead server fails at the requester's deadline."""
        if self.nodes[name].up and self.policy[name].life == life:
            self._fire(kind, name, pull)
        elif kind == "serve" and pull is not None:
            self._at(
                max(self.now, pull.started + self.timings.fetch_timeout),
                "fail",
                pull.requester,
                pull,
            )

    def _start_loops(self, name: str) -> None:
        rng = self._policy_rng
        # Joins before the loops started were news to a status not yet said: the first
        # publication below covers them, as the agent's first one at start does.
        self.policy[name].events_seen = len(self.nodes[name].events)
        self._publish(name)
        self._at(self.now + rng.uniform(0, self.config.status_interval), "advertise", name)
        self._at(self.now + rng.uniform(0, self.timings.poll_interval), "poll", name)

    def _fire(self, kind: str, name: str, pull: _Pull | None) -> None:
        if kind == "advertise":
            self._publish(name, only_if_worth=True)
            self._at(self.now + self.config.status_interval, "advertise", name)
        elif kind == "poll":
            self._poll(name)
            self._at(self.now + self.timings.poll_interval, "poll", name)
        elif kind == "serve":
            assert pull is not None
            self._serve(name, pull)
        elif kind == "reply":
            assert pull is not None
            self._reply(pull)
        elif kind == "fail":
            assert pull is not None
            self._pull_failed(pull)

    def _publish(self, name: str, *, only_if_worth: bool = False) -> None:
        """Advertise the node's status; on the periodic tick only when the agent would
        (`worth_publishing`: a change, or the refresh interval)."""
        node = self.policy[name]
        report = StatusReport(
            policy_version=node.version, policy_hash=node.adopter.current_hash or ""
        )
        if only_if_worth:
            if not node.advertiser.tick(report, self.now):
                return
        else:
            node.advertiser.published(report, self.now)
        self.emit(name, self.nodes[name].swim.publish_status(report, self.now))

    def _adverts(self, name: str) -> Iterator[Advert]:
        """The adverts above our version that `name`'s gossip has delivered (module
        docstring), each counted or not by the keeper's own rule."""
        current = self.policy[name].version
        newer = [v for v in self._holders if v > current and self._holders[v]]
        if not newer:
            return
        swim = self.nodes[name].swim
        statuses = swim.statuses()
        for version in newer:
            for holder in self._holders[version]:
                known = statuses.get(holder)
                if known is not None:
                    found = advert(holder, known[0].report, swim.member(holder), own=name)
                    if found is not None:
                        yield found

    def _poll(self, name: str) -> None:
        node = self.policy[name]
        plan = node.keeping.next_fetch(self._adverts(name), self.now)
        if plan is None:
            return
        node.pulls += 1
        pull = _Pull(name, plan, self.now)
        transit = self.network.transit(name, plan.node)
        server = self.nodes.get(plan.node)
        if transit is None or server is None or not server.up:
            self._at(self.now + self.timings.fetch_timeout, "fail", name, pull)
        else:
            self._at(self.now + transit, "serve", plan.node, pull)

    def _serve(self, name: str, pull: _Pull) -> None:
        envelope = self._envelope_bytes(name)
        transit = self.network.transit(name, pull.requester)
        done = self.now + self.settings.serve_time + (transit or 0.0)
        if transit is None or done > pull.started + self.timings.fetch_timeout:
            self._at(
                max(self.now, pull.started + self.timings.fetch_timeout),
                "fail",
                pull.requester,
                pull,
            )
            return
        self._at(done, "reply", pull.requester, replace(pull, envelope=envelope))

    def _envelope_bytes(self, name: str) -> bytes:
        """What Fetch carries: the envelope in force, serialized as the agent does (once
        per document: every node serves the same signed bytes)."""
        adopter = self.policy[name].adopter
        key = (self.policy[name].version, adopter.current_hash or "")
        if key not in self._served:
            envelope = adopter.current_envelope
            self._served[key] = wire_bytes(envelope) if envelope else b""
        return self._served[key]

    def _reply(self, pull: _Pull) -> None:
        node = self.policy[pull.requester]
        before = node.version
        decision = node.keeping.served(pull.plan, pull.envelope, self.now)
        if decision is None:
            node.pull_failures += 1
            return
        self.pull_seconds.append(self.now - pull.started)
        self._took(pull.requester, before, decision)

    def _pull_failed(self, pull: _Pull) -> None:
        node = self.policy[pull.requester]
        node.pull_failures += 1
        node.keeping.fetch_failed(pull.plan, self.now)

    def _offer(self, name: str, envelope: bytes | dict[str, Any], origin: str) -> Decision:
        node = self.policy[name]
        before = node.version
        return self._took(name, before, node.keeping.offer(envelope, origin, self.now))

    def _took(self, name: str, before: int, decision: Decision) -> Decision:
        node = self.policy[name]
        if not decision.repeat:
            self.decisions.append((name, decision))
        if decision.adopted:
            self._holders[before].discard(name)
            self._holders.setdefault(node.version, set()).add(name)
            node.adopted_at[node.version] = self.now
            if self.advertising:
                self._publish(name)  # the agent re-advertises at once on a change
        return decision
