"""What the pulumi-tls provider computes, for the engine mocks: a P-256 key, a request
for the subject and SANs asked, and a certificate signed by the CA given, with the
extensions `LocallySignedCert` writes for the allowed uses the program asks for. The
results are real, so the boot test's hosts present them to real agents."""

from __future__ import annotations

import ipaddress
from datetime import UTC, datetime, timedelta
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

_USES = {"server_auth": ExtendedKeyUsageOID.SERVER_AUTH,
         "client_auth": ExtendedKeyUsageOID.CLIENT_AUTH}


def private_key() -> str:
    key = ec.generate_private_key(ec.SECP256R1())
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption()).decode()


def cert_request(inputs: dict[str, Any]) -> str:
    key = serialization.load_pem_private_key(inputs["privateKeyPem"].encode(), None)
    assert isinstance(key, ec.EllipticCurvePrivateKey)
    subject = inputs["subject"]
    name = x509.Name([
        x509.NameAttribute(NameOID.ORGANIZATIONAL_UNIT_NAME, subject["organizationalUnit"]),
        x509.NameAttribute(NameOID.COMMON_NAME, subject["commonName"]),
    ])
    sans: list[x509.GeneralName] = [x509.DNSName(n) for n in inputs.get("dnsNames", [])]
    sans += [x509.IPAddress(ipaddress.ip_address(a)) for a in inputs.get("ipAddresses", [])]
    builder = x509.CertificateSigningRequestBuilder().subject_name(name)
    if sans:
        builder = builder.add_extension(x509.SubjectAlternativeName(sans), critical=False)
    csr = builder.sign(key, hashes.SHA256())
    return csr.public_bytes(serialization.Encoding.PEM).decode()


def sign(inputs: dict[str, Any]) -> str:
    csr = x509.load_pem_x509_csr(inputs["certRequestPem"].encode())
    ca = x509.load_pem_x509_certificate(inputs["caCertPem"].encode())
    ca_key = serialization.load_pem_private_key(inputs["caPrivateKeyPem"].encode(), None)
    assert isinstance(ca_key, ec.EllipticCurvePrivateKey)
    now = datetime.now(UTC)
    uses = [_USES[u] for u in inputs["allowedUses"] if u in _USES]
    builder = (
        x509.CertificateBuilder().subject_name(csr.subject).issuer_name(ca.subject)
        .public_key(csr.public_key()).serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(minutes=5))
        .not_valid_after(now + timedelta(hours=int(inputs["validityPeriodHours"])))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.KeyUsage(True, False, False, False, False, False, False, False,
                                     False), critical=True)
        .add_extension(x509.ExtendedKeyUsage(uses), critical=False)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(csr.public_key()),
                       critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca.public_key()),  # type: ignore[arg-type]
            critical=False)
    )
    for extension in csr.extensions:
        builder = builder.add_extension(extension.value, critical=False)
    return builder.sign(ca_key, hashes.SHA256()).public_bytes(
        serialization.Encoding.PEM).decode()
