"""Failure detection: probes, indirect probes, and the acks and nacks that answer them.

Every `probe_interval` (stretched by the local health score) a node pings the next member
of a shuffled round-robin list. Without an ack within `probe_timeout` it asks
`indirect_checks` other members to ping the target for it; they answer with the relayed
ack or, if the target stays silent, with a nack (Lifeguard). With no ack by the end of the
interval the target becomes suspect: what follows is the core's (`suspect`).
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass

from skyfleet.config.membership import MembershipConfig
from skyfleet.membership.awareness import Awareness
from skyfleet.membership.gossip import Send
from skyfleet.membership.members import MemberTable, MemberView
from skyfleet.membership.messages import (
    Ack,
    Dead,
    IndirectPing,
    MemberState,
    Nack,
    Packet,
    Ping,
    Suspect,
    Update,
)
from skyfleet.membership.stats import SwimStats
from skyfleet.membership.timers import RelayTimer, Timer, TimerKey, Timers
from skyfleet.membership.timing import scale_by_health


@dataclass(slots=True)
class _Probe:
    seq: int
    target: str
    end_at: float
    expected_nacks: int = 0
    nacks: int = 0
    indirect: bool = False


@dataclass(frozen=True, slots=True)
class _Relay:
    """An indirect ping we perform for `requester`."""

    requester: str
    requester_address: str
    seq: int
    want_nack: bool


class Prober:
    def __init__(
        self,
        me: str,
        config: MembershipConfig,
        rng: random.Random,
        timers: Timers[TimerKey],
        table: MemberTable,
        awareness: Awareness,
        stats: SwimStats,
        send: Send,
        suspect: Callable[[Suspect, float], None],
    ) -> None:
        """`suspect` takes our accusation of a target that failed its probe."""
        self._me = me
        self._cfg = config
        self._rng = rng
        self._timers = timers
        self._table = table
        self._awareness = awareness
        self._stats = stats
        self._send = send
        self._suspect = suspect
        self._order: list[str] = []
        self._index = 0
        self._probe: _Probe | None = None
        self._relays: dict[int, _Relay] = {}
        self._seq = 0

    def start(self, now: float) -> None:
        """Staggered, so a fleet started together does not probe in lockstep."""
        self._timers.set(Timer.PROBE, now + self._rng.uniform(0, self._cfg.probe_interval))

    def adopt(self) -> None:
        """Start a fresh round over the members the table holds up."""
        table = self._table
        self._order = [n for n in table.names if table.members[n].is_up]
        self._rng.shuffle(self._order)
        self._index = 0

    def add(self, name: str) -> None:
        """A random slot, so that a new member is probed soon by some and late by others."""
        self._order.insert(self._rng.randint(0, len(self._order)), name)

    def forget(self, name: str) -> None:
        """`name` left the table: a probe of it has nobody left to suspect."""
        if self._probe is not None and self._probe.target == name:
            self._end_probe()

    def stop(self) -> None:
        """We are leaving: no more probes."""
        self._timers.cancel(Timer.PROBE)
        self._end_probe()

    def _end_probe(self) -> None:
        self._probe = None
        self._timers.cancel(Timer.PROBE_TIMEOUT)
        self._timers.cancel(Timer.PROBE_END)

    def on_probe_timer(self, now: float) -> None:
        cfg, score = self._cfg, self._awareness.score
        self._timers.set(Timer.PROBE, now + scale_by_health(cfg.probe_interval, score))
        if self._probe is not None:  # the previous probe's end is due at the same instant
            self.on_probe_end(now)
        target = self._next_target()
        if target is None:
            return
        self._seq += 1
        self._stats.probes += 1
        self._probe = _Probe(
            self._seq, target.meta.name, now + scale_by_health(cfg.probe_interval, score)
        )
        self._timers.set(Timer.PROBE_TIMEOUT, now + scale_by_health(cfg.probe_timeout, score))
        # A suspect hears of its suspicion with the ping itself (memberlist does the
        # same), so it refutes even if the gossip about it never reached it.
        hint: tuple[Update, ...] = ()
        if target.state == MemberState.SUSPECT:
            hint = (Suspect(target.meta.name, target.incarnation, self._me),)
        ping = Ping(self._seq, target.meta.name)
        self._send(target.meta.address, ping, target.meta.name, hint)

    def _next_target(self) -> MemberView | None:
        table = self._table
        for _ in range(2):
            while self._index < len(self._order):
                member = table.members.get(self._order[self._index])
                self._index += 1
                if member is not None and member.is_up:
                    return member
            # End of the round: reshuffle the members still worth probing.
            self._order = [n for n, m in table.members.items() if n != self._me and m.is_up]
            self._rng.shuffle(self._order)
            self._index = 0
        return None

    def on_probe_timeout(self, now: float) -> None:
        probe = self._probe
        if probe is None:
            return
        table = self._table
        target = table.members[probe.target]
        candidates = [
            n for n, m in table.members.items() if m.is_up and n not in (self._me, probe.target)
        ]
        helpers = self._rng.sample(candidates, min(self._cfg.indirect_checks, len(candidates)))
        probe.indirect, probe.expected_nacks = True, len(helpers)
        self._stats.indirect_probes += len(helpers)
        for name in helpers:
            helper = table.members[name].meta
            request = IndirectPing(probe.seq, probe.target, target.meta.address, want_nack=True)
            self._send(helper.address, request, name)
        self._timers.set(Timer.PROBE_END, probe.end_at)

    def on_probe_end(self, now: float) -> None:
        probe = self._probe
        self._end_probe()
        if probe is None:
            return
        # Missed nacks mean our own path to healthy helpers failed: we are the slow one.
        missed = probe.expected_nacks - probe.nacks if probe.expected_nacks else 1
        self._awareness.apply_delta(missed)
        self._stats.probe_failures += 1
        member = self._table.members.get(probe.target)
        if member is not None and member.is_up:
            self._suspect(Suspect(probe.target, member.incarnation, self._me), now)

    def on_ack(self, ack: Ack) -> None:
        probe = self._probe
        if probe is not None and ack.seq == probe.seq:
            if not probe.indirect:
                self._awareness.apply_delta(-1)
            self._end_probe()
            return
        relay = self._relays.pop(ack.seq, None)
        if relay is not None:
            self._timers.cancel(RelayTimer(ack.seq))
            self._send(relay.requester_address, Ack(relay.seq), relay.requester)

    def on_nack(self, nack: Nack) -> None:
        if self._probe is not None and nack.seq == self._probe.seq:
            self._probe.nacks += 1

    def on_ping(self, packet: Packet, ping: Ping) -> None:
        if ping.target and ping.target != self._me:
            return  # meant for whoever had this address before us
        hint: tuple[Update, ...] = ()
        sender = self._table.members.get(packet.sender)
        if sender is not None and sender.state == MemberState.DEAD:
            # It is alive enough to ping us while we hold it dead: tell it directly so it
            # refutes now rather than after the next push-pull.
            hint = (Dead(packet.sender, sender.incarnation, self._me),)
        self._send(packet.sender_address, Ack(ping.seq), packet.sender, hint)

    def on_indirect_ping(self, packet: Packet, req: IndirectPing, now: float) -> None:
        self._seq += 1
        self._relays[self._seq] = _Relay(
            packet.sender, packet.sender_address, req.seq, req.want_nack
        )
        self._timers.set(RelayTimer(self._seq), now + self._cfg.probe_timeout)
        self._send(req.target_address, Ping(self._seq, req.target), req.target)

    def on_relay_timeout(self, seq: int) -> None:
        relay = self._relays.pop(seq, None)
        if relay is not None and relay.want_nack:
            self._send(relay.requester_address, Nack(relay.seq), relay.requester)
