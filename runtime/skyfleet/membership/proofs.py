"""What proves a self-claim (`claims.py`) in the core: checking its signature where it
would take effect, asking a packet's sender for what we lack, and answering a peer that
asks us.

A claim signed by a key we do not hold, or a table row without its signature, is set
aside and asked of the packet's sender, who checked it before relaying it and so holds
the signed claim and its certificate.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

from skyfleet.membership.claims import ClaimKeys, Verdict, alive_claim, leave_claim
from skyfleet.membership.gossip import Send
from skyfleet.membership.members import EventKind, MemberView
from skyfleet.membership.messages import Alive, Dead, MemberState, Packet, Update
from skyfleet.membership.stats import SwimStats

MAX_WANT = 256
"""Nodes whose claims are asked for, or answered, in one packet."""
MAX_CERTIFICATES = 2048
"""Certificates checked from one packet: a join answer's fit; a packet stuffed with more
(each new one costs a signature check) has the rest ignored."""

Emit = Callable[[EventKind, str, int, float, str], None]


class Proofs:
    def __init__(
        self,
        keys: ClaimKeys,
        members: Mapping[str, MemberView],
        stats: SwimStats,
        send: Send,
        emit: Emit,
    ) -> None:
        """`emit` reports forgeries (a FORGED event)."""
        self._keys = keys
        self._members = members
        self._stats = stats
        self._send = send
        self._emit = emit
        self._want: set[str] = set()
        """Nodes whose signed claims and certificates to ask the sender of the packet
        being handled for."""
        self.rows_unsigned = False
        """A table is being merged: a row without a signature is a digest, not a forgery
        (`AntiEntropy.table`)."""

    def learn(self, certificates: tuple[bytes, ...]) -> None:
        for der in certificates[:MAX_CERTIFICATES]:
            if self._keys.learn(der) is None:
                self._stats.refused_certificates += 1

    def authentic(self, claim: Alive | Dead, sender: str | None, now: float) -> bool:
        """Whether a self-claim carries its node's signature. Called only where the claim
        would take effect, so the resends of old news cost no signature check. `sender`:
        the packet's, None for a claim that came with none (it can be asked of nobody)."""
        if isinstance(claim, Alive):
            node, signed = claim.meta.name, alive_claim(claim.meta, claim.incarnation)
        else:
            node, signed = claim.node, leave_claim(claim.node, claim.incarnation)
        verdict = self._keys.verify(node, signed, claim.signature)
        if verdict is Verdict.AUTHENTIC:
            return True
        if (verdict is Verdict.UNKNOWN_KEY or self.rows_unsigned and not claim.signature) and (
            sender is not None
        ):
            # Its sender checked it, so holds what proves it: ask for both.
            self._want.add(node)
            return False
        self._stats.forged_claims += 1
        self._emit(EventKind.FORGED, node, claim.incarnation, now, sender or "")
        return False

    def ask(self, packet: Packet) -> None:
        """Ask the sender of `packet` for the claims it brought that we could not check."""
        if self._want:
            want = tuple(sorted(self._want))[:MAX_WANT]
            self._stats.claims_asked += len(want)
            self._send(packet.sender_address, None, packet.sender, piggyback=False, want=want)
            self._want.clear()

    def answer(self, packet: Packet) -> None:
        """Answer a peer that asked for what proves our view of some nodes
        (`packet.want_claims`): the signed self-claim we hold of each (alive, or its
        leave) and its signer's certificate."""
        claims: list[Update] = []
        certs: list[bytes] = []
        for name in dict.fromkeys(packet.want_claims[:MAX_WANT]):
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
