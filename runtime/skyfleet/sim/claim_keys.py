"""Self-claim signatures for the simulator: keyed hashes in place of ECDSA.

The core's rule is the agent's (`membership/claims.py`): only signed alive and leave
claims enter a table or are relayed, unknown signers' certificates are fetched from the
sender. Only the arithmetic differs, because a 1,000-node join checks about a million
claims and P-256 costs ~100 us each: here a node's signature is a 64-byte BLAKE2b MAC
under a secret the simulated CA (`SimKeyRegistry`) holds, and a "certificate" is the
node's name with the CA's MAC of it. Sizes match the agent's signatures (8 + 64 bytes);
simulated certificates are far smaller than X.509 ones (~40 bytes against ~600), so the
simulator under-counts the bytes of certificate fetches.
"""

from __future__ import annotations

import hashlib
import hmac

from skyfleet.membership.claims import KEY_ID_SIZE, Verdict

_MAC = 64
_CERT_MAC = 16


class SimKeyRegistry:
    """The simulated fleet CA: one secret per node name, derived from the seed."""

    def __init__(self, seed: int) -> None:
        self._root = hashlib.blake2b(f"sim-ca:{seed}".encode(), digest_size=32).digest()
        self._secrets: dict[str, tuple[bytes, bytes]] = {}
        self._owners: dict[bytes, str] = {}

    def _secret(self, node: str) -> tuple[bytes, bytes]:
        """(secret, key id) of `node`."""
        held = self._secrets.get(node)
        if held is None:
            secret = hashlib.blake2b(node.encode(), key=self._root, digest_size=32).digest()
            held = secret, hashlib.blake2b(secret, digest_size=KEY_ID_SIZE).digest()
            self._secrets[node] = held
            self._owners[held[1]] = node
        return held

    def owner(self, key_id: bytes) -> str | None:
        """The node a key id belongs to, among those that have signed or been issued."""
        return self._owners.get(key_id)

    def key_id(self, node: str) -> bytes:
        return self._secret(node)[1]

    def certificate(self, node: str) -> bytes:
        self._secret(node)
        mac = hashlib.blake2b(b"cert:" + node.encode(), key=self._root, digest_size=_CERT_MAC)
        return node.encode() + b"\x00" + mac.digest()

    def check(self, certificate: bytes) -> str | None:
        name, _, mac = certificate.partition(b"\x00")
        try:
            node = name.decode()
        except UnicodeDecodeError:
            return None
        expected = self.certificate(node).partition(b"\x00")[2]
        return node if hmac.compare_digest(mac, expected) else None

    def sign(self, node: str, claim: bytes) -> bytes:
        secret, kid = self._secret(node)
        return kid + hashlib.blake2b(claim, key=secret, digest_size=_MAC).digest()


class SimClaimKeys:
    """One simulated node's `ClaimKeys`. `known` are names whose certificates it holds
    from the start (a converged fleet's, shared between nodes to save memory)."""

    def __init__(
        self, node: str, registry: SimKeyRegistry, known: frozenset[str] = frozenset()
    ) -> None:
        self._node = node
        self._registry = registry
        self._known = known
        self._learned = {node}

    def sign(self, claim: bytes) -> bytes:
        return self._registry.sign(self._node, claim)

    def verify(self, node: str, claim: bytes, signature: bytes) -> Verdict:
        if len(signature) != KEY_ID_SIZE + _MAC:
            return Verdict.FORGED
        owner = self._registry.owner(signature[:KEY_ID_SIZE])
        if owner is None or (owner not in self._learned and owner not in self._known):
            return Verdict.UNKNOWN_KEY
        if owner != node:
            return Verdict.FORGED  # another node's key
        expected = self._registry.sign(node, claim)
        return Verdict.AUTHENTIC if hmac.compare_digest(signature, expected) else Verdict.FORGED

    def learn(self, certificate: bytes) -> str | None:
        node = self._registry.check(certificate)
        if node is not None:
            self._learned.add(node)
        return node

    def certificates(self, node: str) -> tuple[bytes, ...]:
        if node in self._learned or node in self._known:
            return (self._registry.certificate(node),)
        return ()
