"""Revoked certificates: the serials the signed policy in force names.

A fleet certificate is valid for a year; a stolen node key or a retired host must stop
counting at once. The fleet already spreads one signed, versioned document to every
agent within a dissemination time, so revocation rides on it (`revoked_certificates` in
the policy) instead of a CRL or OCSP endpoint each agent would have to reach. An agent
refuses every call from a revoked certificate (`services/call_gate.py`, and each packet of
a membership stream opened before the revocation), drops the certificate from those it
checks self-claims with (`claim_keys.py`), and forgets the nodes that held it, so the
fleet's tables lose them as the policy spreads.
"""

from __future__ import annotations

from skyfleet.security.certs import PeerIdentity

REVOKED_PHRASE = "is revoked by policy version"


class Revocations:
    def __init__(self) -> None:
        self._serials: frozenset[str] = frozenset()
        self._version = 0

    def update(self, serials: frozenset[str], version: int) -> frozenset[str]:
        """Adopt the list of policy `version`; returns the serials it newly revokes."""
        added = serials - self._serials
        self._serials, self._version = serials, version
        return added

    @property
    def serials(self) -> frozenset[str]:
        return self._serials

    def refusal(self, identity: PeerIdentity) -> str | None:
        """Why `identity` is refused, or None if its certificate is not revoked."""
        if identity.serial and identity.serial in self._serials:
            return (
                f"{identity.name} ({identity.role} certificate, serial {identity.serial}) "
                f"{REVOKED_PHRASE} {self._version}"
            )
        return None
