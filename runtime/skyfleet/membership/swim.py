"""SWIM with the Lifeguard refinements, as a sans-I/O state machine.

Theory of operation
-------------------
Every `probe_interval` (stretched by the local health score) a node pings the next member
of a shuffled round-robin list; without an ack it asks others to try, and with no ack by
the end of the interval the target becomes *suspect* (`probing.py`). A suspicion timer
starts at its maximum and shrinks as other members independently confirm (Lifeguard,
`suspicion.py`); when it fires the member is *dead*. A member whose port refuses a
connection is suspected at once and dead shortly after (`refused`): its host answered.
A member that hears itself suspected or declared dead refutes by raising its incarnation.

News (alive / suspect / dead) rides on every packet and on periodic gossip to a few
random members, a bounded number of times each; fresh news pulls an early round forward
(`gossip.py`). Nodes' status adverts ride along (`statuses.py`). A periodic push-pull of
the whole table heals what gossip missed, one with a dead member heals long partitions,
and a join is a push-pull with a seed (`anti_entropy.py`, `catch_up.py`).

Which news wins is one table (`precedence.py`): higher incarnation wins; at equal
incarnation dead/left beats suspect beats alive; a leave beats a death; a restarted node
starts with a fresh, larger incarnation (the driver seeds it from the wall clock) and
refutes any news about its previous life, so stale `dead` never beats a fresh `alive`
(memberlist#311). No claim may raise an incarnation by more than a fixed step or reach
the ceiling below the wire's maximum (`incarnation.py`), so a victim always has room to
refute. What only a node may say of itself (alive at an incarnation with its address and
metadata, leaving) counts only with its signature (`claims.py`, `proofs.py`), checked
where the claim would take effect; accusations need none.

This module is the facade: it owns the parts above, routes packets and timers to them,
and applies the news the precedence table lets through to the member table (`members.py`).

Usage: the driver calls `start`, then `handle(packet, now)` for each packet received and
`tick(now)` whenever `now >= next_deadline()`; each returns the packets to send.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Iterable
from dataclasses import replace

from skyfleet.config.membership import MembershipConfig
from skyfleet.membership.anti_entropy import AntiEntropy, row_news
from skyfleet.membership.awareness import Awareness
from skyfleet.membership.claims import ClaimKeys, alive_claim, leave_claim
from skyfleet.membership.gossip import Gossip
from skyfleet.membership.incarnation import admissible
from skyfleet.membership.members import EventKind, MemberEvent, MemberTable, MemberView
from skyfleet.membership.messages import (
    Ack,
    Alive,
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
)
from skyfleet.membership.precedence import HELD, Action, Held, decide
from skyfleet.membership.probing import Prober
from skyfleet.membership.proofs import Proofs
from skyfleet.membership.stats import SwimStats
from skyfleet.membership.statuses import Statuses
from skyfleet.membership.suspicion import Suspicions
from skyfleet.membership.timers import SuspicionTimer, Timer, TimerKey, Timers


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
        table = MemberTable(MemberView(meta, MemberState.ALIVE, incarnation, 0.0, signature))
        self._table = table
        self._members = table.members
        """Read on every piece of news: one attribute away rather than two."""
        self._awareness = Awareness(config.awareness_max_multiplier)
        self._timers: Timers[TimerKey] = Timers()
        self._reply_to: tuple[str, str] | None = None
        """(name, address) of the sender of the packet being handled."""
        self._answered: set[str] = set()
        self._leaving = False
        self._events: list[MemberEvent] = []
        self._gossip = Gossip(meta, config, rng, self._timers, table, keys, warm)
        send = self._gossip.send
        self._statuses = Statuses(self.name, config, self._gossip)
        self._suspicions = Suspicions(self.name, config, self._timers)
        self._prober = Prober(
            self.name,
            config,
            rng,
            self._timers,
            table,
            self._awareness,
            self.stats,
            send,
            suspect=self._on_suspect,
        )
        self._anti_entropy = AntiEntropy(
            meta,
            config,
            rng,
            self._timers,
            table,
            self._statuses.by_node,
            keys,
            self.stats,
            send,
            reap=self._reap,
        )
        self._proofs = Proofs(keys, table.members, self.stats, send, self._emit)
        self._on_timer: dict[Timer, Callable[[float], None]] = {
            Timer.PROBE: self._prober.on_probe_timer,
            Timer.PROBE_TIMEOUT: self._prober.on_probe_timeout,
            Timer.PROBE_END: self._prober.on_probe_end,
            Timer.GOSSIP: self._on_gossip_timer,
            Timer.PUSH_PULL: self._anti_entropy.on_push_pull_timer,
            Timer.RECONNECT: self._anti_entropy.on_reconnect_timer,
            Timer.JOIN: self._anti_entropy.on_join_timer,
        }

    # ------------------------------------------------------------------ driver API

    def start(self, now: float, seeds: tuple[str, ...] = ()) -> list[Outgoing]:
        """Arm the periodic timers (staggered, so a fleet started together does not
        probe in lockstep) and join through `seeds`."""
        self._table.put(replace(self._members[self.name], state_since=now))
        self._prober.start(now)
        self._gossip.start(now)
        self._anti_entropy.start(now, seeds)
        return self._gossip.flush()

    def adopt_members(self, members: Iterable[MemberView], now: float) -> None:
        """Know `members` at once, with no news about them to spread, as if the join had
        long converged. The simulator starts large fleets this way: a real 10,000-node
        join floods N alive messages into N tables (N^2 queued items), while adopted
        entries are shared between tables because they are immutable."""
        self._table.adopt(members)
        self._prober.adopt()
        self._anti_entropy.adopted(now)

    def handle(self, packet: Packet, now: float) -> list[Outgoing]:
        """Process one received packet."""
        self._reply_to, self._answered = (packet.sender, packet.sender_address), set()
        self._proofs.learn(packet.certificates)
        for update in packet.piggyback:
            self._apply(update, now)
        body = packet.body
        if isinstance(body, Ping):
            self._prober.on_ping(packet, body)
        elif isinstance(body, Ack):
            self._prober.on_ack(body)
        elif isinstance(body, Nack):
            self._prober.on_nack(body)
        elif isinstance(body, IndirectPing):
            self._prober.on_indirect_ping(packet, body, now)
        elif isinstance(body, PushPull):
            self._on_push_pull(packet, body, now)
        if packet.want_claims:
            self._proofs.answer(packet)
        self._proofs.ask(packet)
        self._reply_to = None
        return self._gossip.flush()

    def tick(self, now: float) -> list[Outgoing]:
        """Fire every timer due at `now`."""
        while (key := self._timers.pop_due(now)) is not None:
            if isinstance(key, Timer):
                self._on_timer[key](now)
            elif isinstance(key, SuspicionTimer):
                self._on_suspicion_timeout(key.node, now)
            else:
                self._prober.on_relay_timeout(key.seq)
        return self._gossip.flush()

    def next_deadline(self) -> float | None:
        return self._timers.next_deadline()

    @property
    def seeds(self) -> tuple[str, ...]:
        return self._anti_entropy.seeds

    def set_seeds(self, seeds: tuple[str, ...]) -> None:
        """The seeds to rejoin through when alone (a config reload): no join now, the
        fleet we are in stays; the next time we have no one else, these are tried."""
        self._anti_entropy.seeds = seeds

    def join(self, seeds: tuple[str, ...], now: float) -> list[Outgoing]:
        """Join (more of) a fleet through `seeds` at run time, as `serf join` does: a
        push-pull with each, retried with backoff until one answers (`joined`)."""
        self._anti_entropy.seeds = seeds
        if not self._anti_entropy.seeds or self._leaving:
            return []
        self._anti_entropy.join(now)
        return self._gossip.flush()

    def leave(self, now: float) -> list[Outgoing]:
        """Announce a graceful leave. Keep calling `tick` for `leave_propagate_delay` so
        the news spreads; the node no longer probes nor refutes."""
        self._leaving = True
        self._prober.stop()
        self._anti_entropy.stop()
        signature = self._keys.sign(leave_claim(self.name, self._incarnation))
        notice = Dead(self.name, self._incarnation, self.name, signature)
        me = self._members[self.name]
        if me.state != MemberState.LEFT:  # else this is a repeated call: already recorded
            self._retire(notice, me, now)
        # Besides gossip, tell a few members directly: a leave missed by everyone would
        # be mistaken for a crash.
        peers = [m for n, m in self._members.items() if n != self.name and m.is_up]
        for m in self._rng.sample(peers, min(len(peers), 2 * self._cfg.gossip_nodes)):
            self._gossip.send(m.meta.address, None, m.meta.name, (notice,), piggyback=False)
        return self._gossip.flush()

    def forget(self, names: Iterable[str], now: float) -> None:
        """Drop these members at once, with no news to spread: their certificates were
        revoked (`security/revocation.py`), every member that adopts the same policy
        forgets them too, and their claims no longer verify anywhere, so nobody can bring
        them back."""
        for name in names:
            member = self._members.get(name)
            if member is not None and name != self.name:
                self._remove(member, EventKind.REVOKED, now)

    def refused(self, node: str, address: str, now: float) -> list[Outgoing]:
        """The transport found nothing listening on `node`'s port at `address` (a fresh
        connect refused by its host, `transport/port_check.py`). A member held up at that
        address becomes suspect by our accusation, if it was not already, and is dead
        `refused_timeout` later unless it refutes: Lifeguard's full timer is for silence,
        which this is not (`MembershipConfig.refused_timeout`). News of another life (a
        different address) and members already down are left alone."""
        member = self._members.get(node)
        if (
            not self._cfg.refused_timeout
            or self._leaving
            or node == self.name
            or member is None
            or not member.is_up
            or member.meta.address != address
        ):
            return []
        self.stats.refused_connections += 1
        if member.state == MemberState.ALIVE:
            self._on_suspect(Suspect(node, member.incarnation, self.name), now)
        self._suspicions.refused(node, now)
        return self._gossip.flush()

    def publish_status(self, report: StatusReport, now: float) -> list[Outgoing]:
        """Advertise our own load and policy; it rides on gossip like membership news."""
        self._statuses.publish(report, self._incarnation, now)
        return self._gossip.flush()

    def statuses(self) -> dict[str, tuple[NodeStatus, float]]:
        """The newest status known per node, with the local time it arrived."""
        return dict(self._statuses.by_node)

    @property
    def statuses_received(self) -> int:
        """Newer statuses of other nodes accepted so far: drivers watch it to react to
        adverts (a newer policy) at once instead of polling."""
        return self._statuses.received

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
        return self._anti_entropy.joined

    def members(self) -> list[MemberView]:
        return [m for _, m in sorted(self._members.items())]

    def member(self, name: str) -> MemberView | None:
        return self._members.get(name)

    def num_up(self) -> int:
        """Alive or suspect members, self included: the N of the formulas."""
        return self._table.up

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
            self._statuses.heard(update, now)
        elif isinstance(update, Suspect):
            self._on_suspect(update, now)
        else:
            self._on_dead(update, now)

    def _decide(self, news: Alive | Suspect | Dead, node: str, now: float) -> Action | None:
        """What the precedence table makes of `news` about `node`: None if nothing, as for
        a self-claim whose signature does not check out."""
        if node == self.name:
            held = Held.SELF_LEAVING if self._leaving else Held.SELF
            rule = decide(news, held, self._incarnation, self.meta)
        elif (member := self._members.get(node)) is None:
            rule = decide(news, Held.UNKNOWN, None, None)
        else:
            rule = decide(news, HELD[member.state], member.incarnation, member.meta)
        if rule.action is Action.IGNORE:
            return None
        # Only self-claims (alive, leave) have signed rules.
        if rule.signed and not isinstance(news, Suspect):
            sender = self._reply_to[0] if self._reply_to is not None else None
            if not self._proofs.authentic(news, sender, now):
                return None
        return rule.action

    def _on_alive(self, alive: Alive, now: float) -> None:
        name = alive.meta.name
        action = self._decide(alive, name, now)
        if action is None:
            return
        match action:
            case Action.REFUTE:
                self._refute(alive.incarnation, now)
            case Action.ADD:
                self._table.add(_alive_view(alive, now))
                self._prober.add(name)
                self._emit(EventKind.JOIN, name, alive.incarnation, now)
                self._gossip.news(name, alive, now, joining=True)
            case Action.REVIVE:
                self._table.put(_alive_view(alive, now))
                self._emit(EventKind.ALIVE, name, alive.incarnation, now)
                self._suspicions.cancel(name)
                self._gossip.news(name, alive, now)
            case Action.RENEW | Action.MOVE:
                member = self._members[name]
                incarnation, signature = alive.incarnation, alive.signature
                self._table.put(
                    replace(member, meta=alive.meta, incarnation=incarnation, signature=signature)
                )
                if action is Action.MOVE:
                    self._emit(EventKind.UPDATE, name, alive.incarnation, now)
                self._suspicions.cancel(name)
                self._gossip.news(name, alive, now)

    def _on_suspect(self, suspect: Suspect, now: float) -> None:
        node = suspect.node
        action = self._decide(suspect, node, now)
        if action is None:
            return
        match action:
            case Action.REFUTE:
                self._refute(suspect.incarnation, now)
            case Action.ANSWER:
                self._answer_accuser()
            case Action.REPEAT_LEAVE:
                member = self._members[node]
                notice = Dead(node, member.incarnation, node, member.signature)
                self._gossip.news(node, notice, now)
            case Action.CONFIRM:
                if self._suspicions.confirm(suspect):
                    self._gossip.news(node, suspect, now)
            case Action.SUSPECT:
                member = self._members[node]
                self._table.put(
                    replace(
                        member,
                        state=MemberState.SUSPECT,
                        incarnation=suspect.incarnation,
                        state_since=now,
                    )
                )
                self.stats.suspicions += 1
                self._emit(EventKind.SUSPECT, node, suspect.incarnation, now, suspect.source)
                self._gossip.news(node, suspect, now)
                self._suspicions.start(suspect, self._table.up, now)

    def _on_dead(self, dead: Dead, now: float) -> None:
        action = self._decide(dead, dead.node, now)
        if action is None:
            return
        match action:
            case Action.REFUTE:
                self._refute(dead.incarnation, now)
            case Action.ANSWER:
                self._answer_accuser()
            case Action.FAIL | Action.DEPART:
                self._retire(dead, self._members[dead.node], now)

    def _retire(self, dead: Dead, member: MemberView, now: float) -> None:
        """`member` is dead, or left if the news is its own (`dead.source`)."""
        left = dead.source == dead.node
        self._suspicions.cancel(dead.node)
        self._table.put(
            replace(
                member,
                state=MemberState.LEFT if left else MemberState.DEAD,
                incarnation=dead.incarnation,
                state_since=now,
                signature=dead.signature if left else member.signature,
            )
        )
        kind = EventKind.LEFT if left else EventKind.FAILED
        self._emit(kind, dead.node, dead.incarnation, now, dead.source)
        self._gossip.news(dead.node, dead, now)

    def _refute(self, accused_incarnation: int, now: float) -> None:
        """Someone believes an older life of ours is suspect or dead: outbid it."""
        self._incarnation = max(self._incarnation, accused_incarnation) + 1
        signature = self._keys.sign(alive_claim(self.meta, self._incarnation))
        me = self._members[self.name]
        self._table.put(replace(me, incarnation=self._incarnation, signature=signature))
        self.stats.refutations += 1
        # Being accused is evidence our own responses are late (Lifeguard).
        self._awareness.apply_delta(1)
        self._emit(EventKind.REFUTED, self.name, self._incarnation, now)
        self._gossip.news(self.name, self._own_alive(), now)

    def _answer_accuser(self) -> None:
        """An accusation below our incarnation: the accuser missed our last refutation
        (its resends ran out). Answer the packet's sender with our current alive, once
        per packet, or its stale view would outlive us."""
        if self._reply_to is not None and self._reply_to[0] not in self._answered:
            name, address = self._reply_to
            self._answered.add(name)
            self._gossip.send(address, None, name, (self._own_alive(),), piggyback=False)

    def _own_alive(self) -> Alive:
        return Alive(self.meta, self._incarnation, self._members[self.name].signature)

    def _on_push_pull(self, packet: Packet, pp: PushPull, now: float) -> None:
        self._merge(pp.members, now)
        for status in pp.statuses:
            self._statuses.heard(status, now)
        if not pp.is_reply:
            self._anti_entropy.answer(packet, pp, now)
        elif self._anti_entropy.answered():
            # Announce ourselves too, to the table we just received: the seed's news of
            # us may have been spent before it knew of nodes that joined alongside.
            self._gossip.news(self.name, self._own_alive(), now, joining=True)

    def _merge(self, records: tuple[MemberRecord, ...], now: float) -> None:
        """Apply a peer's table, row by row as news (`row_news`). A row without a
        signature that would change our view is asked about (`AntiEntropy.table`)."""
        self._proofs.rows_unsigned = True
        try:
            for record in records:
                self._apply(row_news(record, self.name), now)
        finally:
            self._proofs.rows_unsigned = False

    # ------------------------------------------------------------------ timers

    def _on_gossip_timer(self, now: float) -> None:
        self._anti_entropy.catch_up(now)
        for suspect in self._suspicions.unconfirmed():
            # Keep telling our unheard accusation until it resolves, so the suspect gets
            # its chance to refute before the timer fires.
            if not self._gossip.queued(suspect.node):
                self._gossip.queue(suspect.node, suspect)
        self._gossip.round(now)

    def _on_suspicion_timeout(self, name: str, now: float) -> None:
        incarnation = self._suspicions.expire(name)
        member = self._members.get(name)
        if incarnation is None or member is None:
            return
        if member.state == MemberState.SUSPECT and member.incarnation == incarnation:
            self._on_dead(Dead(name, member.incarnation, self.name), now)

    # ------------------------------------------------------------------ table, events

    def _reap(self, member: MemberView, now: float) -> None:
        self._remove(member, EventKind.REAPED, now)

    def _remove(self, member: MemberView, kind: EventKind, now: float) -> None:
        name = member.name
        self._table.remove(name)
        self._prober.forget(name)
        self._suspicions.cancel(name)
        self._statuses.forget(name)
        self._gossip.forget(name)
        self._emit(kind, name, member.incarnation, now)

    def _emit(
        self, kind: EventKind, node: str, incarnation: int, now: float, source: str = ""
    ) -> None:
        self._events.append(MemberEvent(kind, node, incarnation, now, source))


def _alive_view(alive: Alive, now: float) -> MemberView:
    return MemberView(alive.meta, MemberState.ALIVE, alive.incarnation, now, alive.signature)

