"""SWIM with the Lifeguard refinements, as a sans-I/O state machine.

Theory of operation
-------------------
Every `probe_interval` (stretched by the local health score) a node pings the next member
of a shuffled round-robin list. Without an ack within `probe_timeout` it asks
`indirect_checks` other members to ping the target for it; they answer with the relayed
ack or, if the target stays silent, with a nack (Lifeguard). With no ack by the end of the
interval the target becomes *suspect*. A suspicion timer starts at its maximum and shrinks
as other members independently confirm (Lifeguard); when it fires the member is *dead*.
A member that hears itself suspected or declared dead refutes by raising its incarnation.

News (alive / suspect / dead) rides on every packet and on periodic gossip to
`gossip_nodes` random members, each item at most `retransmit_mult x ceil(log10(N+1))`
times; newer news about a node replaces older. Fresh news also pulls an early round
forward, sent only to members on an open connection (see `_timer_gossip`). A periodic
push-pull of the whole table heals what gossip missed, and a periodic push-pull with one
*dead* member lets both sides of a long partition find each other again (serf#605). A
node that answered joins completes those joiners' tables at its next rounds
(`catch_up.py`), so a burst of joins converges without waiting on gossip.

Precedence: higher incarnation wins; at equal incarnation dead/left beats suspect beats
alive. A restarted node starts with a fresh, larger incarnation (the driver seeds it from
the wall clock) and refutes any news about its previous life, so stale `dead` never
beats a fresh `alive` (memberlist#311). No claim may raise an incarnation by more than a
fixed step or reach the ceiling below the wire's maximum (`incarnation.py`), so a victim
always has room to refute. What only a node may say of itself (alive at an incarnation
with its address and metadata, leaving) counts only with its signature (`claims.py`),
checked where the claim would take effect; accusations need none.

Usage: the driver calls `start`, then `handle(packet, now)` for each packet received and
`tick(now)` whenever `now >= next_deadline()`; each returns the packets to send.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace

from skyfleet.config.membership import MembershipConfig
from skyfleet.membership.awareness import Awareness
from skyfleet.membership.broadcast import BroadcastQueue
from skyfleet.membership.catch_up import CatchUp
from skyfleet.membership.claims import ClaimKeys, Verdict, alive_claim, leave_claim
from skyfleet.membership.incarnation import admissible
from skyfleet.membership.members import EventKind, MemberEvent, MemberView
from skyfleet.membership.messages import (
    MIN_UPDATE_SIZE,
    Ack,
    Alive,
    Body,
    Dead,
    IndirectPing,
    MemberRecord,
    MemberState,
    Nack,
    NodeMeta,
    NodeStatus,
    Outgoing,
    Packet,
    Ping,
    PushPull,
    StatusReport,
    Suspect,
    Update,
    update_size,
)
from skyfleet.membership.suspicion import Suspicion
from skyfleet.membership.timers import Timers
from skyfleet.membership.timing import (
    push_pull_scale,
    retransmit_limit,
    scale_by_health,
    suspicion_timeout,
)


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


@dataclass(slots=True)
class SwimStats:
    """Monotonic counters for metrics."""

    probes: int = 0
    probe_failures: int = 0
    indirect_probes: int = 0
    suspicions: int = 0
    refutations: int = 0
    push_pulls: int = 0
    refused_claims: int = 0
    """Claims dropped by the incarnation rule (beyond the step or the ceiling)."""
    forged_claims: int = 0
    """Self-claims (alive, leave) not signed by the node they speak for."""
    claims_asked: int = 0
    """Nodes whose signed claims (and certificates) we asked a peer for: a claim signed by
    a key we did not hold yet, or a table row that would change ours."""
    refused_certificates: int = 0
    """Certificates peers sent that the fleet did not issue (or out of date, or no agent's)."""


MAX_WANT = 256
"""Nodes whose claims are asked for, or answered, in one packet."""
JOIN_CERTIFICATE_BUDGET = 1 << 20
"""Bytes of certificates a seed sends with its table to a joiner (about 2,000); the
joiner asks for any others it needs."""
MAX_CERTIFICATES = 2048
"""Certificates checked from one packet: a join answer's fit; a packet stuffed with more
(each new one costs a signature check) has the rest ignored."""


class Swim:
    def __init__(
        self,
        meta: NodeMeta,
        config: MembershipConfig,
        rng: random.Random,
        *,
        keys: ClaimKeys,
        incarnation: int = 0,
        warm: Callable[[NodeMeta], bool] | None = None,
    ) -> None:
        """`keys` signs our self-claims and checks others' (`claims.py`). `warm` tells
        whether a packet to a member would go out on a connection that is already open
        (the transport knows); None means every member is (a connectionless transport)."""
        self.meta = meta
        self.name = meta.name
        self.stats = SwimStats()
        self._cfg = config
        self._rng = rng
        self._keys = keys
        self._incarnation = incarnation
        signature = keys.sign(alive_claim(meta, incarnation))
        self._members: dict[str, MemberView] = {
            meta.name: MemberView(meta, MemberState.ALIVE, incarnation, 0.0, signature)
        }
        self._want: set[str] = set()
        """Nodes whose signed claims and certificates to ask the sender of the packet
        being handled for."""
        self._rows_unsigned = False
        """A table is being merged: a row without a signature is a digest (`_state`)."""
        self._joining: set[str] = set()
        """Members whose queued news is their join: it travels with their certificate."""
        self._up = 1
        self._names: list[str] = []
        """Other members' names, for sampling gossip targets without a scan."""
        self._awareness = Awareness(config.awareness_max_multiplier)
        self._broadcasts: BroadcastQueue[Update] = BroadcastQueue(
            update_size, min_size=MIN_UPDATE_SIZE
        )
        self._timers = Timers()
        self._suspicions: dict[str, tuple[Suspicion, int, str]] = {}
        """Per suspect: the timer's bookkeeping, the incarnation suspected, the accuser."""
        self._reply_to: tuple[str, str] | None = None
        """(name, address) of the sender of the packet being handled."""
        self._answered: set[str] = set()
        self._probe_order: list[str] = []
        self._probe_index = 0
        self._probe: _Probe | None = None
        self._relays: dict[int, _Relay] = {}
        self._statuses: dict[str, tuple[NodeStatus, float]] = {}
        self._status_seq = 0
        self._policy_seen = 0
        """Highest policy version any status advertised so far: a status above it is
        urgent news."""
        self._last_gossip = -float("inf")
        self._next_round = 0.0
        """When the next periodic gossip round is due; early rounds leave it alone."""
        self._urgent = False
        """News other than joins was queued since the last round (see `_timer_gossip`)."""
        self._warm = warm
        self.statuses_received = 0
        """Newer statuses of other nodes accepted so far: drivers watch it to react to
        adverts (a newer policy) at once instead of polling."""
        self._seq = 0
        self._catch_up = CatchUp(config.join_catch_up_window)
        self._seeds: tuple[str, ...] = ()
        self._join_attempt = 0
        self._joined = False
        self._leaving = False
        self._out: list[Outgoing] = []
        self._events: list[MemberEvent] = []

    # ------------------------------------------------------------------ driver API

    def start(self, now: float, seeds: tuple[str, ...] = ()) -> list[Outgoing]:
        """Arm the periodic timers (staggered, so a fleet started together does not
        probe in lockstep) and join through `seeds`."""
        cfg = self._cfg
        self._members[self.name] = replace(self._members[self.name], state_since=now)
        self._timers.set("probe", now + self._rng.uniform(0, cfg.probe_interval))
        self._next_round = now + self._rng.uniform(0, cfg.gossip_interval)
        self._timers.set("gossip", self._next_round)
        # Staggered: a fleet started together must not exchange full tables in lockstep.
        self._timers.set("push_pull", now + self._rng.uniform(0, self._push_pull_interval()))
        self._timers.set("reconnect", now + self._rng.uniform(0, cfg.reconnect_interval))
        self._seeds = tuple(s for s in seeds if s != self.meta.address)
        self._joined = not self._seeds
        if self._seeds:
            self._send_join(now)
        return self._flush()

    def adopt_members(self, members: Iterable[MemberView], now: float) -> None:
        """Know `members` at once, with no news about them to spread, as if the join had
        long converged. The simulator starts large fleets this way: a real 10,000-node
        join floods N alive messages into N tables (N^2 queued items), while adopted
        entries are shared between tables because they are immutable. The push-pull
        timer is re-drawn over the interval scaled for the fleet's size, as a long-
        converged fleet's would be (the one armed at start assumed a fleet of one)."""
        for m in members:
            if m.name == self.name or m.name in self._members:
                continue
            self._members[m.name] = m
            self._names.append(m.name)
            self._up += m.is_up
        self._probe_order = [n for n in self._names if self._members[n].is_up]
        self._rng.shuffle(self._probe_order)
        self._probe_index = 0
        self._joined = True
        if "push_pull" in self._timers:
            self._timers.set("push_pull", now + self._rng.uniform(0, self._push_pull_interval()))

    def handle(self, packet: Packet, now: float) -> list[Outgoing]:
        """Process one received packet."""
        self._reply_to, self._answered = (packet.sender, packet.sender_address), set()
        self._learn(packet.certificates)
        for update in packet.piggyback:
            self._apply(update, now)
        body = packet.body
        if isinstance(body, Ping):
            self._on_ping(packet, body)
        elif isinstance(body, Ack):
            self._on_ack(body)
        elif isinstance(body, Nack):
            if self._probe is not None and body.seq == self._probe.seq:
                self._probe.nacks += 1
        elif isinstance(body, IndirectPing):
            self._on_indirect_ping(packet, body, now)
        elif isinstance(body, PushPull):
            self._on_push_pull(packet, body, now)
        if packet.want_claims:
            self._send_claims(packet, packet.want_claims[:MAX_WANT])
        if self._want:
            want = tuple(sorted(self._want))[:MAX_WANT]
            self.stats.claims_asked += len(want)
            self._send(packet.sender_address, None, packet.sender, piggyback=False, want=want)
            self._want.clear()
        self._reply_to = None
        return self._flush()

    def tick(self, now: float) -> list[Outgoing]:
        """Fire every timer due at `now`."""
        while (name := self._timers.pop_due(now)) is not None:
            if isinstance(name, tuple):
                kind, arg = name
                if kind == "suspicion":
                    self._on_suspicion_timeout(str(arg), now)
                else:
                    self._on_relay_timeout(int(arg))
            else:
                getattr(self, f"_timer_{name}")(now)
        return self._flush()

    def next_deadline(self) -> float | None:
        return self._timers.next_deadline()

    @property
    def seeds(self) -> tuple[str, ...]:
        return self._seeds

    def set_seeds(self, seeds: tuple[str, ...]) -> None:
        """The seeds to rejoin through when alone (a config reload): no join now, the
        fleet we are in stays; the next time we have no one else, these are tried."""
        self._seeds = tuple(s for s in seeds if s != self.meta.address)

    def join(self, seeds: tuple[str, ...], now: float) -> list[Outgoing]:
        """Join (more of) a fleet through `seeds` at run time, as `serf join` does: a
        push-pull with each, retried with backoff until one answers (`joined`)."""
        self._seeds = tuple(s for s in seeds if s != self.meta.address)
        if not self._seeds or self._leaving:
            return []
        self._joined, self._join_attempt = False, 0
        self._send_join(now)
        return self._flush()

    def leave(self, now: float) -> list[Outgoing]:
        """Announce a graceful leave. Keep calling `tick` for `leave_propagate_delay` so
        the news spreads; the node no longer probes nor refutes."""
        self._leaving = True
        for name in ("probe", "probe_timeout", "probe_end", "push_pull", "reconnect", "join"):
            self._timers.cancel(name)
        self._probe = None
        signature = self._keys.sign(leave_claim(self.name, self._incarnation))
        notice = Dead(self.name, self._incarnation, self.name, signature)
        self._on_dead(notice, now)
        # Besides gossip, tell a few members directly: a leave missed by everyone would
        # be mistaken for a crash.
        peers = [m for n, m in self._members.items() if n != self.name and m.is_up]
        for m in self._rng.sample(peers, min(len(peers), 2 * self._cfg.gossip_nodes)):
            self._send(m.meta.address, None, m.meta.name, (notice,), piggyback=False)
        return self._flush()

    def forget(self, names: Iterable[str], now: float) -> None:
        """Drop these members at once, with no news to spread: their certificates were
        revoked (`security/revocation.py`), every member that adopts the same policy
        forgets them too, and their claims no longer verify anywhere, so nobody can bring
        them back."""
        for name in names:
            member = self._members.get(name)
            if member is not None and name != self.name:
                self._remove(member, EventKind.REVOKED, now)

    def publish_status(self, report: StatusReport, now: float) -> list[Outgoing]:
        """Advertise our own load and policy; it rides on gossip like membership news."""
        self._status_seq += 1
        status = NodeStatus(self.name, self._incarnation, self._status_seq, report)
        previous = self._statuses.get(self.name)
        self._statuses[self.name] = (status, now)
        policy_changed = previous is None or _policy(previous[0]) != _policy(status)
        self._queue_status(status, now, urgent=policy_changed and report.policy_version > 0)
        return self._flush()

    def statuses(self) -> dict[str, tuple[NodeStatus, float]]:
        """The newest status known per node, with the local time it arrived."""
        return dict(self._statuses)

    def take_events(self) -> list[MemberEvent]:
        events, self._events = self._events, []
        return events

    # ------------------------------------------------------------------ views

    @property
    def incarnation(self) -> int:
        return self._incarnation

    @property
    def health_score(self) -> int:
        return self._awareness.score

    @property
    def joined(self) -> bool:
        return self._joined

    def members(self) -> list[MemberView]:
        return [m for _, m in sorted(self._members.items())]

    def member(self, name: str) -> MemberView | None:
        return self._members.get(name)

    def num_up(self) -> int:
        """Alive or suspect members, self included: the N of the formulas. Kept as a
        count (not a scan) because every send asks for it."""
        return self._up

    # ------------------------------------------------------------------ news

    def _admitted(self, node: str, incarnation: int) -> bool:
        """The incarnation rule (`incarnation.py`), for every claim from any source;
        refused claims are dropped and counted."""
        if node == self.name:
            held: int | None = self._incarnation
        else:
            member = self._members.get(node)
            held = member.incarnation if member is not None else None
        if admissible(held, incarnation):
            return True
        self.stats.refused_claims += 1
        return False

    def _apply(self, update: Update, now: float) -> None:
        node = update.meta.name if isinstance(update, Alive) else update.node
        if not self._admitted(node, update.incarnation):
            return
        if isinstance(update, Alive):
            self._on_alive(update, now)
        elif isinstance(update, NodeStatus):
            self._on_status(update, now)
        elif isinstance(update, Suspect):
            self._on_suspect(update, now)
        else:
            self._on_dead(update, now)

    def _on_alive(self, alive: Alive, now: float) -> None:
        name = alive.meta.name
        if name == self.name:
            stale_life = alive.incarnation == self._incarnation and alive.meta != self.meta
            if not self._leaving and (alive.incarnation > self._incarnation or stale_life):
                if self._authentic(alive, now):  # a forgery, everyone drops: no refutation
                    self._refute(alive.incarnation, now)
            return
        member = self._members.get(name)
        if member is not None and alive.incarnation <= member.incarnation:
            return
        if not self._authentic(alive, now):
            return
        if member is None:
            self._members[name] = MemberView(
                alive.meta, MemberState.ALIVE, alive.incarnation, now, alive.signature
            )
            self._up += 1
            self._names.append(name)
            # A random slot, so that a new member is probed soon by some and late by others.
            self._probe_order.insert(self._rng.randint(0, len(self._probe_order)), name)
            self._emit(EventKind.JOIN, name, alive.incarnation, now)
        else:
            if member.state != MemberState.ALIVE:
                if not member.is_up:
                    self._up += 1
                self._members[name] = MemberView(
                    alive.meta, MemberState.ALIVE, alive.incarnation, now, alive.signature
                )
                self._emit(EventKind.ALIVE, name, alive.incarnation, now)
            else:
                self._members[name] = replace(
                    member,
                    meta=alive.meta,
                    incarnation=alive.incarnation,
                    signature=alive.signature,
                )
                if member.meta != alive.meta:
                    self._emit(EventKind.UPDATE, name, alive.incarnation, now)
            self._cancel_suspicion(name)
        self._news(name, alive, now, joining=member is None)

    def _on_status(self, status: NodeStatus, now: float) -> None:
        if status.node == self.name:
            return  # we are the authority on ourselves
        known = self._statuses.get(status.node)
        if status.supersedes(known[0] if known else None):
            self._statuses[status.node] = (status, now)
            self.statuses_received += 1
            self._queue_status(status, now, urgent=False)

    def _queue_status(self, status: NodeStatus, now: float, *, urgent: bool) -> None:
        """Load reports go out with the next rounds at a share of the retransmits. A
        policy version above any advertised so far, or our own adoption of a new one, is
        news like membership news: full retransmits, gossiped at once."""
        newer = status.report.policy_version > self._policy_seen
        self._policy_seen = max(self._policy_seen, status.report.policy_version)
        if urgent or newer:
            self._news(f"status:{status.node}", status, now)
        else:
            share = self._cfg.status_retransmit_share
            self._broadcasts.queue(f"status:{status.node}", status, share=share)

    def _accused(self, incarnation: int, now: float) -> None:
        """News says we are suspect or dead. At our incarnation or above: refute. Below
        it, the accuser missed our last refutation (its resends ran out): answer the
        packet's sender with our current alive, or its stale view would outlive us."""
        if self._leaving:
            return
        if incarnation >= self._incarnation:
            self._refute(incarnation, now)
        elif self._reply_to is not None and self._reply_to[0] not in self._answered:
            self._answered.add(self._reply_to[0])
            news = (self._own_alive(),)
            self._send(self._reply_to[1], None, self._reply_to[0], news, piggyback=False)

    def _on_suspect(self, suspect: Suspect, now: float) -> None:
        if suspect.node == self.name:
            self._accused(suspect.incarnation, now)
            return
        member = self._members.get(suspect.node)
        if member is None or suspect.incarnation < member.incarnation:
            return
        if member.state == MemberState.LEFT:
            # Someone missed the leave and now suspects a node that will never answer:
            # repeat the leave notice, so it ends LEFT rather than FAILED.
            notice = Dead(suspect.node, member.incarnation, suspect.node, member.signature)
            self._news(suspect.node, notice, now)
            return
        if member.state == MemberState.SUSPECT:
            entry = self._suspicions.get(suspect.node)
            if entry is not None and entry[0].confirm(suspect.source):
                self._timers.set(("suspicion", suspect.node), entry[0].deadline())
                self._news(suspect.node, suspect, now)
            return
        if member.state != MemberState.ALIVE:
            return
        self._members[suspect.node] = replace(
            member, state=MemberState.SUSPECT, incarnation=suspect.incarnation, state_since=now
        )
        self.stats.suspicions += 1
        self._emit(EventKind.SUSPECT, suspect.node, suspect.incarnation, now, suspect.source)
        self._news(suspect.node, suspect, now)
        cfg = self._cfg
        n = self.num_up()
        k = cfg.suspicion_mult - 2
        if n - 2 < k:
            k = 0  # too few members to ever gather k independent confirmations
        min_timeout = suspicion_timeout(cfg.suspicion_mult, n, cfg.probe_interval)
        suspicion = Suspicion(
            source=suspect.source,
            k=k,
            min_timeout=min_timeout,
            max_timeout=cfg.suspicion_max_timeout_mult * min_timeout,
            start=now,
        )
        self._suspicions[suspect.node] = (suspicion, suspect.incarnation, suspect.source)
        self._timers.set(("suspicion", suspect.node), suspicion.deadline())

    def _on_dead(self, dead: Dead, now: float) -> None:
        left = dead.source == dead.node
        if dead.node == self.name and not self._leaving:
            if not left or self._authentic(dead, now):  # a forged leave: everyone drops it
                self._accused(dead.incarnation, now)
            return
        member = self._members.get(dead.node)
        if member is None or dead.incarnation < member.incarnation:
            return
        if member.state == MemberState.LEFT or (member.state == MemberState.DEAD and not left):
            return  # a DEAD member may still turn out to have LEFT (a missed leave)
        if left and dead.node != self.name and not self._authentic(dead, now):
            return
        self._cancel_suspicion(dead.node)
        if member.is_up:
            self._up -= 1
        self._members[dead.node] = replace(
            member,
            state=MemberState.LEFT if left else MemberState.DEAD,
            incarnation=dead.incarnation,
            state_since=now,
            signature=dead.signature if left else member.signature,
        )
        kind = EventKind.LEFT if left else EventKind.FAILED
        self._emit(kind, dead.node, dead.incarnation, now, dead.source)
        self._news(dead.node, dead, now)

    def _refute(self, accused_incarnation: int, now: float) -> None:
        """Someone believes an older life of ours is suspect or dead: outbid it."""
        self._incarnation = max(self._incarnation, accused_incarnation) + 1
        signature = self._keys.sign(alive_claim(self.meta, self._incarnation))
        self._members[self.name] = replace(
            self._members[self.name], incarnation=self._incarnation, signature=signature
        )
        self.stats.refutations += 1
        # Being accused is evidence our own responses are late (Lifeguard).
        self._awareness.apply_delta(1)
        self._emit(EventKind.REFUTED, self.name, self._incarnation, now)
        self._news(self.name, self._own_alive(), now)

    def _own_alive(self) -> Alive:
        return Alive(self.meta, self._incarnation, self._members[self.name].signature)

    # ------------------------------------------------------------------ self-claims

    def _authentic(self, claim: Alive | Dead, now: float) -> bool:
        """Whether a self-claim that would change our table carries its node's signature
        (`claims.py`). Called only where the claim would take effect, so the resends of
        old news cost no signature check. A claim signed by a key we do not hold, or a
        table row without signature, is set aside and asked of the packet's sender, who
        checked it before relaying it and so holds the signed claim and its certificate."""
        if isinstance(claim, Alive):
            node, signed = claim.meta.name, alive_claim(claim.meta, claim.incarnation)
        else:
            node, signed = claim.node, leave_claim(claim.node, claim.incarnation)
        verdict = self._keys.verify(node, signed, claim.signature)
        if verdict is Verdict.AUTHENTIC:
            return True
        if (verdict is Verdict.UNKNOWN_KEY or self._rows_unsigned and not claim.signature) and (
            self._reply_to is not None
        ):
            # Its sender checked it, so holds what proves it: ask for both.
            self._want.add(node)
            return False
        self.stats.forged_claims += 1
        source = self._reply_to[0] if self._reply_to is not None else ""
        self._emit(EventKind.FORGED, node, claim.incarnation, now, source)
        return False

    def _learn(self, certificates: tuple[bytes, ...]) -> None:
        for der in certificates[:MAX_CERTIFICATES]:
            if self._keys.learn(der) is None:
                self.stats.refused_certificates += 1

    def _send_claims(self, packet: Packet, names: Iterable[str]) -> None:
        """Answer a peer that asked for what proves our view of `names`: the signed
        self-claim we hold of each (alive, or its leave) and its signer's certificate."""
        claims: list[Update] = []
        certs: list[bytes] = []
        for name in dict.fromkeys(names):
            member = self._members.get(name)
            if member is None or not member.signature:
                continue
            if member.state == MemberState.ALIVE:
                claims.append(Alive(member.meta, member.incarnation, member.signature))
            elif member.state == MemberState.LEFT:
                claims.append(Dead(name, member.incarnation, name, member.signature))
            else:
                continue  # suspected or dead since: our row no longer says alive
            certs += self._keys.certificates(name)
        if claims:
            self._send(
                packet.sender_address,
                None,
                packet.sender,
                tuple(claims),
                piggyback=False,
                certificates=tuple(certs),
            )

    def _news(self, key: str, update: Update, now: float, *, joining: bool = False) -> None:
        """Queue fresh news and pull a gossip round forward to now (at most one early
        round per `gossip_eager_gap`; whom it goes to: `_timer_gossip`): each hop then
        costs a round trip rather than half a gossip interval, while a quiet fleet still
        gossips nothing. The early round is a head start on top of the usual retransmits
        (`extra`), not taken from them: spent all at once during a join burst, those
        would reach only the members known in its first milliseconds. `joining`: the
        news is of a member joining (ourselves included)."""
        self._broadcasts.queue(key, update, extra=self._cfg.gossip_nodes)
        self._urgent = self._urgent or not joining
        if joining:
            self._joining.add(key)
        else:
            self._joining.discard(key)
        due = self._timers.deadline("gossip")
        at = max(now, self._last_gossip + self._cfg.gossip_eager_gap)
        if due is not None and at < due:
            self._timers.set("gossip", at)

    def _remove(self, member: MemberView, kind: EventKind, now: float) -> None:
        name = member.name
        del self._members[name]
        self._names.remove(name)
        if member.is_up:
            self._up -= 1  # the probe order skips names no longer in the table
        if self._probe is not None and self._probe.target == name:
            self._probe = None
            self._timers.cancel("probe_timeout")
            self._timers.cancel("probe_end")
        self._cancel_suspicion(name)
        self._statuses.pop(name, None)
        self._joining.discard(name)
        self._emit(kind, name, member.incarnation, now)

    def _cancel_suspicion(self, name: str) -> None:
        if self._suspicions.pop(name, None) is not None:
            self._timers.cancel(("suspicion", name))

    def _on_suspicion_timeout(self, name: str, now: float) -> None:
        entry = self._suspicions.pop(name, None)
        member = self._members.get(name)
        if entry is None or member is None:
            return
        if member.state == MemberState.SUSPECT and member.incarnation == entry[1]:
            self._on_dead(Dead(name, member.incarnation, self.name), now)

    # ------------------------------------------------------------------ probing

    def _timer_probe(self, now: float) -> None:
        cfg, score = self._cfg, self._awareness.score
        self._timers.set("probe", now + scale_by_health(cfg.probe_interval, score))
        if self._probe is not None:  # the previous probe's end is due at the same instant
            self._timer_probe_end(now)
        target = self._next_probe_target()
        if target is None:
            return
        self._seq += 1
        self.stats.probes += 1
        self._probe = _Probe(
            self._seq, target.meta.name, now + scale_by_health(cfg.probe_interval, score)
        )
        self._timers.set("probe_timeout", now + scale_by_health(cfg.probe_timeout, score))
        # A suspect hears of its suspicion with the ping itself (memberlist does the
        # same), so it refutes even if the gossip about it never reached it.
        hint: tuple[Update, ...] = ()
        if target.state == MemberState.SUSPECT:
            hint = (Suspect(target.meta.name, target.incarnation, self.name),)
        ping = Ping(self._seq, target.meta.name)
        self._send(target.meta.address, ping, target.meta.name, hint)

    def _next_probe_target(self) -> MemberView | None:
        for _ in range(2):
            while self._probe_index < len(self._probe_order):
                member = self._members.get(self._probe_order[self._probe_index])
                self._probe_index += 1
                if member is not None and member.is_up:
                    return member
            # End of the round: reshuffle the members still worth probing.
            self._probe_order = [n for n, m in self._members.items() if n != self.name and m.is_up]
            self._rng.shuffle(self._probe_order)
            self._probe_index = 0
        return None

    def _timer_probe_timeout(self, now: float) -> None:
        probe = self._probe
        if probe is None:
            return
        target = self._members[probe.target]
        candidates = [
            n for n, m in self._members.items() if m.is_up and n not in (self.name, probe.target)
        ]
        helpers = self._rng.sample(candidates, min(self._cfg.indirect_checks, len(candidates)))
        probe.indirect, probe.expected_nacks = True, len(helpers)
        self.stats.indirect_probes += len(helpers)
        for name in helpers:
            helper = self._members[name].meta
            request = IndirectPing(probe.seq, probe.target, target.meta.address, want_nack=True)
            self._send(helper.address, request, name)
        self._timers.set("probe_end", probe.end_at)

    def _timer_probe_end(self, now: float) -> None:
        probe, self._probe = self._probe, None
        self._timers.cancel("probe_end")
        self._timers.cancel("probe_timeout")
        if probe is None:
            return
        # Missed nacks mean our own path to healthy helpers failed: we are the slow one.
        missed = probe.expected_nacks - probe.nacks if probe.expected_nacks else 1
        self._awareness.apply_delta(missed)
        self.stats.probe_failures += 1
        member = self._members.get(probe.target)
        if member is not None and member.is_up:
            self._on_suspect(Suspect(probe.target, member.incarnation, self.name), now)

    def _on_ack(self, ack: Ack) -> None:
        probe = self._probe
        if probe is not None and ack.seq == probe.seq:
            if not probe.indirect:
                self._awareness.apply_delta(-1)
            self._probe = None
            self._timers.cancel("probe_timeout")
            self._timers.cancel("probe_end")
            return
        relay = self._relays.pop(ack.seq, None)
        if relay is not None:
            self._timers.cancel(("relay", ack.seq))
            self._send(relay.requester_address, Ack(relay.seq), relay.requester)

    def _on_ping(self, packet: Packet, ping: Ping) -> None:
        if ping.target and ping.target != self.name:
            return  # meant for whoever had this address before us
        hint: tuple[Update, ...] = ()
        sender = self._members.get(packet.sender)
        if sender is not None and not sender.is_up and sender.state == MemberState.DEAD:
            # It is alive enough to ping us while we hold it dead: tell it directly so it
            # refutes now rather than after the next push-pull.
            hint = (Dead(packet.sender, sender.incarnation, self.name),)
        self._send(packet.sender_address, Ack(ping.seq), packet.sender, hint)

    def _on_indirect_ping(self, packet: Packet, req: IndirectPing, now: float) -> None:
        self._seq += 1
        self._relays[self._seq] = _Relay(
            packet.sender, packet.sender_address, req.seq, req.want_nack
        )
        self._timers.set(("relay", self._seq), now + self._cfg.probe_timeout)
        self._send(req.target_address, Ping(self._seq, req.target), req.target)

    def _on_relay_timeout(self, seq: int) -> None:
        relay = self._relays.pop(seq, None)
        if relay is not None and relay.want_nack:
            self._send(relay.requester_address, Nack(relay.seq), relay.requester)

    # ------------------------------------------------------------------ gossip, anti-entropy

    def _timer_gossip(self, now: float) -> None:
        """A periodic round draws its targets from all members, as memberlist does: that
        uniform draw is what the epidemic's guarantees rest on. An early round (pulled
        forward by `_news`) is there to make a hop cost one round trip. For news of joins
        it goes only to members on an open connection: to any other, the hop would first
        cost a TCP and TLS handshake (two or three round trips, and a millisecond or more
        of CPU at each end), and join news comes in bursts (each of N joiners is news to
        N - 1 others): early rounds to random members made a joining fleet of 20 agents
        open ~150 connections in half a second and left their host CPU-bound. Other news
        (a suspicion, a death, a refutation, a new policy) is rare and urgent: its early
        round draws from every member, handshakes paid, so a young fleet, whose pairs
        have not all talked yet, hears it as fast as an old one (drawing from open
        connections first would favour the seeds, which every node is connected to and
        which already know). Early rounds leave the periodic schedule alone, so a stream
        of fresh news never postpones the uniform rounds that reach everyone else."""
        cfg = self._cfg
        periodic = now >= self._next_round
        if periodic:
            self._next_round = now + cfg.gossip_interval
        self._timers.set("gossip", self._next_round)
        self._last_gossip = now
        urgent, self._urgent = self._urgent, False
        for name, address, news in self._catch_up.due(self._members.values(), now):
            # The joiner holds the certificates of our join answer only: these are new.
            certs = self._join_certificates(news, name)
            self._send(
                address, PushPull(news, is_reply=True), name, piggyback=False, certificates=certs
            )
        for name, (suspicion, incarnation, accuser) in self._suspicions.items():
            # Our own accusation that nobody has confirmed may simply not have been heard
            # (our outbound path is what failed): keep telling it until it resolves, so
            # the suspect gets its chance to refute before the timer fires.
            if (
                accuser == self.name
                and not suspicion.confirmations
                and name not in self._broadcasts
            ):
                self._broadcasts.queue(name, Suspect(name, incarnation, self.name))
        if not self._broadcasts:
            self._joining.clear()  # no news left, so none of joins
            return
        limit = retransmit_limit(cfg.retransmit_mult, self.num_up())
        for member in self._gossip_targets(now, warm_only=not (periodic or urgent)):
            news = self._broadcasts.take(cfg.packet_budget, limit)
            if not news:
                break
            certs = self._joiner_certificates(news)
            packet = Packet(self.name, self.meta.address, None, tuple(news), certs)
            self._out.append(Outgoing(member.meta.address, packet, member.meta.name))

    def _gossip_targets(self, now: float, *, warm_only: bool) -> list[MemberView]:
        """Up to `gossip_nodes` random members that are up or recently dead (and, for
        `warm_only`, on an open connection). Sampled by rejection from the name list, so
        a round costs O(fan-out), not O(N); falls back to a scan when few qualify."""
        cfg = self._cfg
        warm = self._warm if warm_only else None

        def wanted(m: MemberView) -> bool:
            live = m.is_up or (
                m.state == MemberState.DEAD and now - m.state_since < cfg.gossip_to_dead
            )
            return live and (warm is None or warm(m.meta))

        chosen: dict[str, MemberView] = {}
        names = self._names
        for _ in range(4 * cfg.gossip_nodes):
            if len(chosen) == cfg.gossip_nodes or not names:
                break
            name = names[self._rng.randrange(len(names))]
            member = self._members[name]
            if name not in chosen and wanted(member):
                chosen[name] = member
        if len(chosen) < cfg.gossip_nodes:
            pool = [m for n, m in self._members.items() if n != self.name and wanted(m)]
            return self._rng.sample(pool, min(cfg.gossip_nodes, len(pool)))
        return list(chosen.values())

    def _push_pull_interval(self) -> float:
        return push_pull_scale(self._cfg.push_pull_interval, self.num_up())

    def _state(
        self, *, join: bool = False, is_reply: bool = False, signed: bool = False
    ) -> PushPull:
        """Our table. Rows carry their signatures only in a join and its answer (`signed`):
        a periodic exchange between converged members changes nothing, and a row that
        would change the receiver's table makes it ask for the signed claim
        (`_send_claims`), which keeps anti-entropy's bytes where they were before
        signatures."""
        records = tuple(m.record(signed=signed) for m in self._members.values())
        statuses = tuple(status for status, _ in self._statuses.values())
        return PushPull(records, join=join, is_reply=is_reply, statuses=statuses)

    def _timer_push_pull(self, now: float) -> None:
        self._timers.set("push_pull", now + self._push_pull_interval())
        peers = [m for n, m in self._members.items() if n != self.name and m.is_up]
        if peers:
            peer = self._rng.choice(peers)
            self.stats.push_pulls += 1
            self._send(peer.meta.address, self._state(), peer.meta.name, piggyback=False)

    def _timer_reconnect(self, now: float) -> None:
        """Reap long-dead members, then try one dead member (or the seeds when alone), so
        a partition longer than any suspicion timeout still heals."""
        cfg = self._cfg
        self._timers.set("reconnect", now + cfg.reconnect_interval)
        if len(self._members) == self._up:
            # Nobody dead or left (the usual case): nothing to reap or retry, and no scan
            # of the table (10,000 entries per node in the large simulations).
            if self._up == 1:
                self._send_join(now, arm_retry=False)
            return
        for m in list(self._members.values()):
            age = now - m.state_since
            if (m.state == MemberState.DEAD and age > cfg.reconnect_timeout) or (
                m.state == MemberState.LEFT and age > cfg.tombstone_timeout
            ):
                self._remove(m, EventKind.REAPED, now)
        dead = [m for m in self._members.values() if m.state == MemberState.DEAD]
        if dead:
            target = self._rng.choice(dead)
            self._send(target.meta.address, self._state(), target.meta.name, piggyback=False)
        if self.num_up() == 1:
            self._send_join(now, arm_retry=False)

    def _on_push_pull(self, packet: Packet, pp: PushPull, now: float) -> None:
        self._merge(pp.members, now)
        for status in pp.statuses:
            self._on_status(status, now)
        if pp.is_reply:
            if not self._joined:
                self._joined = True
                self._timers.cancel("join")
                # Announce ourselves too, to the table we just received: the seed's news
                # of us may have been spent before it knew of nodes that joined alongside.
                self._news(self.name, self._own_alive(), now, joining=True)
        else:
            reply = self._state(is_reply=True, signed=pp.join)
            certs: tuple[bytes, ...] = ()
            if pp.join:  # a joiner holds no certificate yet: send them with the table
                certs = self._join_certificates(reply.members, packet.sender)
            self._send(
                packet.sender_address, reply, packet.sender, piggyback=False, certificates=certs
            )
            if pp.join:
                self._catch_up.answered(packet.sender, packet.sender_address, now)

    def _merge(self, records: tuple[MemberRecord, ...], now: float) -> None:
        """Apply a peer's table. Its `dead` only makes us *suspect*: we give the member a
        chance to refute rather than trusting a view that may be a partition old. A row
        without a signature that would change our view is asked about (`_state`)."""
        self._rows_unsigned = True
        try:
            self._merge_rows(records, now)
        finally:
            self._rows_unsigned = False

    def _merge_rows(self, records: tuple[MemberRecord, ...], now: float) -> None:
        for r in records:
            if not self._admitted(r.meta.name, r.incarnation):
                continue
            if r.state == MemberState.ALIVE:
                self._on_alive(Alive(r.meta, r.incarnation, r.signature), now)
            elif r.state == MemberState.LEFT:
                self._on_dead(Dead(r.meta.name, r.incarnation, r.meta.name, r.signature), now)
            else:
                self._on_suspect(Suspect(r.meta.name, r.incarnation, self.name), now)

    # ------------------------------------------------------------------ join

    def _timer_join(self, now: float) -> None:
        """Retry until a seed itself answers, as Serf's retry-join does: members heard of
        through others do not prove that the seeds' fleet was reached."""
        if self._joined:
            return
        self._join_attempt += 1
        self._send_join(now)

    def _joiner_certificates(self, news: Iterable[Update]) -> tuple[bytes, ...]:
        """Certificates of the members whose join `news` announces, while that news is
        fresh: nearly every receiver lacks them, and asking for each (`want_claims`) would
        add a round trip to every hop of a join burst. Later news of a member (a
        refutation) goes without: by then its certificate has spread."""
        certs: list[bytes] = []
        for update in news:
            if isinstance(update, Alive) and update.meta.name in self._joining:
                certs += self._keys.certificates(update.meta.name)
        return tuple(certs)

    def _join_certificates(
        self, records: Iterable[MemberRecord], joiner: str
    ) -> tuple[bytes, ...]:
        """Certificates of the signed `records` a joiner is sent, but its own."""
        certs: list[bytes] = []
        budget = JOIN_CERTIFICATE_BUDGET
        for record in records:
            if record.signature and record.meta.name != joiner:
                for cert in self._keys.certificates(record.meta.name):
                    budget -= len(cert)
                    if budget < 0:
                        return tuple(certs)
                    certs.append(cert)
        return tuple(certs)

    def _send_join(self, now: float, *, arm_retry: bool = True) -> None:
        mine = self._keys.certificates(self.name)
        table = self._state(join=True, signed=True)
        for seed in self._seeds:
            self._send(seed, table, None, piggyback=False, certificates=mine)
        if arm_retry:
            cfg = self._cfg
            delay = min(cfg.join_retry_max, cfg.join_retry_min * 2**self._join_attempt)
            self._timers.set("join", now + delay * self._rng.uniform(0.8, 1.2))

    # ------------------------------------------------------------------ output

    def _send(
        self,
        address: str,
        body: Body,
        to_name: str | None,
        extra: tuple[Update, ...] = (),
        *,
        piggyback: bool = True,
        certificates: tuple[bytes, ...] = (),
        want: tuple[str, ...] = (),
    ) -> None:
        news = extra
        if piggyback:
            limit = retransmit_limit(self._cfg.retransmit_mult, self.num_up())
            taken = tuple(self._broadcasts.take(self._cfg.packet_budget, limit))
            news = extra + taken
            certificates = tuple(dict.fromkeys(certificates + self._joiner_certificates(taken)))
        packet = Packet(self.name, self.meta.address, body, news, certificates, want)
        self._out.append(Outgoing(address, packet, to_name))

    def _emit(
        self, kind: EventKind, node: str, incarnation: int, now: float, source: str = ""
    ) -> None:
        self._events.append(MemberEvent(kind, node, incarnation, now, source))

    def _flush(self) -> list[Outgoing]:
        out, self._out = self._out, []
        return out


def _policy(status: NodeStatus) -> tuple[int, str]:
    return status.report.policy_version, status.report.policy_hash
