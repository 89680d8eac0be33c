"""Mutual TLS for agent-to-agent and admin-to-agent gRPC.

Theory of operation
-------------------
Every agent listens with `server_credentials` (client certificates required, only the
fleet CA trusted) and dials with `channel_credentials` (its own certificate, the fleet CA
as the only root). The handshake therefore proves both ends hold a fleet certificate;
handlers then read *who* the caller is with `identity_from_context` and enforce
`require_sender` (a packet speaks only for its caller) or `require_admin`.

Naming the peer we dial. Agents dial IP addresses, but a node certificate names the node
(`DNS:<node name>`). When the expected name is known (a member learned through gossip),
`secure_channel` sets `grpc.ssl_target_name_override` to it, so the handshake fails unless
the peer's certificate was issued for that very node. Before join, a seed is only an
address: then nothing is overridden and gRPC checks the dialled IP against the
certificate's IPAddress SANs, which is why node certificates list the node's own IPs. The
alternative, skipping the check for seeds, would let any fleet member answer for any
address; we keep the check and ask the issuer for the IPs. Callers learn the seed's name
from its reply and pass it as `expected_name` on every later dial (the seed's own stream
stays open for it meanwhile: `PeerSender.adopt`).

How refused handshakes surface (grpcio 1.71, BoringSSL, TLS 1.3), observed on loopback:

- we reject the peer's certificate (another CA, expired): UNAVAILABLE, details contain
  `Ssl handshake failed (TSI_PROTOCOL_FAILURE): ... CERTIFICATE_VERIFY_FAILED: <reason>`;
- the peer's certificate does not carry the expected name: UNAVAILABLE,
  `Peer name <name> is not in peer certificate`;
- the peer rejects *our* certificate (another CA, expired, or none sent): under TLS 1.3
  the client has already finished its half of the handshake, so all it sees is UNAVAILABLE
  `failed to connect to all addresses; last error: UNAVAILABLE: <addr>: Socket closed`.
  The reason is only in the refusing peer's gRPC log (`Handshake failed with error ...`).
  A peer that dies in mid-handshake looks the same, so the message says "refused" but
  the operator confirms on the peer.

`describe_rpc_error` turns these into one line naming the peer by name and address.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import grpc

from skyfleet.config.agent import TlsFiles
from skyfleet.config.errors import ConfigError
from skyfleet.security.certs import (
    CertificateError,
    PeerIdentity,
    Role,
    check_chain,
    peer_identity,
)

ROLE_PHRASE = "certificate) may not"
"""In every refusal of a caller for its role (how refusals are counted: `call_gate.py`)."""
SENDER_PHRASE = "does not match the caller's certificate"
"""In every refusal of a packet that speaks for another node."""


def server_credentials(ca_pem: bytes, cert_pem: bytes, key_pem: bytes) -> grpc.ServerCredentials:
    """Credentials for an agent's server: present our certificate, require a client
    certificate issued by the fleet CA (nothing else is trusted)."""
    return grpc.ssl_server_credentials(
        [(key_pem, cert_pem)], root_certificates=ca_pem, require_client_auth=True
    )


class ReloadableServerCredentials:
    """Server credentials whose certificate and CA bundle can change while the server
    runs: gRPC asks the fetcher at each new handshake, and keeps what it has when told
    nothing changed (None). Connections already open keep the credentials they were
    made with, as TLS does."""

    def __init__(self, material: TlsMaterial) -> None:
        self._pending: grpc.ServerCertificateConfiguration | None = None
        self.credentials = grpc.dynamic_ssl_server_credentials(
            self._configuration(material),
            self._fetch,  # type: ignore[arg-type]  # None means no change (grpc's docs); the stubs omit it
            require_client_authentication=True,
        )

    @staticmethod
    def _configuration(material: TlsMaterial) -> grpc.ServerCertificateConfiguration:
        return grpc.ssl_server_certificate_configuration(
            [(material.key, material.cert)], root_certificates=material.ca
        )

    def replace(self, material: TlsMaterial) -> None:
        self._pending = self._configuration(material)

    def _fetch(self) -> grpc.ServerCertificateConfiguration | None:
        pending, self._pending = self._pending, None
        return pending


def channel_credentials(ca_pem: bytes, cert_pem: bytes, key_pem: bytes) -> grpc.ChannelCredentials:
    """Credentials for dialling an agent: trust only the fleet CA, present our certificate."""
    return grpc.ssl_channel_credentials(
        root_certificates=ca_pem, private_key=key_pem, certificate_chain=cert_pem
    )


def secure_channel(
    address: str,
    creds: grpc.ChannelCredentials,
    expected_name: str | None,
    options: Sequence[tuple[str, Any]] = (),
) -> grpc.aio.Channel:
    """Dial `address` (host:port) over mTLS, checking the peer's certificate against
    `expected_name` when known, else against the dialled host (see the module docstring)."""
    opts = list(options)
    if expected_name is not None:
        opts.append(("grpc.ssl_target_name_override", expected_name))
    return grpc.aio.secure_channel(address, creds, options=opts)


@dataclass(frozen=True, slots=True)
class TlsMaterial:
    """A node's (or admin's) TLS files, read and checked to fit together."""

    ca: bytes
    cert: bytes
    key: bytes = field(repr=False)
    identity: PeerIdentity
    """Who `cert` says we are; the agent checks it against `node.name`."""

    @classmethod
    def load(cls, files: TlsFiles, *, now: datetime | None = None) -> TlsMaterial:
        """Read the three PEM files; raise ConfigError naming the `tls.*` key at fault.

        Checked here so a wrong file fails the start with its key named, instead of every
        peer silently refusing the handshake later. Key bytes never enter a message.
        """
        pems = {part: _read(path, part) for part, path in _parts(files)}
        try:
            identity = check_chain(pems["ca"], pems["cert"], pems["key"], now=now)
        except CertificateError as exc:
            part = exc.part or "cert"
            raise ConfigError(f"tls.{part}: {getattr(files, part)}: {exc}") from None
        return cls(ca=pems["ca"], cert=pems["cert"], key=pems["key"], identity=identity)

    def server_credentials(self) -> grpc.ServerCredentials:
        return server_credentials(self.ca, self.cert, self.key)

    def channel_credentials(self) -> grpc.ChannelCredentials:
        return channel_credentials(self.ca, self.cert, self.key)


def _parts(files: TlsFiles) -> list[tuple[str, Path]]:
    return [("ca", files.ca), ("cert", files.cert), ("key", files.key)]


def _read(path: Path, part: str) -> bytes:
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise ConfigError(f"tls.{part}: cannot read {path}: {exc.strerror}") from None
    if b"-----BEGIN " not in data:
        raise ConfigError(f"tls.{part}: {path}: not a PEM file")
    return data


def identity_from_context(context: grpc.aio.ServicerContext) -> PeerIdentity:
    """The caller's identity, from the client certificate the handshake verified.

    Raises CertificateError when there is none (a server not started with
    `server_credentials`) or when it lacks a CN or role OU.
    """
    auth = context.auth_context()
    pems = list(auth.get("x509_pem_cert", ()))
    if not pems:
        raise CertificateError("the caller presented no client certificate")
    identity = peer_identity(pems[0])
    names = [n.decode() for n in auth.get("x509_common_name", ())]
    if names and names != [identity.name]:
        # gRPC extracts the CN itself; a disagreement means a certificate we cannot read
        # the same way as the TLS stack does, which must not authorise anything.
        raise CertificateError(f"CN mismatch between TLS stack {names} and certificate")
    return identity


async def _authenticated(context: grpc.aio.ServicerContext) -> PeerIdentity:
    try:
        return identity_from_context(context)
    except CertificateError as exc:
        await context.abort(grpc.StatusCode.UNAUTHENTICATED, f"caller not identified: {exc}")
        raise  # not reached: abort() raises; this tells type checkers without grpc stubs


async def require_role(context: grpc.aio.ServicerContext, *roles: Role,
                       what: str) -> PeerIdentity:
    """Return the caller's identity if its certificate has one of `roles`; otherwise abort
    the RPC with PERMISSION_DENIED naming the caller, its role and `what` it may not do
    (UNAUTHENTICATED if it has no readable identity)."""
    identity = await _authenticated(context)
    if identity.role not in roles:
        await context.abort(
            grpc.StatusCode.PERMISSION_DENIED,
            f"{identity.name} ({identity.role} {ROLE_PHRASE} {what}",
        )
    return identity


async def require_admin(context: grpc.aio.ServicerContext) -> PeerIdentity:
    """The caller's identity if it holds an admin certificate (see `require_role`)."""
    return await require_role(context, "admin", what="call admin methods")


async def require_sender(context: grpc.aio.ServicerContext, sender: str) -> PeerIdentity:
    """Return the caller's identity if it is the agent named `sender`; otherwise abort with
    PERMISSION_DENIED. Admin certificates never speak for a node, even with the same CN."""
    identity = await _authenticated(context)
    if identity.role != "agent" or identity.name != sender:
        await context.abort(
            grpc.StatusCode.PERMISSION_DENIED,
            f"sender {sender!r} {SENDER_PHRASE} ({identity.name}, {identity.role})",
        )
    return identity


def peer_label(address: str, expected_name: str | None) -> str:
    """How errors name a peer: `aws-1a-0 (10.0.0.5:7470)`, or the address of a seed."""
    return f"{expected_name} ({address})" if expected_name else address


_VERIFY_FAILED = re.compile(r"CERTIFICATE_VERIFY_FAILED: ([^'\"\n:]+)")
_NAME_MISMATCH = re.compile(r"Peer name (\S+) is not in peer certificate")
_HOSTNAME_CHECK = re.compile(
    # grpcio >= 1.74 says this instead of naming the peer name: the name dialled is the
    # label's node name, or (a seed dialled by address) the address itself.
    r"ipv[46]:\[?([0-9a-fA-F.:]+?)\]?:\d+: .*Hostname Verification Check failed"
)
_CLOSED_WHILE_CONNECTING = re.compile(
    # "Socket closed" is what we observe; a reset is the same refusal when the peer closes
    # with our HTTP/2 preface still unread.
    r"^failed to connect to all addresses; .*: (Socket closed|Connection reset by peer)$"
)
_VERIFY_REASONS = {
    "unable to get local issuer certificate": "not issued by the fleet CA",
    "certificate has expired": "expired",
    "certificate is not yet valid": "not yet valid",
    "unsupported certificate purpose": "not a server certificate: an admin's?",
}


def _name_mismatch(name: str) -> str:
    try:
        ipaddress.ip_address(name)
    except ValueError:
        # Dialled by name: the address now belongs to another node (a replaced host).
        return f"its certificate was not issued for {name!r} (another node answers here)"
    return f"its certificate does not list IP {name} (issue it with --host {name})"


def describe_rpc_error(exc: grpc.aio.AioRpcError, peer: str) -> str:
    """One line for logs and CLI output saying what went wrong with `peer` (see
    `peer_label`), telling TLS refusals apart from other failures."""
    details = exc.details() or ""
    if exc.code() == grpc.StatusCode.UNAVAILABLE:
        if mismatch := _NAME_MISMATCH.search(details):
            return f"peer {peer} rejected: {_name_mismatch(mismatch.group(1))}"
        if check := _HOSTNAME_CHECK.search(details):
            named, _, _ = peer.partition(" (")  # peer_label's form: "name (address)"
            dialled = named if named != peer else check.group(1)
            return f"peer {peer} rejected: {_name_mismatch(dialled)}"
        if verify := _VERIFY_FAILED.search(details):
            reason = verify.group(1).strip()
            return (
                f"peer {peer} rejected: its certificate failed verification "
                f"({_VERIFY_REASONS.get(reason, reason)})"
            )
        if "Ssl handshake failed" in details:
            return f"peer {peer}: TLS handshake failed ({details})"
        if _CLOSED_WHILE_CONNECTING.search(details):
            # Under TLS 1.3 this is how a peer refusing our certificate looks from here;
            # the peer's own log names the reason.
            return (
                f"peer {peer} refused: TLS handshake failed "
                "(certificate not from the fleet CA, expired, or missing)"
            )
    return f"peer {peer}: {exc.code().name}: {details}"
