"""Self-claims in the core: only a node's own signature makes it alive, moves it or lets
it leave; signers' certificates travel with joins and on request.

Cores here hold only the certificates they are given or fetch (unlike
test_swim_unit.py's, which hold every name's), with the simulator's keyed signatures.
"""

from __future__ import annotations

import random
from dataclasses import replace

import pytest

from skyfleet.config.membership import MembershipConfig
from skyfleet.membership.claims import alive_claim, leave_claim
from skyfleet.membership.members import EventKind
from skyfleet.membership.messages import (
    Alive,
    Dead,
    MemberState,
    NodeMeta,
    Outgoing,
    Packet,
    PushPull,
    Suspect,
    Update,
)
from skyfleet.membership.swim import Swim
from skyfleet.sim.claim_keys import SimClaimKeys, SimKeyRegistry
from skyfleet.sim.cluster import SimCluster

LAN = MembershipConfig()
KEYS = SimKeyRegistry(7)


def make(name: str, *, knows: tuple[str, ...] = ()) -> Swim:
    keys = SimClaimKeys(name, KEYS, frozenset(knows))
    return Swim(NodeMeta(name, f"mem://{name}"), LAN, random.Random(1), keys=keys)


def alive(name: str, incarnation: int, *, address: str = "", signer: str = "") -> Alive:
    meta = NodeMeta(name, address or f"mem://{name}")
    return Alive(meta, incarnation, KEYS.sign(signer or name, alive_claim(meta, incarnation)))


def leave(name: str, incarnation: int, *, signer: str = "") -> Dead:
    return Dead(name, incarnation, name, KEYS.sign(signer or name, leave_claim(name, incarnation)))


def send(dst: Swim, sender: str, *news: Update, **fields: object) -> list[Outgoing]:
    packet = Packet(sender, f"mem://{sender}", None, news)
    return dst.handle(replace(packet, **fields), 1.0)  # type: ignore[arg-type]


def queued(swim: Swim) -> list[Update]:
    """What the core would gossip next, one item per node (newer news replaces older)."""
    return list(swim._gossip._broadcasts.take(1 << 20, 1000))


def forged_events(swim: Swim) -> list[tuple[str, str]]:
    return [(e.node, e.source) for e in swim.take_events() if e.kind == EventKind.FORGED]


@pytest.mark.parametrize(
    ("claim", "why"),
    [
        (alive("x", 5, signer="m"), "signed by another node"),
        (replace(alive("x", 5), signature=b""), "unsigned"),
        (replace(alive("x", 5), incarnation=6), "incarnation changed after signing"),
        (replace(alive("x", 5), meta=NodeMeta("x", "mem://trap")), "address changed"),
        (replace(alive("x", 5), signature=alive("x", 5).signature[:-1] + b"\x00"), "tampered"),
    ],
)
def test_a_forged_alive_changes_nothing_and_is_not_relayed(claim: Alive, why: str) -> None:
    a = make("a", knows=("x", "m"))
    send(a, "m", alive("x", 1))
    a.take_events()
    send(a, "m", claim)
    member = a.member("x")
    assert member is not None, why
    assert (member.meta.address, member.incarnation) == ("mem://x", 1), why
    assert queued(a) == [alive("x", 1)], why
    assert a.stats.forged_claims == 1, why
    assert forged_events(a) == [("x", "m")], why


def test_a_forged_leave_changes_nothing_and_is_not_relayed() -> None:
    a = make("a", knows=("x", "m"))
    send(a, "m", alive("x", 1))
    for forged in (leave("x", 1, signer="m"), replace(leave("x", 1), incarnation=2)):
        send(a, "m", forged)
        assert a.member("x").state == MemberState.ALIVE
        assert queued(a) == [alive("x", 1)]
    assert a.stats.forged_claims == 2


def test_a_signed_leave_is_taken_and_relayed_with_its_signature() -> None:
    a = make("a", knows=("x", "m"))
    send(a, "m", alive("x", 1))
    notice = leave("x", 1)
    send(a, "m", notice)
    assert a.member("x").state == MemberState.LEFT
    assert queued(a) == [notice]
    # The table it hands a joiner proves the leave too.
    record = next(r for r in a._anti_entropy.table(signed=True).members if r.meta.name == "x")
    assert record.signature == notice.signature


def test_anyone_may_still_accuse() -> None:
    a = make("a", knows=("x", "m"))
    send(a, "m", alive("x", 1))
    send(a, "m", Suspect("x", 1, "m"))
    assert a.member("x").state == MemberState.SUSPECT
    send(a, "m", Dead("x", 1, "m"))
    assert a.member("x").state == MemberState.DEAD
    assert a.stats.forged_claims == 0


def test_forgeries_about_ourselves_are_not_refuted() -> None:
    """Everyone drops them, so a refutation would only let a forger make us spin."""
    a = make("a", knows=("m",))
    send(a, "m", alive("a", 9, address="mem://trap", signer="m"), leave("a", 0, signer="m"))
    assert (a.incarnation, a.stats.refutations) == (0, 0)
    assert a.stats.forged_claims == 2


def test_an_unknown_signer_is_asked_for_and_its_claim_applied_on_arrival() -> None:
    a = make("a", knows=("m",))
    out = send(a, "m", alive("x", 3))
    assert a.member("x") is None
    assert [(o.to_name, o.packet.want_claims) for o in out] == [("m", ("x",))]
    # The sender answers with the claim it holds and its signer's certificate; the claim
    # then counts, and spreads.
    m = make("m", knows=("x",))
    send(m, "x", alive("x", 3))
    answer = m.handle(out[0].packet, 1.1)
    assert [(o.packet.piggyback, o.packet.certificates) for o in answer] == [
        ((alive("x", 3),), (KEYS.certificate("x"),))
    ]
    a.handle(answer[0].packet, 1.2)
    assert a.member("x").incarnation == 3
    assert queued(a) == [alive("x", 3)]
    assert a.stats.forged_claims == 0


def test_periodic_tables_carry_no_signatures_and_changed_rows_are_asked_about() -> None:
    m = make("m", knows=("x", "y"))
    send(m, "x", alive("x", 3))
    send(m, "y", alive("y", 1))
    table = m._anti_entropy.table()
    assert all(r.signature == b"" for r in table.members)
    a = make("a", knows=("m", "x", "y"))
    send(a, "y", alive("y", 1))  # a already holds y as m does: nothing to ask
    out = a.handle(Packet("m", "mem://m", table), 1.0)
    asks = [o.packet.want_claims for o in out if o.packet.want_claims]
    assert asks == [("m", "x")]
    assert a.member("x") is None and a.stats.forged_claims == 0


def test_a_certificate_the_fleet_did_not_issue_is_refused() -> None:
    a = make("a", knows=("m",))
    send(a, "m", alive("x", 3))
    bogus = b"x\x00" + bytes(16)
    send(a, "m", certificates=(bogus,))
    assert a.member("x") is None
    assert a.stats.refused_certificates == 1


def test_a_join_carries_the_certificates_both_ways() -> None:
    seed = make("s", knows=("c",))
    send(seed, "c", alive("c", 1))
    joiner = make("j")
    hello = joiner.start(0.0, seeds=(seed.meta.address,))
    assert hello[0].packet.certificates == (KEYS.certificate("j"),)
    reply = seed.handle(hello[0].packet, 0.01)
    table = [o for o in reply if isinstance(o.packet.body, PushPull)]
    assert set(table[0].packet.certificates) == {KEYS.certificate(n) for n in ("s", "c")}
    joiner.handle(table[0].packet, 0.02)
    assert {m.name for m in joiner.members()} == {"s", "c", "j"}
    assert seed.member("j").state == MemberState.ALIVE
    assert joiner.stats.forged_claims == seed.stats.forged_claims == 0


def test_a_simulated_fleet_ignores_a_forged_leave_and_forms_with_signatures() -> None:
    """The probe's one-packet eviction, end to end in the simulator: m gossips that a1
    left; nobody believes it, and a1 is never taken out."""
    cluster = SimCluster(LAN, seed=3)
    names = [f"a{i}" for i in range(8)]
    cluster.add_node(names[0])
    for name in names[1:]:
        cluster.add_node(name, seeds=(cluster.address(names[0]),))
    cluster.run_until(10.0)
    assert cluster.converged(names)
    incarnation = cluster.nodes["a1"].swim.incarnation
    forged = Dead("a1", incarnation, "a1", cluster.keys.sign("a7", leave_claim("a1", incarnation)))
    cluster.deliver_now("a2", Packet("a7", cluster.address("a7"), None, (forged,)))
    cluster.run_until(40.0)
    assert cluster.all_see("a1", MemberState.ALIVE)
    assert cluster.nodes["a2"].swim.stats.forged_claims == 1


def test_a_claim_under_a_key_nobody_shows_gives_way_to_what_the_sender_proves() -> None:
    """m relays an alive of x at incarnation 9 signed under a key x never had; asked,
    m can only show x's real claim (incarnation 3): that is what a ends up with."""
    a = make("a", knows=("m",))
    fake = replace(alive("x", 9), signature=KEYS.sign("nobody", b""))
    out = send(a, "m", fake)
    assert out[0].packet.want_claims == ("x",)
    send(a, "m", alive("x", 3), certificates=(KEYS.certificate("x"),))
    assert a.member("x").incarnation == 3
    assert fake not in queued(a)


def test_a_replayed_claim_of_an_older_life_changes_nothing() -> None:
    """Signatures are not bound to a time: the incarnation order is what retires old
    claims, genuine ones included."""
    a = make("a", knows=("x", "m"))
    old_alive, old_leave = alive("x", 1, address="mem://old"), leave("x", 1)
    send(a, "m", old_alive, alive("x", 3))
    send(a, "m", old_alive, old_leave)
    member = a.member("x")
    assert (member.state, member.incarnation, member.meta.address) == (
        MemberState.ALIVE, 3, "mem://x")
    assert a.stats.forged_claims == 0


def test_news_of_a_join_travels_with_the_joiners_certificate_while_fresh() -> None:
    a = make("a", knows=("m", "b"))
    a.start(0.0)
    send(a, "b", alive("b", 0))
    send(a, "m", alive("x", 3), certificates=(KEYS.certificate("x"),))
    out = [o for t in (0.1, 0.2, 0.5, 1.0) for o in a.tick(t) if o.packet.piggyback]
    assert out, "a gossiped nothing"
    for o in out:
        carried = {u.node for u in o.packet.piggyback if isinstance(u, Alive)}
        assert {KEYS.certificate(n) for n in carried} <= set(o.packet.certificates)
    # A refutation of x, later, is no join: it goes without a certificate.
    a.tick(60.0)
    send(a, "m", alive("x", 4))
    later = [o for t in (60.1, 60.5, 61.0) for o in a.tick(t) if o.packet.piggyback]
    assert later and all(not o.packet.certificates for o in later)


def test_a_joiners_catch_up_carries_the_certificates_of_later_joiners() -> None:
    seed = make("s")
    seed.start(0.0)
    first, second = make("j1"), make("j2")
    for joiner, at in ((first, 0.01), (second, 0.02)):
        hello = joiner.start(at, seeds=(seed.meta.address,))
        seed.handle(hello[0].packet, at)
    catch_up = [
        o for o in seed.tick(0.5) if o.to_name == "j1" and isinstance(o.packet.body, PushPull)
    ]
    assert [r.meta.name for r in catch_up[0].packet.body.members] == ["j2"]
    assert catch_up[0].packet.certificates == (KEYS.certificate("j2"),)


def test_forgotten_members_leave_the_table_with_no_news() -> None:
    a = make("a", knows=("m", "x"))
    a.start(0.0)
    send(a, "m", alive("x", 1), alive("m", 1))
    a.take_events()
    a.forget(["x", "a", "nobody"], 1.0)
    assert a.member("x") is None and a.member("a") is not None
    assert [(e.kind, e.node) for e in a.take_events()] == [(EventKind.REVOKED, "x")]
    assert a.num_up() == 2
    # Probing goes on over the others only.
    sent = [o for t in (1.5, 2.5, 3.5) for o in a.tick(t)]
    assert sent and all(o.to_name in ("m", None) for o in sent)
