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
        self._cas = load_ca_bundle(ca_pem)
        self._key = load_private_key(key_pem)
        self._now = now
        der = load_certificate(cert_pem).public_bytes(serialization.Encoding.DER)
        self._kid = key_id(der)
        self._keys: dict[tuple[str, bytes], ec.EllipticCurvePublicKey] = {}
        self._certs: dict[str, dict[bytes, bytes]] = {}
        """Per node: key id -> certificate (DER), oldest first."""
        self._owner: dict[bytes, str] = {}
        """Key id -> the node its certificate names: a certificate sent again costs a
        hash, not a chain check."""
        self._serial: dict[bytes, str] = {}
        self._revoked: frozenset[str] = frozenset()
        """Serials the policy in force revokes (`security/revocation.py`): never learned."""
        if self.learn(der) is None:
            raise CertificateError("not an agent certificate of the fleet CA", part="cert")

    def sign(self, claim: bytes) -> bytes:
        r, s = decode_dss_signature(self._key.sign(claim, ec.ECDSA(hashes.SHA256())))
        return self._kid + r.to_bytes(_SCALAR, "big") + s.to_bytes(_SCALAR, "big")

    def verify(self, node: str, claim: bytes, signature: bytes) -> Verdict:
        if len(signature) != SIGNATURE_SIZE:
            return Verdict.FORGED
        kid = signature[:KEY_ID_SIZE]
        key = self._keys.get((node, kid))
        if key is None:
            # Another node's key signs nothing for this one; a key never seen is fetched.
            return Verdict.FORGED if kid in self._owner else Verdict.UNKNOWN_KEY
        r = int.from_bytes(signature[KEY_ID_SIZE : KEY_ID_SIZE + _SCALAR], "big")
        s = int.from_bytes(signature[KEY_ID_SIZE + _SCALAR :], "big")
        try:
            key.verify(encode_dss_signature(r, s), claim, ec.ECDSA(hashes.SHA256()))
        except InvalidSignature:
            return Verdict.FORGED
        return Verdict.AUTHENTIC

    def learn(self, certificate: bytes) -> str | None:
        kid = key_id(certificate)
        if kid in self._owner:
            return self._owner[kid]
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
        held = self._certs.setdefault(identity.name, {})
        held[kid] = certificate
        self._keys[(identity.name, kid)] = public
        self._owner[kid] = identity.name
        self._serial[kid] = identity.serial
        while len(held) > MAX_CERTIFICATES_PER_NODE:
            self._drop(identity.name, next(iter(held)))
        return identity.name

    def revoke(self, serials: frozenset[str]) -> set[str]:
        """Forget the certificates with these serials and refuse them from now on (the
        list replaces the previous one); the nodes that held them."""
        self._revoked = serials
        dropped = [(self._owner[k], k) for k, serial in self._serial.items() if serial in serials]
        for name, kid in dropped:
            self._drop(name, kid)
        return {name for name, _ in dropped}

    def _drop(self, name: str, kid: bytes) -> None:
        del self._certs[name][kid], self._keys[(name, kid)], self._owner[kid], self._serial[kid]
        if not self._certs[name]:
            del self._certs[name]

    def certificates(self, node: str) -> tuple[bytes, ...]:
        return tuple(self._certs.get(node, {}).values())
