"""The fleet CA and the certificates it issues: extensions, names, roles, files."""

from __future__ import annotations

import ipaddress
import stat
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from skyfleet.security.certs import (
    CLOCK_SKEW,
    CertificateError,
    PeerIdentity,
    check_chain,
    create_ca,
    issue_admin_cert,
    issue_node_cert,
    load_certificate,
    load_private_key,
    peer_identity,
    write_cert_file,
    write_key_file,
)

NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


@pytest.fixture(scope="module")
def ca() -> tuple[bytes, bytes]:
    return create_ca(now=NOW)


def _ext(cert: x509.Certificate, kind: type[x509.ExtensionType]) -> x509.Extension[Any]:
    return cert.extensions.get_extension_for_class(kind)


def test_ca_is_a_self_signed_p256_ca_limited_to_signing_leaves(ca: tuple[bytes, bytes]) -> None:
    cert = load_certificate(ca[0])
    constraints = _ext(cert, x509.BasicConstraints)
    assert constraints.critical and constraints.value.ca and constraints.value.path_length == 0
    usage = _ext(cert, x509.KeyUsage)
    assert usage.critical and usage.value.key_cert_sign and usage.value.crl_sign
    assert not usage.value.digital_signature
    ski = _ext(cert, x509.SubjectKeyIdentifier).value
    assert ski == x509.SubjectKeyIdentifier.from_public_key(cert.public_key())
    public_key = cert.public_key()
    assert isinstance(public_key, ec.EllipticCurvePublicKey)
    assert public_key.curve.name == "secp256r1"
    cert.verify_directly_issued_by(cert)
    assert cert.subject.rfc4514_string() == "CN=skyfleet fleet CA"
    assert cert.not_valid_before_utc == NOW - CLOCK_SKEW
    assert cert.not_valid_after_utc == NOW + timedelta(days=3650)


def test_node_cert_names_the_node_and_exactly_the_requested_hosts(
    ca: tuple[bytes, bytes],
) -> None:
    cert_pem, _ = issue_node_cert(
        *ca, "aws-1a-0", ["10.10.1.5", "fd00::5", "aws-1a-0.internal", "10.10.1.5"], now=NOW
    )
    cert = load_certificate(cert_pem)
    cert.verify_directly_issued_by(load_certificate(ca[0]))
    assert cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == "aws-1a-0"
    units = cert.subject.get_attributes_for_oid(NameOID.ORGANIZATIONAL_UNIT_NAME)
    assert [u.value for u in units] == ["skyfleet-agent"]
    san = _ext(cert, x509.SubjectAlternativeName).value
    assert san.get_values_for_type(x509.DNSName) == ["aws-1a-0", "aws-1a-0.internal"]
    assert san.get_values_for_type(x509.IPAddress) == [
        ipaddress.ip_address("10.10.1.5"),
        ipaddress.ip_address("fd00::5"),
    ]
    assert list(_ext(cert, x509.ExtendedKeyUsage).value) == [
        ExtendedKeyUsageOID.SERVER_AUTH,
        ExtendedKeyUsageOID.CLIENT_AUTH,
    ]
    assert not _ext(cert, x509.BasicConstraints).value.ca
    usage = _ext(cert, x509.KeyUsage).value
    assert usage.digital_signature and not usage.key_cert_sign
    ca_ski = _ext(load_certificate(ca[0]), x509.SubjectKeyIdentifier).value
    assert _ext(cert, x509.AuthorityKeyIdentifier).value.key_identifier == ca_ski.digest
    assert cert.not_valid_after_utc == NOW + timedelta(days=365)


def test_node_cert_adds_no_host_it_was_not_asked_for(ca: tuple[bytes, bytes]) -> None:
    cert = load_certificate(issue_node_cert(*ca, "gcp-0", [], now=NOW)[0])
    san = _ext(cert, x509.SubjectAlternativeName).value
    assert list(san) == [x509.DNSName("gcp-0")]


def test_admin_cert_is_client_only_with_no_hosts(ca: tuple[bytes, bytes]) -> None:
    cert = load_certificate(issue_admin_cert(*ca, "alice", now=NOW)[0])
    assert list(_ext(cert, x509.ExtendedKeyUsage).value) == [ExtendedKeyUsageOID.CLIENT_AUTH]
    with pytest.raises(x509.ExtensionNotFound):
        _ext(cert, x509.SubjectAlternativeName)
    assert cert.not_valid_after_utc == NOW + timedelta(days=90)


def test_peer_identity_reads_name_and_role(ca: tuple[bytes, bytes]) -> None:
    node = issue_node_cert(*ca, "azure-2-1", ["10.20.1.4"])[0]
    admin = issue_admin_cert(*ca, "ops.bob")[0]
    assert peer_identity(node) == PeerIdentity(name="azure-2-1", role="agent")
    assert peer_identity(admin) == PeerIdentity(name="ops.bob", role="admin")


def _signed_by_ca(ca: tuple[bytes, bytes], subject: x509.Name) -> bytes:
    ca_cert = load_certificate(ca[0])
    ca_key = load_private_key(ca[1])
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(ca_cert.subject)
        .public_key(key.public_key())
        .serial_number(1)
        .not_valid_before(NOW)
        .not_valid_after(NOW + timedelta(days=1))
        .sign(ca_key, hashes.SHA256())
    )
    return cert.public_bytes(serialization.Encoding.PEM)


@pytest.mark.parametrize(
    ("attributes", "error"),
    [
        ([(NameOID.COMMON_NAME, "n1")], "expected exactly one role OU"),
        (
            [(NameOID.ORGANIZATIONAL_UNIT_NAME, "engineering"), (NameOID.COMMON_NAME, "n1")],
            "expected exactly one role OU",
        ),
        (
            [
                (NameOID.ORGANIZATIONAL_UNIT_NAME, "skyfleet-agent"),
                (NameOID.ORGANIZATIONAL_UNIT_NAME, "skyfleet-admin"),
                (NameOID.COMMON_NAME, "n1"),
            ],
            "expected exactly one role OU",
        ),
        ([(NameOID.ORGANIZATIONAL_UNIT_NAME, "skyfleet-agent")], "expected exactly one CN"),
        (
            [(NameOID.ORGANIZATIONAL_UNIT_NAME, "skyfleet-agent"), (NameOID.COMMON_NAME, "a b")],
            "name 'a b'",
        ),
    ],
)
def test_peer_identity_refuses_certificates_without_one_name_and_one_role(
    ca: tuple[bytes, bytes], attributes: list[tuple[x509.ObjectIdentifier, str]], error: str
) -> None:
    subject = x509.Name([x509.NameAttribute(oid, value) for oid, value in attributes])
    with pytest.raises(CertificateError, match=error):
        peer_identity(_signed_by_ca(ca, subject))


@pytest.mark.parametrize("name", ["", "a b", "../etc", "-lead", "trail.", "x" * 65, "nöde"])
def test_bad_names_are_refused_with_the_name(ca: tuple[bytes, bytes], name: str) -> None:
    with pytest.raises(CertificateError, match="name") as info:
        issue_node_cert(*ca, name, [])
    assert info.value.part == ""
    with pytest.raises(CertificateError, match="name"):
        issue_admin_cert(*ca, name)


@pytest.mark.parametrize("host", ["", "a b", "10.0.0.1:7470", "http://x"])
def test_bad_hosts_are_refused_with_the_host(ca: tuple[bytes, bytes], host: str) -> None:
    with pytest.raises(CertificateError, match=f"host {host!r}"):
        issue_node_cert(*ca, "n1", [host])


def test_issuing_needs_a_real_ca_and_its_own_key(ca: tuple[bytes, bytes]) -> None:
    leaf = issue_node_cert(*ca, "n1", [])
    with pytest.raises(CertificateError, match="not a CA certificate") as info:
        issue_node_cert(*leaf, "n2", [])
    assert info.value.part == "ca"
    other = create_ca("other")
    with pytest.raises(CertificateError, match="does not belong") as info:
        issue_node_cert(ca[0], other[1], "n2", [])
    assert info.value.part == "key"
    with pytest.raises(CertificateError, match="not a PEM certificate") as info:
        issue_node_cert(b"junk", ca[1], "n2", [])
    assert info.value.part == "ca"


def test_validity_must_be_positive_and_now_timezone_aware(ca: tuple[bytes, bytes]) -> None:
    with pytest.raises(CertificateError, match="valid_days"):
        issue_node_cert(*ca, "n1", [], valid_days=0)
    with pytest.raises(CertificateError, match="timezone-aware"):
        create_ca(now=datetime(2026, 1, 1))


def test_check_chain_accepts_a_matching_set_and_names_the_culprit_otherwise(
    ca: tuple[bytes, bytes],
) -> None:
    cert, key = issue_node_cert(*ca, "n1", [], now=NOW)
    assert check_chain(ca[0], cert, key, now=NOW) == PeerIdentity("n1", "agent")

    foreign_cert, foreign_key = issue_node_cert(*create_ca("other"), "n1", [])
    later = NOW + timedelta(days=366)
    cases = [
        ((ca[0], foreign_cert, foreign_key, NOW), "cert", "not issued by the fleet CA"),
        ((ca[0], cert, key, later), "cert", "expired on 2027-03-01"),
        ((ca[0], cert, key, NOW - timedelta(hours=1)), "cert", "not valid before"),
        ((ca[0], cert, foreign_key, NOW), "key", "does not belong"),
        ((ca[0], cert, b"junk", NOW), "key", "not an unencrypted PEM private key"),
        ((b"junk", cert, key, NOW), "ca", "not a PEM certificate"),
    ]
    for (ca_pem, cert_pem, key_pem, now), part, message in cases:
        with pytest.raises(CertificateError, match=message) as info:
            check_chain(ca_pem, cert_pem, key_pem, now=now)
        assert info.value.part == part


def test_check_chain_accepts_a_certificate_from_any_ca_in_a_rotation_bundle(
    ca: tuple[bytes, bytes],
) -> None:
    new_ca = create_ca("fleet CA 2027")
    cert, key = issue_node_cert(*new_ca, "n1", [])
    assert check_chain(ca[0] + new_ca[0], cert, key) == PeerIdentity("n1", "agent")
    with pytest.raises(CertificateError, match="'CN=skyfleet fleet CA'\\)$"):
        check_chain(ca[0], cert, key)


def test_key_files_are_private_and_replace_wider_files(tmp_path: Path) -> None:
    path = tmp_path / "node.key"
    path.write_bytes(b"old")
    path.chmod(0o644)
    write_key_file(path, b"-----BEGIN PRIVATE KEY-----\n")
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert path.read_bytes() == b"-----BEGIN PRIVATE KEY-----\n"
    write_cert_file(tmp_path / "node.pem", b"cert")
    assert stat.S_IMODE((tmp_path / "node.pem").stat().st_mode) == 0o644
    assert sorted(p.name for p in tmp_path.iterdir()) == ["node.key", "node.pem"]
