"""Anti-entropy: whole tables exchanged (push-pull) to heal what gossip missed, and the
join, which is one such exchange with a seed.

A periodic push-pull with one random member repairs lost news; a periodic push-pull with
one *dead* member lets both sides of a long partition find each other again (serf#605).
A join sends our table to every seed, retried with backoff until one answers. A node
that answered joins completes those joiners' tables at its next gossip rounds
(`catch_up.py`), so a burst of joins converges without waiting on gossip.

What a received table changes is the core's to decide (`Swim`, `precedence.py`): here
is only what is sent, to whom and when.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Iterable, Mapping

from skyfleet.config.membership import MembershipConfig
from skyfleet.membership.catch_up import CatchUp
from skyfleet.membership.claims import ClaimKeys
from skyfleet.membership.gossip import Send
from skyfleet.membership.members import MemberTable, MemberView
from skyfleet.membership.messages import (
    Alive,
    Dead,
    MemberRecord,
    MemberState,
    NodeMeta,
    NodeStatus,
    Packet,
    PushPull,
    Suspect,
)
from skyfleet.membership.stats import SwimStats
from skyfleet.membership.timers import Timer, TimerKey, Timers
from skyfleet.membership.timing import push_pull_scale

JOIN_CERTIFICATE_BUDGET = 1 << 20
"""Bytes of certificates a seed sends with its table to a joiner (about 2,000); the
joiner asks for any others it needs."""


def row_news(record: MemberRecord, me: str) -> Alive | Suspect | Dead:
    """What a row of a peer's table tells us. Its `dead` only makes us *suspect*: we give
    the member a chance to refute rather than trusting a view that may be a partition
    old. Its `left` is the member's leave (signed, or asked for)."""
    name = record.meta.name
    if record.state == MemberState.ALIVE:
        return Alive(record.meta, record.incarnation, record.signature)
    if record.state == MemberState.LEFT:
        return Dead(name, record.incarnation, name, record.signature)
    return Suspect(name, record.incarnation, me)


class AntiEntropy:
    def __init__(
        self,
        meta: NodeMeta,
        config: MembershipConfig,
        rng: random.Random,
        timers: Timers[TimerKey],
        table: MemberTable,
        statuses: Mapping[str, tuple[NodeStatus, float]],
        keys: ClaimKeys,
        stats: SwimStats,
        send: Send,
        reap: Callable[[MemberView, float], None],
    ) -> None:
        """`statuses` go with our table; `reap` drops a member dead or left too long."""
        self._meta = meta
        self._cfg = config
        self._rng = rng
        self._timers = timers
        self._table = table
        self._statuses = statuses
        self._keys = keys
        self._stats = stats
        self._send = send
        self._reap = reap
        self._catch_up = CatchUp(config.join_catch_up_window)
        self._seeds: tuple[str, ...] = ()
        self._join_attempt = 0
        self.joined = False
        """A seed answered our join (or there was none to ask)."""

    @property
    def seeds(self) -> tuple[str, ...]:
        return self._seeds

    @seeds.setter
    def seeds(self, seeds: tuple[str, ...]) -> None:
        self._seeds = tuple(s for s in seeds if s != self._meta.address)

    def start(self, now: float, seeds: tuple[str, ...]) -> None:
        """Staggered: a fleet started together must not exchange full tables in lockstep."""
        cfg = self._cfg
        self._timers.set(Timer.PUSH_PULL, now + self._rng.uniform(0, self._interval()))
        self._timers.set(Timer.RECONNECT, now + self._rng.uniform(0, cfg.reconnect_interval))
        self.seeds = seeds
        self.joined = not self._seeds
        if self._seeds:
            self._send_join(now)

    def adopted(self, now: float) -> None:
        """The table was filled as if long converged: so is the join, and the push-pull
        timer is re-drawn over the interval scaled for the fleet's size (the one armed at
        start assumed a fleet of one)."""
        self.joined = True
        if Timer.PUSH_PULL in self._timers:
            self._timers.set(Timer.PUSH_PULL, now + self._rng.uniform(0, self._interval()))

    def join(self, now: float) -> None:
        """Join (again) through the seeds, retried with backoff until one answers."""
        self.joined, self._join_attempt = False, 0
        self._send_join(now)

    def stop(self) -> None:
        """We are leaving: no more exchanges, no more joins."""
        for timer in (Timer.PUSH_PULL, Timer.RECONNECT, Timer.JOIN):
            self._timers.cancel(timer)

    def table(
        self, *, join: bool = False, is_reply: bool = False, signed: bool = False
    ) -> PushPull:
        """Our table. Rows carry their signatures only in a join and its answer (`signed`):
        a periodic exchange between converged members changes nothing, and a row that
        would change the receiver's table makes it ask for the signed claim
        (`Proofs.answer`), which keeps anti-entropy's bytes where they were before
        signatures."""
        records = tuple(m.record(signed=signed) for m in self._table.members.values())
        statuses = tuple(status for status, _ in self._statuses.values())
        return PushPull(records, join=join, is_reply=is_reply, statuses=statuses)

    def on_push_pull_timer(self, now: float) -> None:
        self._timers.set(Timer.PUSH_PULL, now + self._interval())
        me = self._meta.name
        peers = [m for n, m in self._table.members.items() if n != me and m.is_up]
        if peers:
            peer = self._rng.choice(peers)
            self._stats.push_pulls += 1
            self._send(peer.meta.address, self.table(), peer.meta.name, piggyback=False)

    def on_reconnect_timer(self, now: float) -> None:
        """Reap long-dead members, then try one dead member (or the seeds when alone), so
        a partition longer than any suspicion timeout still heals."""
        cfg, table = self._cfg, self._table
        self._timers.set(Timer.RECONNECT, now + cfg.reconnect_interval)
        if len(table.members) == table.up:
            # Nobody dead or left (the usual case): nothing to reap or retry, and no scan
            # of the table (10,000 entries per node in the large simulations).
            if table.up == 1:
                self._send_join(now, arm_retry=False)
            return
        for m in list(table.members.values()):
            age = now - m.state_since
            if (m.state == MemberState.DEAD and age > cfg.reconnect_timeout) or (
                m.state == MemberState.LEFT and age > cfg.tombstone_timeout
            ):
                self._reap(m, now)
        dead = [m for m in table.members.values() if m.state == MemberState.DEAD]
        if dead:
            target = self._rng.choice(dead)
            self._send(target.meta.address, self.table(), target.meta.name, piggyback=False)
        if table.up == 1:
            self._send_join(now, arm_retry=False)

    def on_join_timer(self, now: float) -> None:
        """Retry until a seed itself answers, as Serf's retry-join does: members heard of
        through others do not prove that the seeds' fleet was reached."""
        if self.joined:
            return
        self._join_attempt += 1
        self._send_join(now)

    def answered(self) -> bool:
        """A peer answered our table with its own: True if that completes our join."""
        if self.joined:
            return False
        self.joined = True
        self._timers.cancel(Timer.JOIN)
        return True

    def answer(self, packet: Packet, pp: PushPull, now: float) -> None:
        """Answer a peer's table (merged already) with ours."""
        reply = self.table(is_reply=True, signed=pp.join)
        certs: tuple[bytes, ...] = ()
        if pp.join:  # a joiner holds no certificate yet: send them with the table
            certs = self._join_certificates(reply.members, packet.sender)
        self._send(
            packet.sender_address, reply, packet.sender, piggyback=False, certificates=certs
        )
        if pp.join:
            self._catch_up.answered(packet.sender, packet.sender_address, now)

    def catch_up(self, now: float) -> None:
        """Send each recent joiner the members that changed since the table it got."""
        for name, address, records in self._catch_up.due(self._table.members.values(), now):
            # The joiner holds the certificates of our join answer only: these are new.
            certs = self._join_certificates(records, name)
            self._send(
                address, PushPull(records, is_reply=True), name, piggyback=False, certificates=certs
            )

    def _interval(self) -> float:
        return push_pull_scale(self._cfg.push_pull_interval, self._table.up)

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
        mine = self._keys.certificates(self._meta.name)
        table = self.table(join=True, signed=True)
        for seed in self._seeds:
            self._send(seed, table, None, piggyback=False, certificates=mine)
        if arm_retry:
            cfg = self._cfg
            delay = min(cfg.join_retry_max, cfg.join_retry_min * 2**self._join_attempt)
            self._timers.set(Timer.JOIN, now + delay * self._rng.uniform(0.8, 1.2))
