"""Self-claim signatures with a node's fleet certificate (`membership/claims.py`).

ECDSA P-256 with SHA-256, the certificate's own key: no second key to issue, rotate or
revoke. The signature travels as raw r || s (64 bytes) rather than DER (70-72, varying),
behind the 8-byte key id. A peer's certificate is checked once, when it arrives, as the
handshake would check it (fleet CA, in date, an agent's), then kept by key id; a node's
claims are checked against the keys of the certificates issued for that very name, so a
valid certificate of another node signs nothing for this one.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import (
    decode_dss_signature,
    encode_dss_signature,
)

from skyfleet.membership.claims import KEY_ID_SIZE, Verdict
from skyfleet.security.certs import (
    CertificateError,
    check_issued,
    load_ca_bundle,
    load_certificate,
    load_private_key,
)

_SCALAR = 32
SIGNATURE_SIZE = KEY_ID_SIZE + 2 * _SCALAR
MAX_CERTIFICATES_PER_NODE = 4
"""Certificates kept per node name: a rotation overlaps an old and a new one."""


def key_id(der: bytes) -> bytes:
    return hashlib.sha256(der).digest()[:KEY_ID_SIZE]


@dataclass(frozen=True, slots=True)
class _Held:
    """A checked certificate, by its key id."""

    node: str
    serial: str
    key: ec.EllipticCurvePublicKey
    der: bytes


class CertificateKeys:
    """The agent's `ClaimKeys`: its own certificate key, and the fleet's certificates
    it has checked. `now` is the wall clock certificates are dated against."""

    def __init__(
        self,
        ca_pem: bytes,
        cert_pem: bytes,
        key_pem: bytes,
        *,
        now: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self._now = now
        self._cas: list[x509.Certificate] = []
        self._held: dict[bytes, _Held] = {}
        """Key id -> certificate checked: one sent again costs a hash, not a chain check."""
        self._by_node: dict[str, list[bytes]] = {}
        """Node -> key ids of its certificates, oldest first."""
        self._revoked: frozenset[str] = frozenset()
        """Serials the policy in force revokes (`security/revocation.py`): never learned."""
        self.rotate(ca_pem, cert_pem, key_pem)

    def rotate(self, ca_pem: bytes, cert_pem: bytes, key_pem: bytes) -> None:
        """Sign with a new certificate (renewed, or from a new CA) and trust the new CA
        bundle from now on. Certificates already checked stay: they were valid when they
        arrived, and peers renew one by one. Our claims carry the new key id, which peers
        fetch like any unknown signer's."""
        cas = load_ca_bundle(ca_pem)
        key = load_private_key(key_pem)
        der = load_certificate(cert_pem).public_bytes(serialization.Encoding.DER)
        previous, self._cas = self._cas, cas
        if self.learn(der) is None:
            self._cas = previous
            raise CertificateError("not an agent certificate of the fleet CA", part="cert")
        self._key, self._kid = key, key_id(der)

    def sign(self, claim: bytes) -> bytes:
        r, s = decode_dss_signature(self._key.sign(claim, ec.ECDSA(hashes.SHA256())))
        return self._kid + r.to_bytes(_SCALAR, "big") + s.to_bytes(_SCALAR, "big")

    def verify(self, node: str, claim: bytes, signature: bytes) -> Verdict:
        if len(signature) != SIGNATURE_SIZE:
            return Verdict.FORGED
        held = self._held.get(signature[:KEY_ID_SIZE])
        if held is None:
            return Verdict.UNKNOWN_KEY  # a key never seen: fetched from the sender
        if held.node != node:
            return Verdict.FORGED  # another node's key signs nothing for this one
        r = int.from_bytes(signature[KEY_ID_SIZE : KEY_ID_SIZE + _SCALAR], "big")
        s = int.from_bytes(signature[KEY_ID_SIZE + _SCALAR :], "big")
        try:
            held.key.verify(encode_dss_signature(r, s), claim, ec.ECDSA(hashes.SHA256()))
        except InvalidSignature:
            return Verdict.FORGED
        return Verdict.AUTHENTIC

    def learn(self, certificate: bytes) -> str | None:
        kid = key_id(certificate)
        if kid in self._held:
            return self._held[kid].node
        try:
            cert = x509.load_der_x509_certificate(certificate)
            identity = check_issued(self._cas, cert, now=self._now())
        except (ValueError, CertificateError):
            return None
        public = cert.public_key()
        if identity.role != "agent" or not isinstance(public, ec.EllipticCurvePublicKey):
            return None
        if identity.serial in self._revoked:
            return None
        self._held[kid] = _Held(identity.name, identity.serial, public, certificate)
        kids = self._by_node.setdefault(identity.name, [])
        kids.append(kid)
        while len(kids) > MAX_CERTIFICATES_PER_NODE:
            self._drop(kids[0])
        return identity.name

    def revoke(self, serials: frozenset[str]) -> set[str]:
        """Forget the certificates with these serials and refuse them from now on (the
        list replaces the previous one); the nodes that held them."""
        self._revoked = serials
        dropped = [kid for kid, held in self._held.items() if held.serial in serials]
        nodes = {self._held[kid].node for kid in dropped}
        for kid in dropped:
            self._drop(kid)
        return nodes

    def _drop(self, kid: bytes) -> None:
        node = self._held.pop(kid).node
        kids = self._by_node[node]
        kids.remove(kid)
        if not kids:
            del self._by_node[node]

    def certificates(self, node: str) -> tuple[bytes, ...]:
        return tuple(self._held[kid].der for kid in self._by_node.get(node, ()))
