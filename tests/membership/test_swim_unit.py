"""`Swim` driven by hand: crafted packets in, packets out, time passed explicitly.

Two or three cores are joined only where a test needs a round trip; every other answer is
written out by the test, so each rule of swim.py is checked in isolation.
"""

from __future__ import annotations

import random
from dataclasses import replace

import pytest

from skyfleet.config.membership import MembershipConfig
from skyfleet.membership.claims import alive_claim, leave_claim
from skyfleet.membership.members import EventKind
from skyfleet.membership.messages import (
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
)
from skyfleet.membership.swim import Swim
from skyfleet.membership.timing import suspicion_timeout
from skyfleet.sim.claim_keys import SimClaimKeys, SimKeyRegistry

LAN = MembershipConfig()
KEYS = SimKeyRegistry(0)
NAMES = frozenset(["a", "b", "c", "d", "e", "h", "one", "t", "two", "x"])
"""Every core here holds every name's certificate: these tests are about the rules
signatures gate, not about fetching certificates (test_swim_claims.py)."""


def make(name: str, *, seed: int = 0, incarnation: int = 0, start: bool = False) -> Swim:
    """A core; started (periodic probe/gossip timers armed) only when the test is about
    them, so that hand-fed packets are the only thing moving the others."""
    swim = Swim(
        NodeMeta(name, f"mem://{name}"),
        LAN,
        random.Random(seed),
        keys=keys_of(name),
        incarnation=incarnation,
    )
    if start:
        swim.start(0.0)
    return swim


def keys_of(name: str) -> SimClaimKeys:
    return SimClaimKeys(name, KEYS, NAMES)


def signed(update: Update) -> Update:
    """`update` with its node's signature, if it is an unsigned self-claim."""
    if isinstance(update, Alive) and not update.signature:
        claim = alive_claim(update.meta, update.incarnation)
        return replace(update, signature=KEYS.sign(update.meta.name, claim))
    if isinstance(update, Dead) and update.source == update.node and not update.signature:
        claim = leave_claim(update.node, update.incarnation)
        return replace(update, signature=KEYS.sign(update.node, claim))
    return update


def packet(sender: Swim, body: Body = None, *news: Update) -> Packet:
    """A packet from `sender`; self-claims among `news` are signed by their nodes."""
    return Packet(sender.name, sender.meta.address, body, tuple(signed(u) for u in news))


def introduce(swim: Swim, *others: Swim, now: float = 0.0) -> None:
    """Tell `swim` that `others` are alive, as a gossip packet would."""
    for other in others:
        swim.handle(packet(other, None, Alive(other.meta, other.incarnation)), now)


def advance(swim: Swim, until: float) -> list[tuple[float, Outgoing]]:
    """Fire `swim`'s timers up to `until`, as a driver would; (time, packet) sent."""
    sent: list[tuple[float, Outgoing]] = []
    while (deadline := swim.next_deadline()) is not None and deadline <= until:
        sent += [(deadline, o) for o in swim.tick(deadline)]
    return sent


def of_type(sent: list[Outgoing], kind: type) -> list[Outgoing]:
    return [o for o in sent if isinstance(o.packet.body, kind)]


def first_probe(swim: Swim) -> tuple[float, Outgoing]:
    """Fire `swim`'s timers one instant at a time up to its first ping."""
    while (at := swim.next_deadline()) is not None and at <= LAN.probe_interval:
        for out in swim.tick(at):
            if isinstance(out.packet.body, Ping):
                return at, out
    raise AssertionError(f"{swim.name} sent no ping within one probe interval")


def deliver(dst: Swim, sent: list[Outgoing], now: float) -> list[Outgoing]:
    """Hand every packet addressed to `dst` over to it."""
    replies: list[Outgoing] = []
    for out in sent:
        if out.address == dst.meta.address:
            replies += dst.handle(out.packet, now)
    return replies


def kinds(swim: Swim) -> list[tuple[EventKind, str]]:
    return [(e.kind, e.node) for e in swim.take_events()]


def record(swim: Swim, state: MemberState) -> MemberRecord:
    claim = None
    if state == MemberState.ALIVE:
        claim = alive_claim(swim.meta, swim.incarnation)
    elif state == MemberState.LEFT:
        claim = leave_claim(swim.name, swim.incarnation)
    signature = KEYS.sign(swim.name, claim) if claim is not None else b""
    return MemberRecord(swim.meta, state, swim.incarnation, signature)


def carries(out: Outgoing, update: Update) -> bool:
    return signed(update) in out.packet.piggyback


# ---------------------------------------------------------------------- ping / ack


def test_ping_is_acked_to_the_sender_with_the_same_seq() -> None:
    a, b = make("a"), make("b")
    replies = b.handle(packet(a, Ping(7, "b")), 0.1)
    assert [(o.address, o.to_name, o.packet.body) for o in replies] == [
        (a.meta.address, "a", Ack(7))
    ]


def test_ping_without_target_name_is_acked() -> None:
    a, b = make("a"), make("b")
    assert of_type(b.handle(packet(a, Ping(3, "")), 0.1), Ack)


def test_ping_for_another_target_name_is_ignored() -> None:
    # The address was reused by a new process: the ping was meant for its predecessor.
    a, b = make("a"), make("b")
    assert b.handle(packet(a, Ping(3, "old-b")), 0.1) == []


def test_direct_probe_answered_in_time_leaves_the_target_alive() -> None:
    a, b = make("a", start=True), make("b", seed=1)
    introduce(a, b)
    at, ping = first_probe(a)
    assert ping.address == b.meta.address and ping.packet.body.target == "b"
    a.handle(deliver(b, [ping], at)[0].packet, at)
    later = [o for _, o in advance(a, at + LAN.probe_interval - 1e-9)]
    assert not of_type(later, IndirectPing)
    assert a.member("b").state == MemberState.ALIVE
    assert (a.stats.probes, a.stats.probe_failures) == (1, 0)


# ---------------------------------------------------------------------- indirect probes


@pytest.mark.parametrize("nacks", [0, 1, 2, 3])
def test_missed_ack_asks_k_helpers_and_counts_their_nacks(nacks: int) -> None:
    a = make("a", seed=3, start=True)
    others = [make(n) for n in ("b", "c", "d", "e")]
    introduce(a, *others)
    kinds(a)
    at, ping = first_probe(a)
    target = ping.packet.body.target
    seq = ping.packet.body.seq

    sent = [o for _, o in advance(a, at + LAN.probe_timeout)]
    requests = of_type(sent, IndirectPing)
    helpers = {o.to_name for o in requests}
    assert len(requests) == LAN.indirect_checks
    assert target not in helpers and "a" not in helpers
    for o in requests:
        body = o.packet.body
        assert body == IndirectPing(seq, target, f"mem://{target}", want_nack=True)
    assert a.stats.indirect_probes == LAN.indirect_checks

    by_name = {s.name: s for s in others}
    for name in sorted(helpers)[:nacks]:
        a.handle(packet(by_name[name], Nack(seq)), at + LAN.probe_timeout + 0.1)
    advance(a, at + LAN.probe_interval)
    # Lifeguard: every nack that did not come back is a point against our own health.
    assert a.health_score == LAN.indirect_checks - nacks
    assert a.member(target).state == MemberState.SUSPECT
    assert (EventKind.SUSPECT, target) in kinds(a)


def test_nack_for_another_seq_is_not_counted() -> None:
    a = make("a", seed=3, start=True)
    others = [make(n) for n in ("b", "c", "d", "e")]
    introduce(a, *others)
    at, ping = first_probe(a)
    advance(a, at + LAN.probe_timeout)
    for helper in others:
        a.handle(packet(helper, Nack(ping.packet.body.seq + 100)), at + 0.6)
    advance(a, at + LAN.probe_interval)
    assert a.health_score == LAN.indirect_checks


def test_indirect_ack_relayed_through_a_helper_saves_the_target() -> None:
    a, one, two = make("a", start=True), make("one"), make("two")
    introduce(a, one, two)
    at, ping = first_probe(a)
    t, h = (one, two) if ping.to_name == "one" else (two, one)
    requests = of_type([o for _, o in advance(a, at + LAN.probe_timeout)], IndirectPing)
    now = at + LAN.probe_timeout
    relay_ping = deliver(h, requests, now)
    ack = deliver(t, relay_ping, now)
    forwarded = deliver(h, ack, now)
    assert [o.packet.body for o in forwarded] == [Ack(ping.packet.body.seq)]
    a.handle(forwarded[0].packet, now)
    advance(a, at + LAN.probe_interval)
    assert a.member(t.name).state == MemberState.ALIVE
    assert a.stats.probe_failures == 0


def test_relay_forwards_the_targets_ack_with_the_requesters_seq() -> None:
    a, h, t = make("a"), make("h"), make("t")
    out = h.handle(packet(a, IndirectPing(42, "t", t.meta.address, want_nack=True)), 1.0)
    assert len(out) == 1
    relay = out[0]
    assert relay.address == t.meta.address and relay.to_name == "t"
    assert relay.packet.body.target == "t"
    acks = deliver(t, out, 1.0)
    assert [o.packet.body for o in acks] == [Ack(relay.packet.body.seq)]
    forwarded = h.handle(acks[0].packet, 1.001)
    assert [(o.address, o.packet.body) for o in forwarded] == [(a.meta.address, Ack(42))]
    # Answered: no nack follows when the relay's timer would have run out.
    later = [o for _, o in advance(h, 1.0 + 2 * LAN.probe_timeout)]
    assert not of_type(later, Nack)


@pytest.mark.parametrize("want_nack", [True, False])
def test_relay_nacks_a_silent_target_only_when_asked(want_nack: bool) -> None:
    a, h = make("a"), make("h")
    h.handle(packet(a, IndirectPing(42, "t", "mem://t", want_nack=want_nack)), 1.0)
    early = [o for _, o in advance(h, 1.0 + LAN.probe_timeout - 1e-6)]
    assert not of_type(early, Nack)
    late = [o for _, o in advance(h, 1.0 + LAN.probe_timeout)]
    nacks = [(o.address, o.packet.body) for o in of_type(late, Nack)]
    assert nacks == ([(a.meta.address, Nack(42))] if want_nack else [])


# ---------------------------------------------------------------------- refutation


@pytest.mark.parametrize(
    ("accusation", "expected_incarnation"),
    [
        (Suspect("b", 0, "a"), 1),
        (Dead("b", 0, "a"), 1),
        (Suspect("b", 5, "a"), 6),
        (Dead("b", 9, "a"), 10),
    ],
)
def test_news_of_own_suspicion_or_death_is_refuted(
    accusation: Update, expected_incarnation: int
) -> None:
    a, b = make("a"), make("b")
    introduce(b, a)
    kinds(b)
    b.handle(packet(a, None, accusation), 1.0)
    assert b.incarnation == expected_incarnation
    assert b.member("b").state == MemberState.ALIVE
    assert kinds(b) == [(EventKind.REFUTED, "b")]
    # Being accused counts against our own health (Lifeguard).
    assert b.health_score == 1
    # The refutation rides on the very next packet b sends.
    reply = b.handle(packet(a, Ping(1, "b")), 1.1)
    assert carries(reply[0], Alive(b.meta, expected_incarnation))


def test_refutation_clears_the_suspicion_at_the_accuser() -> None:
    a, b, c = make("a"), make("b"), make("c")
    introduce(a, b, c)
    introduce(b, a, c)
    a.handle(packet(c, None, Suspect("b", 0, "c")), 1.0)
    assert a.member("b").state == MemberState.SUSPECT
    b.handle(packet(a, None, Suspect("b", 0, "c")), 1.0)
    ack = b.handle(packet(a, Ping(5, "b")), 1.1)
    a.handle(ack[0].packet, 1.1)
    assert a.member("b").state == MemberState.ALIVE
    assert a.member("b").incarnation == 1
    # The cancelled suspicion never fires.
    advance(a, 1.0 + 6 * suspicion_timeout(LAN.suspicion_mult, 3, LAN.probe_interval))
    assert a.member("b").state == MemberState.ALIVE


def test_stale_alive_about_self_with_higher_incarnation_is_refuted() -> None:
    # Others still gossip the previous life's last incarnation: outbid it.
    a, b = make("a"), make("b")
    b.handle(packet(a, None, Alive(b.meta, 3)), 1.0)
    assert b.incarnation == 4
    assert (EventKind.REFUTED, "b") in kinds(b)


def test_alive_about_self_at_same_incarnation_from_another_life_is_refuted() -> None:
    a, b = make("a"), make("b")
    previous_life = NodeMeta("b", "mem://b-before-restart")
    b.handle(packet(a, None, Alive(previous_life, 0)), 1.0)
    assert b.incarnation == 1


def test_own_alive_echoed_back_is_not_refuted() -> None:
    a, b = make("a"), make("b", incarnation=2)
    b.handle(packet(a, None, Alive(b.meta, 2), Alive(b.meta, 1)), 1.0)
    assert b.incarnation == 2
    assert b.stats.refutations == 0


def test_ping_from_a_member_held_dead_gets_a_hint_and_the_sender_refutes() -> None:
    a, b = make("a"), make("b")
    introduce(a, b)
    introduce(b, a)
    a.handle(packet(b, None, Dead("b", 0, "c")), 1.0)
    assert a.member("b").state == MemberState.DEAD
    ack = a.handle(packet(b, Ping(9, "a")), 2.0)
    assert ack[0].packet.body == Ack(9)
    assert carries(ack[0], Dead("b", 0, "a"))
    b.handle(ack[0].packet, 2.0)
    assert b.incarnation == 1
    # b's next packet to a brings it back to life there.
    a.handle(b.handle(packet(a, Ping(1, "b")), 2.1)[0].packet, 2.1)
    assert a.member("b").state == MemberState.ALIVE


def test_stale_accusation_of_self_is_answered_with_the_current_incarnation() -> None:
    a, b = make("a"), make("b", seed=1, start=True)
    introduce(b, a)
    b.handle(packet(a, None, Suspect("b", 0, "a")), 1.0)
    assert b.incarnation == 1
    advance(b, 30.0)  # the refutation's retransmits are spent (lost, as far as a knows)
    # a never heard it: its ack to b's ping says it still holds b's old life dead.
    sent = b.handle(packet(a, Ack(1), Dead("b", 0, "a")), 30.0)
    sent += [o for _, o in advance(b, 30.0 + LAN.gossip_interval)]
    assert any(o.address == a.meta.address and carries(o, Alive(b.meta, 1)) for o in sent)


# ---------------------------------------------------------------------- precedence


A1 = NodeMeta("x", "mem://x")
A2 = NodeMeta("x", "mem://x-new")


@pytest.mark.parametrize(
    ("news", "state", "incarnation"),
    [
        ([Alive(A1, 1), Alive(A1, 0)], MemberState.ALIVE, 1),
        ([Alive(A1, 1), Alive(A2, 1)], MemberState.ALIVE, 1),
        ([Alive(A1, 1), Alive(A2, 2)], MemberState.ALIVE, 2),
        ([Alive(A1, 1), Suspect("x", 1, "b")], MemberState.SUSPECT, 1),
        ([Alive(A1, 1), Suspect("x", 2, "b")], MemberState.SUSPECT, 2),
        ([Alive(A1, 2), Suspect("x", 1, "b")], MemberState.ALIVE, 2),
        ([Alive(A1, 1), Suspect("x", 1, "b"), Alive(A1, 1)], MemberState.SUSPECT, 1),
        ([Alive(A1, 1), Suspect("x", 1, "b"), Alive(A1, 2)], MemberState.ALIVE, 2),
        ([Alive(A1, 1), Suspect("x", 1, "b"), Dead("x", 1, "c")], MemberState.DEAD, 1),
        ([Alive(A1, 1), Dead("x", 1, "b")], MemberState.DEAD, 1),
        ([Alive(A1, 2), Dead("x", 1, "b")], MemberState.ALIVE, 2),
        ([Alive(A1, 1), Dead("x", 1, "b"), Suspect("x", 1, "c")], MemberState.DEAD, 1),
        ([Alive(A1, 1), Dead("x", 1, "b"), Alive(A1, 1)], MemberState.DEAD, 1),
        ([Alive(A1, 1), Dead("x", 1, "b"), Alive(A1, 2)], MemberState.ALIVE, 2),
        ([Alive(A1, 1), Dead("x", 1, "x")], MemberState.LEFT, 1),
        ([Alive(A1, 1), Dead("x", 1, "x"), Dead("x", 1, "b")], MemberState.LEFT, 1),
        ([Alive(A1, 1), Dead("x", 1, "x"), Alive(A1, 1)], MemberState.LEFT, 1),
    ],
)
def test_precedence(news: list[Update], state: MemberState, incarnation: int) -> None:
    a, b = make("a"), make("b")
    introduce(a, b)  # a third member, so that suspicion bookkeeping has company
    for update in news:
        a.handle(packet(b, None, update), 1.0)
    member = a.member("x")
    assert member is not None
    assert (member.state, member.incarnation) == (state, incarnation)


@pytest.mark.parametrize("update", [Suspect("x", 1, "b"), Dead("x", 1, "b")])
def test_suspicion_or_death_of_an_unknown_member_creates_nothing(update: Update) -> None:
    a, b = make("a"), make("b")
    a.handle(packet(b, None, update), 1.0)
    assert a.member("x") is None


def test_events_follow_the_state_changes() -> None:
    a, b = make("a"), make("b")
    for update in (
        Alive(A1, 0),
        Alive(A2, 1),
        Suspect("x", 1, "b"),
        Alive(A1, 2),
        Dead("x", 2, "b"),
        Alive(A1, 3),
        Dead("x", 3, "x"),
    ):
        a.handle(packet(b, None, update), 1.0)
    assert kinds(a) == [
        (EventKind.JOIN, "x"),
        (EventKind.UPDATE, "x"),
        (EventKind.SUSPECT, "x"),
        (EventKind.ALIVE, "x"),
        (EventKind.FAILED, "x"),
        (EventKind.ALIVE, "x"),
        (EventKind.LEFT, "x"),
    ]


# ---------------------------------------------------------------------- suspicion timer


@pytest.mark.parametrize(
    ("confirmers", "timeout_mult"),
    [((), LAN.suspicion_max_timeout_mult), (("c", "d"), 1), (("c", "c", "d", "e"), 1)],
)
def test_suspicion_timer_starts_at_max_and_confirmations_shrink_it_to_min(
    confirmers: tuple[str, ...], timeout_mult: int
) -> None:
    a = make("a")
    peers = [make(n) for n in ("b", "c", "d", "e", "x")]
    introduce(a, *peers)
    lo = suspicion_timeout(LAN.suspicion_mult, a.num_up(), LAN.probe_interval)
    a.handle(packet(peers[0], None, Suspect("x", 0, "b")), 10.0)
    for name in confirmers:
        a.handle(packet(peers[0], None, Suspect("x", 0, name)), 10.5)
    kinds(a)
    deadline = 10.0 + timeout_mult * lo
    advance(a, deadline - 1e-6)
    assert a.member("x").state == MemberState.SUSPECT
    advance(a, deadline)
    assert a.member("x").state == MemberState.DEAD
    assert (EventKind.FAILED, "x") in kinds(a)


def test_push_pull_dead_record_only_makes_a_live_member_suspect() -> None:
    # A peer's table may be a partition old: give the member a chance to refute.
    a, b, x = make("a"), make("b"), make("x")
    introduce(a, b, x)
    table = PushPull((record(b, MemberState.ALIVE), record(x, MemberState.DEAD)))
    replies = a.handle(packet(b, table), 1.0)
    assert a.member("x").state == MemberState.SUSPECT
    assert [o.packet.body.is_reply for o in of_type(replies, PushPull)] == [True]


# ---------------------------------------------------------------------- join and leave


def test_join_through_a_seed_exchanges_tables() -> None:
    a, c = make("a"), make("c")
    introduce(a, c)
    b = Swim(NodeMeta("b", "mem://b"), LAN, random.Random(5), keys=keys_of("b"))
    hello = b.start(0.0, seeds=(a.meta.address,))
    assert [(o.address, o.packet.body.join) for o in of_type(hello, PushPull)] == [
        (a.meta.address, True)
    ]
    assert not b.joined
    reply = deliver(a, hello, 0.01)
    assert [o.packet.body.is_reply for o in of_type(reply, PushPull)] == [True]
    b.handle(reply[0].packet, 0.02)
    assert b.joined
    assert {m.name for m in b.members()} == {"a", "b", "c"}
    assert a.member("b").state == MemberState.ALIVE


def test_join_is_retried_until_a_seed_answers() -> None:
    b = Swim(NodeMeta("b", "mem://b"), LAN, random.Random(5), keys=keys_of("b"))
    b.start(0.0, seeds=("mem://a",))
    retries = [at for at, o in advance(b, 10.0) if isinstance(o.packet.body, PushPull)]
    assert len(retries) >= 3
    gaps = [later - earlier for earlier, later in zip(retries, retries[1:], strict=False)]
    # Exponential backoff with +-20 % jitter, starting at join_retry_min.
    assert gaps[0] >= 2 * LAN.join_retry_min * 0.8
    assert all(later > earlier for earlier, later in zip(gaps, gaps[1:], strict=False))


def test_leave_announces_left_and_is_never_refuted() -> None:
    a, b = make("a"), make("b", start=True)
    introduce(a, b)
    introduce(b, a)
    kinds(b)
    b.leave(5.0)
    assert b.member("b").state == MemberState.LEFT
    assert kinds(b) == [(EventKind.LEFT, "b")]
    sent = [o for _, o in advance(b, 5.0 + LAN.leave_propagate_delay)]
    goodbye = [o for o in sent if carries(o, Dead("b", 0, "b"))]
    assert goodbye and goodbye[0].address == a.meta.address
    a.handle(goodbye[0].packet, 5.5)
    assert a.member("b").state == MemberState.LEFT
    assert (EventKind.LEFT, "b") in kinds(a)
    assert (EventKind.FAILED, "b") not in kinds(a)

    # A leaving node neither refutes accusations nor probes any more.
    for accusation in (Suspect("b", 0, "a"), Dead("b", 0, "a"), Alive(b.meta, 3)):
        b.handle(packet(a, None, accusation), 6.0)
    assert b.incarnation == 0 and b.stats.refutations == 0
    assert not of_type([o for _, o in advance(b, 20.0)], Ping)


# ---------------------------------------------------------------------- eager gossip

# Rounds 5 s apart, so every gossip packet inside a test's window is an early one, and
# probes rare, so the peers (which never answer) are not suspected meanwhile.
SLOW_ROUNDS = MembershipConfig(gossip_interval=5.0, probe_interval=100.0, probe_timeout=50.0)


def gossip_to(swim: Swim, until: float) -> list[tuple[float, str | None]]:
    """(time, member) of every gossip packet (bodiless, carrying news) `swim` sent up to
    `until`."""
    return [(at, o.to_name) for at, o in advance(swim, until) if o.packet.body is None]


def gossip_times(swim: Swim, until: float) -> list[float]:
    """When `swim` sent gossip up to `until`."""
    return sorted({at for at, _ in gossip_to(swim, until)})


def started_with_peers(
    config: MembershipConfig = SLOW_ROUNDS, *, warm: set[str] | None = None
) -> Swim:
    """`a`, knowing b, c and d; with `warm`, the transport holds open connections to
    those members only (otherwise a connectionless transport: every member counts)."""
    swim = Swim(
        NodeMeta("a", "mem://a"),
        config,
        random.Random(2),
        keys=keys_of("a"),
        warm=None if warm is None else (lambda peer: peer.name in warm),
    )
    swim.start(0.0)
    introduce(swim, make("b"), make("c"), make("d"), now=0.0)
    advance(swim, 1.0)
    return swim


def test_fresh_membership_news_is_gossiped_at_once_not_at_the_next_round() -> None:
    a = started_with_peers()
    a.handle(packet(make("b"), None, Suspect("c", 0, "b")), 1.001)
    assert gossip_times(a, 1.001) == [1.001]


def test_eager_rounds_are_at_most_one_per_gap() -> None:
    a = started_with_peers()
    a.handle(packet(make("b"), None, Suspect("c", 0, "b")), 1.001)
    advance(a, 1.001)
    a.handle(packet(make("b"), None, Suspect("d", 0, "b")), 1.002)
    gap = SLOW_ROUNDS.gossip_eager_gap
    assert gossip_times(a, 2.0) == [pytest.approx(1.001 + gap)]


def test_with_the_gap_at_the_gossip_interval_news_waits_for_the_round() -> None:
    periodic = replace(SLOW_ROUNDS, gossip_eager_gap=SLOW_ROUNDS.gossip_interval)
    a = started_with_peers(periodic)
    a.handle(packet(make("b"), None, Suspect("c", 0, "b")), 1.001)
    first = gossip_times(a, 7.0)[0]
    assert 1.001 < first <= 1.001 + periodic.gossip_interval


def test_a_load_report_waits_for_the_round_a_new_policy_does_not() -> None:
    a = started_with_peers()
    a.publish_status(StatusReport(policy_version=1, policy_hash="h1", inflight=1), 1.0)
    advance(a, 2.0)
    a.publish_status(StatusReport(policy_version=1, policy_hash="h1", inflight=9), 2.001)
    assert gossip_times(a, 3.0) == []
    a.publish_status(StatusReport(policy_version=2, policy_hash="h2", inflight=9), 3.001)
    assert gossip_times(a, 3.001) == [3.001]
    # Another node's advert of a version above any seen so far is urgent too.
    newer = NodeStatus("b", 0, 7, StatusReport(policy_version=3, policy_hash="h3"))
    a.handle(packet(make("b"), None, newer), 4.001)
    assert gossip_times(a, 4.001) == [4.001]


def test_a_joiner_announces_itself_to_the_table_it_received() -> None:
    a, c = make("a"), make("c")
    introduce(a, c)
    b = Swim(NodeMeta("b", "mem://b"), SLOW_ROUNDS, random.Random(5), keys=keys_of("b"))
    reply = deliver(a, b.start(0.0, seeds=(a.meta.address,)), 0.01)
    b.handle(reply[0].packet, 0.02)
    gossip = [o for at, o in advance(b, 0.02) if o.packet.body is None]
    assert {o.to_name for o in gossip} == {"a", "c"}
    assert all(carries(o, Alive(b.meta, 0)) for o in gossip)


# ------------------------------------------------------- early rounds, open connections


def a_join() -> Packet:
    """b tells of e, a member new to the node that reads it: news of a join."""
    return packet(make("b"), None, Alive(make("e").meta, 0))


def test_an_early_round_with_join_news_goes_only_to_members_on_an_open_connection() -> None:
    a = started_with_peers(warm={"b"})
    a.handle(a_join(), 1.001)
    assert gossip_to(a, 1.001) == [(1.001, "b")]


def test_with_no_open_connection_join_news_waits_for_the_periodic_round() -> None:
    a = started_with_peers(warm=set())
    a.handle(a_join(), 1.001)
    sent = gossip_to(a, 7.0)
    assert sent, "the periodic round must still gossip"
    first = sent[0][0]
    assert 1.001 < first <= 1.001 + SLOW_ROUNDS.gossip_interval
    # The periodic round draws from every member, connected or not.
    assert len({name for at, name in sent if at == first}) == SLOW_ROUNDS.gossip_nodes


def test_an_early_round_with_other_news_draws_from_every_member() -> None:
    a = started_with_peers(warm=set())
    a.handle(packet(make("b"), None, Suspect("c", 0, "b")), 1.001)
    sent = gossip_to(a, 1.001)
    assert [at for at, _ in sent] == [1.001] * SLOW_ROUNDS.gossip_nodes
    assert {name for _, name in sent} == {"b", "c", "d"}  # none of them on a connection


def test_an_early_round_does_not_postpone_the_periodic_one() -> None:
    a = started_with_peers(warm={"b"})
    a.handle(a_join(), 1.001)
    sent = gossip_to(a, 12.0)
    cold = [at for at, name in sent if name != "b"]
    # Rounds every 5 s from a phase in [0, 5): the next periodic one comes before 6.001,
    # where it would land had the early round at 1.001 restarted the schedule.
    assert cold and cold[0] < 1.001 + SLOW_ROUNDS.gossip_interval


# ---------------------------------------------------------------------- join catch-up


def seed_node(config: MembershipConfig = LAN) -> Swim:
    swim = Swim(NodeMeta("a", "mem://a"), config, random.Random(0), keys=keys_of("a"))
    swim.start(0.0)
    return swim


def join_through(seed: Swim, joiner: Swim, now: float) -> Packet:
    """`joiner` joins through `seed` at `now`; the seed's reply."""
    [reply] = deliver(seed, joiner.start(now, seeds=(seed.meta.address,)), now)
    return reply.packet


def catch_ups(sent: list[tuple[float, Outgoing]]) -> list[tuple[float, Outgoing]]:
    """Push-pull replies sent outside any exchange: the catch-ups."""
    return [
        (at, o) for at, o in sent if isinstance(o.packet.body, PushPull) and o.packet.body.is_reply
    ]


def listed(out: Outgoing) -> list[str]:
    assert isinstance(out.packet.body, PushPull)
    return [r.meta.name for r in out.packet.body.members]


def burst(seed: Swim) -> tuple[Swim, Swim, list[tuple[float, Outgoing]]]:
    """b joins through `seed` at 0.1, c at 0.12; what the seed sends until 0.5."""
    b, c = make("b", seed=1), make("c", seed=2)
    b.handle(join_through(seed, b, 0.1), 0.1)
    advance(seed, 0.1)  # the early round for the news of b
    join_through(seed, c, 0.12)
    return b, c, advance(seed, 0.5)


def test_a_seed_completes_the_table_of_a_node_that_joined_before_others() -> None:
    a = seed_node()
    b, c, sent = burst(a)
    # b's table was a snapshot taken before c joined: at a's next round b gets c, on the
    # address it joined from. c's table was complete; it gets nothing.
    [(at, out)] = catch_ups(sent)
    assert (out.address, out.to_name, listed(out)) == (b.meta.address, "b", ["c"])
    assert at == pytest.approx(0.1 + LAN.gossip_eager_gap)  # c's news pulled a round forward
    b.handle(out.packet, at)
    assert b.member("c") is not None and b.member("c").state == MemberState.ALIVE


def test_catch_up_ends_once_its_window_brings_nothing_new() -> None:
    a = seed_node()
    b, _, sent = burst(a)
    assert len(catch_ups(sent)) == 1
    # A node joining long after the burst is news for gossip, not for b's catch-up.
    join_through(a, make("d", seed=3), 1.0)
    assert catch_ups(advance(a, 3.0)) == []


def test_a_lone_join_gets_no_catch_up() -> None:
    a = seed_node()
    join_through(a, make("b", seed=1), 0.1)
    assert catch_ups(advance(a, 3.0)) == []


def test_with_no_catch_up_window_a_burst_is_left_to_gossip() -> None:
    a = seed_node(replace(LAN, join_catch_up_window=0.0))
    _, _, sent = burst(a)
    assert catch_ups(sent) == []
