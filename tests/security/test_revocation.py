"""Revocation through the policy: which identities are refused, and what the claim keys
forget and refuse to learn again."""

from __future__ import annotations

from cryptography import x509
from cryptography.hazmat.primitives import serialization

from skyfleet.membership.claims import Verdict, alive_claim
from skyfleet.membership.messages import NodeMeta
from skyfleet.security.certs import PeerIdentity, create_ca, issue_node_cert, peer_identity
from skyfleet.security.claim_keys import CertificateKeys
from skyfleet.security.revocation import Revocations

CA, CA_KEY = create_ca()


def test_a_listed_serial_is_refused_naming_the_holder_and_the_policy() -> None:
    revocations = Revocations()
    ops = PeerIdentity("ops", "admin", serial="1f")
    assert revocations.refusal(ops) is None
    assert revocations.update(frozenset({"1f", "2a"}), 7) == frozenset({"1f", "2a"})
    assert revocations.refusal(ops) == (
        "ops (admin certificate, serial 1f) is revoked by policy version 7"
    )
    assert revocations.refusal(PeerIdentity("n1", "agent", serial="3b")) is None
    # The list replaces the previous one; only new serials are news.
    assert revocations.update(frozenset({"2a", "3b"}), 8) == frozenset({"3b"})
    assert revocations.refusal(ops) is None


def test_revoked_certificates_sign_nothing_and_are_not_learned_again() -> None:
    cert, key = issue_node_cert(CA, CA_KEY, "n1", ["127.0.0.1"])
    n1 = CertificateKeys(CA, cert, key)
    n0 = CertificateKeys(CA, *issue_node_cert(CA, CA_KEY, "n0", ["127.0.0.1"]))
    der = x509.load_pem_x509_certificate(cert).public_bytes(serialization.Encoding.DER)
    assert n0.learn(der) == "n1"
    meta = NodeMeta("n1", "127.0.0.1:1")
    claim = alive_claim(meta, 5)
    assert n0.verify("n1", claim, n1.sign(claim)) is Verdict.AUTHENTIC
    serial = peer_identity(cert).serial
    assert n0.revoke(frozenset({serial, "ffff"})) == {"n1"}
    assert n0.certificates("n1") == ()
    assert n0.verify("n1", claim, n1.sign(claim)) is Verdict.UNKNOWN_KEY
    assert n0.learn(der) is None
    # A new certificate for the same node (the host re-issued) counts again.
    fresh = CertificateKeys(CA, *issue_node_cert(CA, CA_KEY, "n1", ["127.0.0.1"]))
    assert n0.learn(fresh.certificates("n1")[0]) == "n1"
    assert n0.verify("n1", claim, fresh.sign(claim)) is Verdict.AUTHENTIC
