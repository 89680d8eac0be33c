"""Self-claim signatures with real fleet certificates (`security/claim_keys.py`): only the
node's own certificate key makes a claim authentic, and only fleet agent certificates
are learned."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from hypothesis import given, settings
from hypothesis import strategies as st

from skyfleet.membership.claims import KEY_ID_SIZE, Verdict, alive_claim, leave_claim
from skyfleet.membership.messages import NodeMeta
from skyfleet.security.certs import (
    create_ca,
    issue_admin_cert,
    issue_client_cert,
    issue_node_cert,
)
from skyfleet.security.claim_keys import SIGNATURE_SIZE, CertificateKeys

CA, CA_KEY = create_ca()
OTHER_CA, OTHER_CA_KEY = create_ca("another fleet")
NODES = {n: issue_node_cert(CA, CA_KEY, n, ["127.0.0.1"]) for n in ("a", "b", "c")}
META = NodeMeta("a", "10.0.0.1:7400", cloud="aws", region="r", zone="z", labels=(("k", "v"),))


def der(pem: bytes) -> bytes:
    return x509.load_pem_x509_certificate(pem).public_bytes(serialization.Encoding.DER)


def keys(name: str) -> CertificateKeys:
    return CertificateKeys(CA, *NODES[name])


A, B, C = keys("a"), keys("b"), keys("c")
for holder in (B, C):
    holder.learn(der(NODES["a"][0]))
C.learn(der(NODES["b"][0]))
SIGNED = A.sign(alive_claim(META, 41))


def test_the_nodes_own_signature_is_authentic_to_every_holder_of_its_certificate() -> None:
    assert len(SIGNED) == SIGNATURE_SIZE
    assert B.verify("a", alive_claim(META, 41), SIGNED) is Verdict.AUTHENTIC
    assert A.verify("a", alive_claim(META, 41), SIGNED) is Verdict.AUTHENTIC
    left = A.sign(leave_claim("a", 41))
    assert B.verify("a", leave_claim("a", 41), left) is Verdict.AUTHENTIC
    # An alive signature never passes as a leave, nor the reverse.
    assert B.verify("a", leave_claim("a", 41), SIGNED) is Verdict.FORGED
    assert B.verify("a", alive_claim(META, 41), left) is Verdict.FORGED


@settings(max_examples=200, deadline=None)
@given(st.integers(0, SIGNATURE_SIZE - 1), st.integers(1, 255))
def test_a_tampered_signature_is_never_authentic(at: int, flip: int) -> None:
    tampered = bytearray(SIGNED)
    tampered[at] ^= flip
    verdict = B.verify("a", alive_claim(META, 41), bytes(tampered))
    # A changed key id names no key held (asked for, then still not authentic).
    expected = Verdict.UNKNOWN_KEY if at < KEY_ID_SIZE else Verdict.FORGED
    assert verdict is expected


@settings(max_examples=100, deadline=None)
@given(
    st.integers(0, 2**62),
    st.sampled_from(["address", "cloud", "region", "zone", "labels"]),
    st.text(min_size=1, max_size=20),
)
def test_a_claim_changed_after_signing_is_forged(incarnation: int, field: str, text: str) -> None:
    value: object = ((text, "v"),) if field == "labels" else text
    changed = replace(META, **{field: value})
    if changed == META:
        changed = replace(META, address="10.9.9.9:1")
    assert B.verify("a", alive_claim(changed, 41), SIGNED) is Verdict.FORGED
    if incarnation != 41:
        assert B.verify("a", alive_claim(META, incarnation), SIGNED) is Verdict.FORGED


def test_another_nodes_key_signs_nothing_for_this_one() -> None:
    by_b = B.sign(alive_claim(META, 41))
    assert C.verify("a", alive_claim(META, 41), by_b) is Verdict.FORGED
    # A holder that has not seen b's certificate asks for it first.
    assert B.verify("a", alive_claim(META, 41), C.sign(alive_claim(META, 41))) is (
        Verdict.UNKNOWN_KEY
    )
    assert B.verify("a", alive_claim(META, 41), b"") is Verdict.FORGED


def test_only_fleet_agent_certificates_in_date_are_learned() -> None:
    holder = keys("b")
    admin, _ = issue_admin_cert(CA, CA_KEY, "ops")
    client, _ = issue_client_cert(CA, CA_KEY, "app")
    foreign, _ = issue_node_cert(OTHER_CA, OTHER_CA_KEY, "a", ["127.0.0.1"])
    old = datetime.now(UTC) - timedelta(days=400)
    expired, _ = issue_node_cert(CA, CA_KEY, "a", ["127.0.0.1"], valid_days=30, now=old)
    for refused in (admin, client, foreign, expired):
        assert holder.learn(der(refused)) is None
    assert holder.learn(b"\x30\x03not a certificate") is None
    assert holder.learn(der(NODES["a"][0])) == "a"
    assert holder.certificates("a") == (der(NODES["a"][0]),)


def test_a_rotated_certificate_is_fetched_not_mistaken_for_a_forgery() -> None:
    rotated = CertificateKeys(CA, *issue_node_cert(CA, CA_KEY, "a", ["127.0.0.1"]))
    claim = alive_claim(META, 42)
    holder = keys("b")
    holder.learn(der(NODES["a"][0]))
    assert holder.verify("a", claim, rotated.sign(claim)) is Verdict.UNKNOWN_KEY
    assert holder.learn(rotated.certificates("a")[0]) == "a"
    assert holder.verify("a", claim, rotated.sign(claim)) is Verdict.AUTHENTIC
    assert holder.verify("a", alive_claim(META, 41), SIGNED) is Verdict.AUTHENTIC


def test_an_agent_needs_its_own_agent_certificate() -> None:
    admin, admin_key = issue_admin_cert(CA, CA_KEY, "ops")
    with pytest.raises(ValueError, match="agent certificate"):
        CertificateKeys(CA, admin, admin_key)
