"""Membership timings: hashicorp/memberlist's LAN defaults, with a preset for WAN and one
for a fleet squeezed onto a single machine.

Every duration is in seconds. The formulas these feed live in
`skyfleet.membership.timing`, each a small pure function with a table test.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, fields, replace
from typing import Any

from skyfleet.config.errors import ConfigError


@dataclass(frozen=True, slots=True, kw_only=True)
class MembershipConfig:
    probe_interval: float = 1.0
    """How often a node probes one other member (round robin over a shuffled list).

    Together with the suspicion timeout this bounds detection time; Lifeguard's local
    health score stretches it on a node that is itself slow (see `awareness_max_multiplier`).
    """

    probe_timeout: float = 0.5
    """How long a direct ping waits for an ack before indirect probes are sent.

    Should sit above the 99th percentile round trip; memberlist uses 500 ms on a LAN.
    """

    indirect_checks: int = 3
    """k: how many other members are asked to ping a target that missed a direct ack.

    More helpers make a false suspicion through one bad path less likely, at k messages a
    failed probe.
    """

    gossip_interval: float = 0.2
    """How often queued news is gossiped to `gossip_nodes` random members.

    Dissemination time is about gossip_interval x log_{fan-out}(N) rounds.
    """

    gossip_nodes: int = 3
    """Fan-out of each gossip round."""

    gossip_eager_gap: float = 0.05
    """Fresh news (membership changes, a new policy version) pulls the next gossip round
    forward to now, at most once per this many seconds; load reports wait for the
    periodic rounds. Each hop then costs a round trip instead of half a gossip interval.
    Set it to `gossip_interval` for memberlist's purely periodic rounds."""

    gossip_to_dead: float = 30.0
    """Dead members still receive gossip for this long, so that a node wrongly marked dead
    hears about it quickly and refutes."""

    retransmit_mult: int = 4
    """Each piece of news is sent retransmit_mult x ceil(log10(N + 1)) times."""

    suspicion_mult: int = 4
    """Minimum suspicion timeout = suspicion_mult x max(1, log10 N) x probe_interval."""

    suspicion_max_timeout_mult: int = 6
    """Lifeguard: a suspicion timer starts at this multiple of the minimum and shrinks as
    independent confirmations arrive; suspicion_mult - 2 confirmations bring it to the
    minimum."""

    refused_timeout: float = 0.5
    """A member whose port refused a connection is declared dead this long after, unless
    it refutes first. A refusal (TCP RST from the member's host, checked by a fresh
    connect: `transport/port_check.py`) is an answer, not a silence: the host is up and
    nothing listens, so the agent is gone. A SIGSTOPped agent, a slow one and a lossy or
    blackholed path refuse nothing and keep the full Lifeguard suspicion. The wait lets a
    misattributed refusal (an address reused) be refuted; a process that restarted on the
    port rejoins at a new incarnation anyway. 0 turns the rule off (memberlist, Serf)."""

    awareness_max_multiplier: int = 8
    """Lifeguard local health: a score in [0, max - 1] multiplies one's own probe interval
    and timeout by (score + 1). It rises on missed acks, missed nacks and refutations and
    falls on successful probes, so a starved node slows itself down instead of accusing
    healthy peers."""

    push_pull_interval: float = 30.0
    """Full state exchange with one random member (anti-entropy). Scaled up for N > 32 so
    the total rate stays bounded (memberlist's pushPullScale)."""

    reconnect_interval: float = 30.0
    """How often a node tries a push-pull with one random *dead* member, so that both sides
    of a long partition find each other again (the Serf fix for serf#605)."""

    reconnect_timeout: float = 24 * 3600.0
    """A dead member is forgotten after this long; until then it is retried."""

    tombstone_timeout: float = 24 * 3600.0
    """A member that left gracefully is remembered this long, so stale alive news about it
    cannot resurrect it."""

    join_catch_up_window: float = 0.2
    """A node that answered a join sends the joiner, at each of its gossip rounds, the
    members it learned after answering, until this long passes with nothing new. A join
    reply is a snapshot, and in a burst of joins through one seed the early joiners'
    snapshots miss the later ones: this completes them over the connection the joiner
    opened, instead of leaving every such pair to gossip. 0 turns it off (memberlist)."""

    join_retry_min: float = 0.25
    """First retry delay of a join through seeds; doubles to `join_retry_max` with jitter."""

    join_retry_max: float = 10.0
    """Cap on the join retry delay; a node keeps retrying until it reaches a seed."""

    status_interval: float = 1.0
    """How often a node checks whether its status (load, policy version) changed enough
    to advertise it; a policy change is advertised at once. The period bounds how stale
    load information is."""

    status_refresh_interval: float = 30.0
    """An unchanged status is re-advertised this often, so late joiners and nodes that
    missed it still learn it (push-pull also carries it)."""

    status_retransmit_share: float = 0.25
    """Status news is sent this share of the usual retransmit count: the next report
    supersedes it anyway, and push-pull repairs what gossip missed. Keeps a busy fleet's
    load reports from crowding out membership news."""

    status_min_transmits: int = 3
    """...but each holder sends a status at least this often: in a small fleet the share
    leaves one transmit (4 x ceil(log10 10) x 0.25 at N = 9), a chain rather than an
    epidemic, and balancers routed on statuses seconds old (bench/status_age.py). Large
    fleets are unaffected: the share gives more there."""

    packet_budget: int = 1400
    """Bytes of piggybacked news per packet (memberlist's UDP-safe size). gRPC has no such
    limit, but bounded packets keep probe latency flat while a large join is gossiped."""

    leave_propagate_delay: float = 1.0
    """After announcing a graceful leave, keep serving this long so the news spreads."""

    def with_overrides(self, overrides: dict[str, Any]) -> MembershipConfig:
        """Apply `overrides` (e.g. from a config file); unknown keys are a named error."""
        known = {f.name for f in fields(self)}
        unknown = sorted(set(overrides) - known)
        if unknown:
            raise ConfigError(f"membership: unknown setting(s) {', '.join(unknown)}")
        for name, value in overrides.items():
            _check_type(name, value, getattr(self, name))
        cfg = replace(self, **overrides)
        cfg.validate()
        return cfg

    def validate(self) -> None:
        """Raise ValueError naming the first setting that cannot work."""
        positive = (
            "probe_interval",
            "probe_timeout",
            "gossip_interval",
            "gossip_eager_gap",
            "push_pull_interval",
            "reconnect_interval",
            "status_interval",
            "status_refresh_interval",
            "join_retry_min",
            "join_retry_max",
        )
        for name in positive:
            value = getattr(self, name)
            if not (math.isfinite(value) and value > 0):
                raise ConfigError(f"membership.{name}: must be a finite number > 0, got {value}")
        for f in fields(self):
            value = getattr(self, f.name)
            if math.isnan(value) or value < 0:
                raise ConfigError(f"membership.{f.name}: must be a number >= 0, got {value}")
        if self.probe_timeout >= self.probe_interval:
            raise ConfigError(
                "membership.probe_timeout: must be shorter than probe_interval "
                f"({self.probe_timeout} >= {self.probe_interval})"
            )
        for name in (
            "indirect_checks",
            "gossip_nodes",
            "retransmit_mult",
            "suspicion_mult",
            "status_min_transmits",
        ):
            if getattr(self, name) < 1:
                raise ConfigError(f"membership.{name}: must be >= 1, got {getattr(self, name)}")
        if self.suspicion_max_timeout_mult < 1:
            raise ConfigError("membership.suspicion_max_timeout_mult: must be >= 1")
        if not 0 < self.status_retransmit_share <= 1:
            raise ConfigError("membership.status_retransmit_share: must be in (0, 1]")
        if self.awareness_max_multiplier < 1:
            raise ConfigError("membership.awareness_max_multiplier: must be >= 1")


def _check_type(name: str, value: object, default: int | float) -> None:
    """Config files are typed by hand: a string or a boolean where a number belongs is
    named here, before it could fail as a bare comparison error deep in `validate`."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ConfigError(f"membership.{name}: expected a number, got {type(value).__name__}")
    if isinstance(default, int) and not isinstance(value, int):
        raise ConfigError(f"membership.{name}: expected an integer, got {value!r}")


_PRESETS: dict[str, MembershipConfig] = {
    # memberlist DefaultLANConfig.
    "lan": MembershipConfig(),
    # memberlist DefaultWANConfig: only what differs.
    "wan": MembershipConfig(
        probe_interval=5.0,
        probe_timeout=3.0,
        gossip_interval=0.5,
        gossip_nodes=4,
        suspicion_mult=6,
        push_pull_interval=60.0,
    ),
    # memberlist DefaultLocalConfig (one machine, loopback): faster everything.
    "local": MembershipConfig(
        probe_interval=1.0,
        probe_timeout=0.2,
        gossip_interval=0.1,
        suspicion_mult=3,
        push_pull_interval=15.0,
        reconnect_interval=5.0,
    ),
}


def membership_preset(name: str) -> MembershipConfig:
    """The named preset: `lan` (default), `wan` or `local`."""
    try:
        return _PRESETS[name]
    except KeyError:
        raise ConfigError(
            f"membership.profile: unknown profile {name!r} (known: {', '.join(_PRESETS)})"
        ) from None
