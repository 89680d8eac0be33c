"""Self-claims: what only a node may say about itself, and how a receiver checks it.

SWIM lets any member say anything about any member. Accusations (suspect, dead) must stay
that way: a member that cannot reach a node has to be able to say so, and the accused
answers by refutation. But "a1 is alive at incarnation i, at this address, with this
metadata" and "a1 left" are a1's to say: a forged alive moved a node to a fake address or
poisoned its incarnation, and a forged leave took it out of the fleet for good (a left
node is not refuted). So those two claims carry the node's signature, made with the key
of its fleet certificate, and every receiver checks it before the claim enters its member
table or is relayed. A receiver needs the signer's certificate for that: a joiner gets
them with the seed's table, and any receiver missing one asks the packet's sender for
the claim and its certificate, which the sender holds because it checked the claim
itself (`Packet.want_claims`). Periodic push-pull rows carry no signatures (a converged
fleet's tables change nothing); a row that would change the receiver's view is asked
about the same way.

A signature is an 8-byte key id (the first bytes of the SHA-256 of the signer's
certificate) followed by the signature proper, so a receiver knows at once whether it
holds the key (a rotated certificate is fetched, not mistaken for a forgery). The bytes
signed are `alive_claim` / `leave_claim`: a domain tag, then each field length-prefixed,
so no two different claims sign the same bytes.

The core takes a `ClaimKeys`: the agent's uses its certificate and the fleet CA
(`skyfleet.security.claim_keys`), the simulator's keyed hashes (`skyfleet.sim.claim_keys`).
"""

from __future__ import annotations

import enum
import struct
from typing import Protocol

from skyfleet.membership.messages import NodeMeta

KEY_ID_SIZE = 8
_TAG = b"skyfleet.v1.claim\x00"


class Verdict(enum.Enum):
    AUTHENTIC = "authentic"
    UNKNOWN_KEY = "unknown key"
    """No certificate held for the key id: ask the sender, decide when it arrives."""
    FORGED = "forged"
    """Signed by no key of the node's we hold (a tampered, foreign or missing signature)."""


class ClaimKeys(Protocol):
    """A node's signing key and the certificates it has checked, by node name."""

    def sign(self, claim: bytes) -> bytes:
        """Our signature of `claim` (key id first)."""
        ...

    def verify(self, node: str, claim: bytes, signature: bytes) -> Verdict: ...

    def learn(self, certificate: bytes) -> str | None:
        """Check a certificate a peer sent (issued by the fleet, in date, an agent's) and
        keep its key: the node it names, or None if it is refused."""
        ...

    def certificates(self, node: str) -> tuple[bytes, ...]:
        """What we hold for `node`, to send to a peer that asked (our own included)."""
        ...


def _field(data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + data


def alive_claim(meta: NodeMeta, incarnation: int) -> bytes:
    """The bytes a node signs to say it is alive at `incarnation` with `meta`."""
    parts: list[bytes | str] = [b"alive", meta.name, meta.address]
    parts += [meta.cloud, meta.region, meta.zone]
    out = [_TAG, struct.pack(">Q", incarnation)]
    out += [_field(p if isinstance(p, bytes) else p.encode()) for p in parts]
    out.append(struct.pack(">I", len(meta.labels)))
    for key, value in meta.labels:
        out += [_field(key.encode()), _field(value.encode())]
    return b"".join(out)


def leave_claim(node: str, incarnation: int) -> bytes:
    """The bytes a node signs to say it leaves at `incarnation`."""
    return b"".join([_TAG, struct.pack(">Q", incarnation), _field(b"leave"), _field(node.encode())])
