"""Gossip: the queue of news, the rounds that spread it, and the outbox every packet
leaves through, since every packet carries news (piggyback).

News (alive / suspect / dead / status) rides on every packet and on periodic rounds to
`gossip_nodes` random members, each item at most `retransmit_mult x ceil(log10(N+1))`
times; newer news about a node replaces older. Fresh news also pulls an early round
forward (`news`), sent only to members on an open connection when it is news of joins
(`round`).
"""

from __future__ import annotations

import random
from collections.abc import Callable, Iterable
from typing import Protocol

from skyfleet.config.membership import MembershipConfig
from skyfleet.membership.broadcast import BroadcastQueue
from skyfleet.membership.claims import ClaimKeys
from skyfleet.membership.members import MemberTable, MemberView
from skyfleet.membership.messages import (
    MIN_UPDATE_SIZE,
    Alive,
    Body,
    MemberState,
    NodeMeta,
    Outgoing,
    Packet,
    Update,
    update_size,
)
from skyfleet.membership.timers import Timer, TimerKey, Timers
from skyfleet.membership.timing import retransmit_limit


class Send(Protocol):
    """`Gossip.send`, as the other parts of the core call it."""

    def __call__(
        self,
        address: str,
        body: Body,
        to_name: str | None,
        extra: tuple[Update, ...] = (),
        *,
        piggyback: bool = True,
        certificates: tuple[bytes, ...] = (),
        want: tuple[str, ...] = (),
    ) -> None: ...


class Gossip:
    def __init__(
        self,
        meta: NodeMeta,
        config: MembershipConfig,
        rng: random.Random,
        timers: Timers[TimerKey],
        table: MemberTable,
        keys: ClaimKeys,
        warm: Callable[[NodeMeta], bool] | None,
    ) -> None:
        """`warm` tells whether a packet to a member would go out on a connection that is
        already open; None means every member is (a connectionless transport)."""
        self._meta = meta
        self._cfg = config
        self._rng = rng
        self._timers = timers
        self._table = table
        self._keys = keys
        self._warm = warm
        self._broadcasts: BroadcastQueue[Update] = BroadcastQueue(
            update_size, min_size=MIN_UPDATE_SIZE, packet_size=config.packet_budget
        )
        self._joining: set[str] = set()
        """Members whose queued news is their join: it travels with their certificate."""
        self._last_round = -float("inf")
        self._next_round = 0.0
        """When the next periodic round is due; early rounds leave it alone."""
        self._urgent = False
        """News other than joins was queued since the last round (see `round`)."""
        self._out: list[Outgoing] = []

    def start(self, now: float) -> None:
        self._next_round = now + self._rng.uniform(0, self._cfg.gossip_interval)
        self._timers.set(Timer.GOSSIP, self._next_round)

    def queued(self, key: str) -> bool:
        return key in self._broadcasts

    def queue(self, key: str, update: Update, *, share: float = 1.0, least: int = 1) -> None:
        """Queue news that is no reason for an early round (it goes with the next one) at
        `share` of the usual retransmits, and at least `least` times."""
        self._broadcasts.queue(key, update, share=share, least=least)

    def news(self, key: str, update: Update, now: float, *, joining: bool = False) -> None:
        """Queue fresh news and pull a round forward to now (at most one early round per
        `gossip_eager_gap`; whom it goes to: `round`): each hop then costs a round trip
        rather than half a gossip interval, while a quiet fleet still gossips nothing.
        The early round is a head start on top of the usual retransmits (`extra`), not
        taken from them: spent all at once during a join burst, those would reach only
        the members known in its first milliseconds. `joining`: the news is of a member
        joining (ourselves included)."""
        self._broadcasts.queue(key, update, extra=self._cfg.gossip_nodes)
        self._urgent = self._urgent or not joining
        if joining:
            self._joining.add(key)
        else:
            self._joining.discard(key)
        due = self._timers.deadline(Timer.GOSSIP)
        at = max(now, self._last_round + self._cfg.gossip_eager_gap)
        if due is not None and at < due:
            self._timers.set(Timer.GOSSIP, at)

    def forget(self, name: str) -> None:
        """`name` left the table: its news, if still queued, is no longer a join's."""
        self._joining.discard(name)

    def round(self, now: float) -> None:
        """A periodic round draws its targets from all members, as memberlist does: that
        uniform draw is what the epidemic's guarantees rest on. An early round (pulled
        forward by `news`) is there to make a hop cost one round trip. For news of joins
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
        self._timers.set(Timer.GOSSIP, self._next_round)
        self._last_round = now
        urgent, self._urgent = self._urgent, False
        if not self._broadcasts:
            self._joining.clear()  # no news left, so none of joins
            return
        limit = retransmit_limit(cfg.retransmit_mult, self._table.up)
        for member in self._targets(now, warm_only=not (periodic or urgent)):
            news = self._broadcasts.take(cfg.packet_budget, limit)
            if not news:
                break
            certs = self._joiner_certificates(news)
            packet = Packet(self._meta.name, self._meta.address, None, tuple(news), certs)
            self._out.append(Outgoing(member.meta.address, packet, member.meta.name))

    def _targets(self, now: float, *, warm_only: bool) -> list[MemberView]:
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
        table = self._table
        names = table.names
        for _ in range(4 * cfg.gossip_nodes):
            if len(chosen) == cfg.gossip_nodes or not names:
                break
            name = names[self._rng.randrange(len(names))]
            member = table.members[name]
            if name not in chosen and wanted(member):
                chosen[name] = member
        if len(chosen) < cfg.gossip_nodes:
            me = self._meta.name
            pool = [m for n, m in table.members.items() if n != me and wanted(m)]
            return self._rng.sample(pool, min(cfg.gossip_nodes, len(pool)))
        return list(chosen.values())

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

    def send(
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
        """Queue a packet for the driver; with `piggyback`, it carries what news fits."""
        news = extra
        if piggyback:
            limit = retransmit_limit(self._cfg.retransmit_mult, self._table.up)
            taken = tuple(self._broadcasts.take(self._cfg.packet_budget, limit))
            news = extra + taken
            certificates = tuple(dict.fromkeys(certificates + self._joiner_certificates(taken)))
        packet = Packet(self._meta.name, self._meta.address, body, news, certificates, want)
        self._out.append(Outgoing(address, packet, to_name))

    def flush(self) -> list[Outgoing]:
        out, self._out = self._out, []
        return out
