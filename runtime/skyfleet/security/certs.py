"""The fleet CA, the certificates it issues, and reading an identity back out of one.

Trust model, in the order an agent relies on it:

- One CA per fleet (per environment). An agent accepts a TLS peer only if the peer's
  certificate was issued by that CA; gRPC enforces this during the handshake, in both
  directions (mutual TLS).
- The certificate's common name is the node name (or the admin's name). Handlers check
  that the `sender` of every packet equals the caller's CN, so a node can speak only for
  itself.
- The role travels as the subject's OrganizationalUnit: `skyfleet-agent` (a fleet member:
  gossips, forwards and runs tasks, serves), `skyfleet-admin` (an operator: the admin
  calls) or `skyfleet-client` (submits and follows tasks, reads members and policy status,
  nothing else). Admin and client certificates carry clientAuth only: they can call agents
  but can never serve as one, and no service takes either for a fleet member.
- Node certificates carry `DNS:<node name>` plus the hosts the caller asks for (IPs as
  IPAddress SANs). A peer dialled by IP whose name is known is checked against the name
  (gRPC's `ssl_target_name_override`); a seed dialled before its name is known is checked
  against the IP, so cloud-init passes the node's private IPs as hosts.

CA rotation: gRPC trusts every certificate in the CA file, so a fleet rotates by shipping
a bundle (old CA + new CA) to every host, re-issuing node certificates from the new CA,
then shipping the new CA alone. No step needs all hosts to change at once.

Keys are ECDSA P-256: generated in milliseconds, cheap handshakes, and supported by every
TLS stack gRPC ships with. Private keys leave this module only as PEM bytes handed to the
caller or written with mode 0600; they are never printed or logged.
"""

from __future__ import annotations

import ipaddress
import os
import tempfile
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Literal

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from skyfleet.config.agent import NODE_NAME

Role = Literal["agent", "admin", "client"]

ROLE_UNITS: dict[Role, str] = {
    "agent": "skyfleet-agent", "admin": "skyfleet-admin", "client": "skyfleet-client"}
"""The subject OU that marks each role; the reverse mapping is how a peer's role is read."""

CLOCK_SKEW = timedelta(minutes=5)
"""How far `not_valid_before` is backdated: hosts in other clouds whose clocks run a little
behind the issuer must still accept a certificate issued a moment ago."""

# Names become a DNS SAN (matched by the TLS stack), a CN (at most 64 characters by X.509)
# and a file name in `skyfleet certs issue`; NODE_NAME is restricted to what all three take.


class CertificateError(ValueError):
    """A certificate or key is malformed or breaks the fleet's rules.

    `part` says which input is at fault ("ca", "cert" or "key") so callers can name the
    config key or file; it is "" for errors in the request itself (a bad name or host).
    """

    def __init__(self, message: str, *, part: str = "") -> None:
        super().__init__(message)
        self.part = part


@dataclass(frozen=True, slots=True)
class PeerIdentity:
    """Who is at the other end of a connection, as its certificate says."""

    name: str
    """The certificate's CN: the node name, or the admin's or client's name."""
    role: Role
    serial: str = field(default="", compare=False)
    """The certificate's serial number in lowercase hex: what a policy revokes."""


def _utc_now(now: datetime | None) -> datetime:
    if now is None:
        return datetime.now(UTC)
    if now.tzinfo is None:
        raise CertificateError("now: must be timezone-aware")
    return now


def check_name(name: str) -> str:
    """Return `name` if it can be a node or admin name in a certificate, else raise."""
    if not NODE_NAME.fullmatch(name):
        raise CertificateError(
            f"name {name!r}: use 1-64 letters, digits, '.', '_' or '-', "
            "starting and ending with a letter or digit"
        )
    return name


def _key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def _builder(
    subject: x509.Name,
    issuer: x509.Name,
    public_key: ec.EllipticCurvePublicKey,
    valid_days: int,
    now: datetime,
) -> x509.CertificateBuilder:
    if valid_days < 1:
        raise CertificateError(f"valid_days: must be at least 1, got {valid_days}")
    return (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer)
        .public_key(public_key)
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - CLOCK_SKEW)
        .not_valid_after(now + timedelta(days=valid_days))
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(public_key), critical=False)
    )


def create_ca(
    name: str = "skyfleet fleet CA", *, valid_days: int = 3650, now: datetime | None = None
) -> tuple[bytes, bytes]:
    """Create a self-signed fleet CA; returns (ca_cert_pem, ca_key_pem).

    path_length=0: the CA signs leaves only, so a stolen node key can never mint others.
    """
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    cert = (
        _builder(subject, subject, key.public_key(), valid_days, _utc_now(now))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=False,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .sign(key, hashes.SHA256())
    )
    return cert.public_bytes(serialization.Encoding.PEM), _key_pem(key)


def _load_ca(
    ca_cert_pem: bytes, ca_key_pem: bytes
) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    """Parse the CA pair and check that it is a CA and that the key belongs to it."""
    ca_cert = load_certificate(ca_cert_pem, part="ca")
    try:
        constraints = ca_cert.extensions.get_extension_for_class(x509.BasicConstraints).value
    except x509.ExtensionNotFound:
        constraints = None
    if constraints is None or not constraints.ca:
        raise CertificateError("not a CA certificate (BasicConstraints ca=True missing)", part="ca")
    key = load_private_key(ca_key_pem, part="key")
    if not isinstance(key, ec.EllipticCurvePrivateKey):
        raise CertificateError("the CA key must be an ECDSA key", part="key")
    if key.public_key() != ca_cert.public_key():
        raise CertificateError("the CA key does not belong to the CA certificate", part="key")
    return ca_cert, key


def _issue_leaf(
    ca_cert_pem: bytes,
    ca_key_pem: bytes,
    name: str,
    role: Role,
    sans: list[x509.GeneralName],
    usages: list[x509.ObjectIdentifier],
    valid_days: int,
    now: datetime | None,
) -> tuple[bytes, bytes]:
    ca_cert, ca_key = _load_ca(ca_cert_pem, ca_key_pem)
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATIONAL_UNIT_NAME, ROLE_UNITS[role]),
            x509.NameAttribute(NameOID.COMMON_NAME, check_name(name)),
        ]
    )
    ca_ski = ca_cert.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
    builder = (
        _builder(subject, ca_cert.subject, key.public_key(), valid_days, _utc_now(now))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=False,
                crl_sign=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.ExtendedKeyUsage(usages), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ca_ski),
            critical=False,
        )
    )
    if sans:
        builder = builder.add_extension(x509.SubjectAlternativeName(sans), critical=False)
    cert = builder.sign(ca_key, hashes.SHA256())
    return cert.public_bytes(serialization.Encoding.PEM), _key_pem(key)


def _host_san(host: str) -> x509.GeneralName:
    try:
        return x509.IPAddress(ipaddress.ip_address(host.strip("[]")))
    except ValueError:
        pass
    if not host or any(c.isspace() or c in "/:@" for c in host):
        raise CertificateError(f"host {host!r}: expected an IP address or a DNS name")
    return x509.DNSName(host)


def issue_node_cert(
    ca_cert_pem: bytes,
    ca_key_pem: bytes,
    node_name: str,
    hosts: list[str],
    *,
    valid_days: int = 365,
    now: datetime | None = None,
) -> tuple[bytes, bytes]:
    """Issue an agent certificate; returns (cert_pem, key_pem).

    SANs are `DNS:<node_name>` then each of `hosts` (an IP address or a DNS name), exactly
    as asked: add the addresses peers dial, including 127.0.0.1 on the local stack.
    """
    sans: list[x509.GeneralName] = [x509.DNSName(check_name(node_name))]
    for host in hosts:
        san = _host_san(host)
        if san not in sans:
            sans.append(san)
    usages = [ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH]
    return _issue_leaf(ca_cert_pem, ca_key_pem, node_name, "agent", sans, usages, valid_days, now)


def issue_admin_cert(
    ca_cert_pem: bytes,
    ca_key_pem: bytes,
    admin_name: str,
    *,
    valid_days: int = 90,
    now: datetime | None = None,
) -> tuple[bytes, bytes]:
    """Issue an operator's client certificate; returns (cert_pem, key_pem).

    Short-lived by default (90 days) because it grants admin calls on every agent.
    """
    usages = [ExtendedKeyUsageOID.CLIENT_AUTH]
    return _issue_leaf(ca_cert_pem, ca_key_pem, admin_name, "admin", [], usages, valid_days, now)


def issue_client_cert(
    ca_cert_pem: bytes,
    ca_key_pem: bytes,
    client_name: str,
    *,
    valid_days: int = 90,
    now: datetime | None = None,
) -> tuple[bytes, bytes]:
    """Issue a task client's certificate; returns (cert_pem, key_pem). It may submit and
    follow tasks and read members and policy status; it is never a fleet member."""
    usages = [ExtendedKeyUsageOID.CLIENT_AUTH]
    return _issue_leaf(ca_cert_pem, ca_key_pem, client_name, "client", [], usages, valid_days,
                       now)


def load_certificate(pem: bytes, *, part: str = "cert") -> x509.Certificate:
    """Parse one PEM certificate, raising CertificateError tagged with `part`."""
    try:
        return x509.load_pem_x509_certificate(pem)
    except ValueError as exc:
        raise CertificateError(f"not a PEM certificate ({exc})", part=part) from None


def load_private_key(pem: bytes, *, part: str = "key") -> ec.EllipticCurvePrivateKey:
    """Parse an unencrypted PEM private key, raising CertificateError tagged with `part`.

    The parser's own message is dropped on purpose: it may quote the input.
    """
    try:
        key = serialization.load_pem_private_key(pem, password=None)
    except (ValueError, TypeError):
        raise CertificateError("not an unencrypted PEM private key", part=part) from None
    if not isinstance(key, ec.EllipticCurvePrivateKey):
        raise CertificateError("expected an ECDSA private key", part=part)
    return key


def load_ca_bundle(pem: bytes) -> list[x509.Certificate]:
    """Parse the fleet CA file: one PEM certificate, or several during a CA rotation."""
    try:
        cas = x509.load_pem_x509_certificates(pem)
    except ValueError as exc:
        raise CertificateError(f"not a PEM certificate ({exc})", part="ca") from None
    return cas


def _issued_by(cert: x509.Certificate, ca: x509.Certificate) -> bool:
    try:
        cert.verify_directly_issued_by(ca)
    except (ValueError, TypeError, InvalidSignature):
        return False
    return True


def peer_identity(cert_pem: bytes) -> PeerIdentity:
    """Read who a certificate names: its CN and the role marked by its OU.

    This trusts the certificate's content; call it only on certificates that the TLS
    handshake (or `check_chain`) has already verified against the fleet CA.
    """
    return _identity_of(load_certificate(cert_pem))


def _identity_of(cert: x509.Certificate) -> PeerIdentity:
    subject = cert.subject
    names = subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    units = {str(a.value) for a in subject.get_attributes_for_oid(NameOID.ORGANIZATIONAL_UNIT_NAME)}
    roles = [role for role, unit in ROLE_UNITS.items() if unit in units]
    if len(names) != 1:
        raise CertificateError(f"expected exactly one CN in {subject.rfc4514_string()!r}")
    if len(roles) != 1:
        raise CertificateError(
            f"{subject.rfc4514_string()!r}: expected exactly one role OU "
            f"({' or '.join(ROLE_UNITS.values())})"
        )
    return PeerIdentity(
        name=check_name(str(names[0].value)), role=roles[0], serial=serial_hex(cert)
    )


def serial_hex(cert: x509.Certificate) -> str:
    """A certificate's serial as policies name it: lowercase hex, no leading zeros."""
    return format(cert.serial_number, "x")


def check_chain(
    ca_pem: bytes, cert_pem: bytes, key_pem: bytes, *, now: datetime | None = None
) -> PeerIdentity:
    """Check that a node's own TLS files fit together, before any handshake can fail.

    A mismatched key, a certificate from another CA or an expired certificate would
    otherwise surface only as every peer refusing the node; this names the culprit
    up front. `ca_pem` may be a bundle of several CAs (see "CA rotation" above); the
    certificate must come from one of them. Returns the identity it gives its holder.
    """
    cas = load_ca_bundle(ca_pem)
    cert = load_certificate(cert_pem, part="cert")
    key = load_private_key(key_pem, part="key")
    identity = check_issued(cas, cert, now=now)
    if key.public_key() != cert.public_key():
        raise CertificateError("the key does not belong to the certificate", part="key")
    return identity


def check_issued(
    cas: list[x509.Certificate], cert: x509.Certificate, *, now: datetime | None = None
) -> PeerIdentity:
    """What the handshake checks of a peer's certificate, for certificates that arrive
    outside one (a signer's, sent with self-claims): issued by a fleet CA, in date, and
    naming one identity. Errors are tagged part="cert"."""
    if not any(_issued_by(cert, ca) for ca in cas):
        subjects = ", ".join(repr(ca.subject.rfc4514_string()) for ca in cas)
        raise CertificateError(f"not issued by the fleet CA ({subjects})", part="cert")
    moment = _utc_now(now)
    if moment > cert.not_valid_after_utc:
        raise CertificateError(f"expired on {cert.not_valid_after_utc:%Y-%m-%d}", part="cert")
    if moment < cert.not_valid_before_utc:
        raise CertificateError(
            f"not valid before {cert.not_valid_before_utc:%Y-%m-%d %H:%M} UTC", part="cert"
        )
    try:
        return _identity_of(cert)
    except CertificateError as exc:
        raise CertificateError(str(exc), part="cert") from None


def _write_atomically(path: Path, data: bytes, mode: int) -> None:
    """Write via a temporary file in the same folder, so a crash never leaves half a PEM
    and a key never exists on disk, even briefly, with wider permissions than `mode`."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "wb") as out:
            os.fchmod(out.fileno(), mode)
            out.write(data)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_key_file(path: Path, pem: bytes) -> None:
    """Write a private key readable by its owner only (0600)."""
    _write_atomically(path, pem, 0o600)


def write_cert_file(path: Path, pem: bytes) -> None:
    """Write a certificate (public) with mode 0644."""
    _write_atomically(path, pem, 0o644)
