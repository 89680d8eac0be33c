"""The stack's secrets: fleet policy-signing key, fleet CA and the VPN pre-shared-key seed.

Cloud stacks hold them as Pulumi secret config (`pulumi config set --secret ...`), so they
stay encrypted in the stack file and state and reach resources only as secret Outputs.
The `local` stack has nothing worth encrypting and must run on a fresh checkout, so it
generates them once into `.skyfleet/local/` (mode 0600) and reuses them on every run.

Pre-shared keys: pulumi_random is not installed, and a PSK must be stable across runs (a
new one would re-key every tunnel), so each is HMAC-SHA256(vpnSecret, tunnel label):
deterministic, independent per tunnel, and unrecoverable without the stack secret.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
from dataclasses import dataclass
from pathlib import Path

import pulumi

LOCAL_STATE_DIR = Path(".skyfleet/local")
"""Relative to the repository root; `skyfleet:localStateDir` overrides it."""


@dataclass(frozen=True)
class StackSecrets:
    signing_key_pem: pulumi.Output[str]
    """ed25519 private key (PEM) that signs the policy document."""
    ca_cert_pem: pulumi.Output[str]
    ca_key_pem: pulumi.Output[str]
    vpn_secret: pulumi.Output[str]


def psk(vpn_secret: str, label: str) -> str:
    """A tunnel's pre-shared key. AWS accepts 8-64 chars of [A-Za-z0-9._] not starting with
    0, so the HMAC is rendered in that alphabet with a fixed letter prefix."""
    digest = hmac.new(vpn_secret.encode(), label.encode(), hashlib.sha256).digest()
    text = base64.b64encode(digest, altchars=b"._").decode().rstrip("=")
    return "k" + text[:47]


def from_config(config: pulumi.Config) -> StackSecrets:
    """Secrets of a cloud stack; a missing key fails naming it (ConfigMissingError)."""
    return StackSecrets(
        signing_key_pem=config.require_secret("fleetSigningKey"),
        ca_cert_pem=pulumi.Output.from_input(config.require("caCert")),
        ca_key_pem=config.require_secret("caKey"),
        vpn_secret=config.require_secret("vpnSecret"),
    )


def _write_private(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(data)


def ensure_local_secrets(state_dir: Path = LOCAL_STATE_DIR) -> dict[str, bytes]:
    """Create (once) and return the local stack's CA and signing key as PEM bytes."""
    from skyfleet.policy.signing import generate_signing_key
    from skyfleet.security.certs import create_ca

    files = {
        "ca_cert": state_dir / "ca.pem",
        "ca_key": state_dir / "ca.key",
        "signing_key": state_dir / "policy-signing.key",
        "signing_pub": state_dir / "policy-signing.pub",
    }
    if not all(p.is_file() for p in files.values()):
        ca_cert, ca_key = create_ca("skyfleet-local")
        private, public = generate_signing_key()
        for name, data in (
            ("ca_cert", ca_cert),
            ("ca_key", ca_key),
            ("signing_key", private),
            ("signing_pub", public),
        ):
            _write_private(files[name], data if isinstance(data, bytes) else data.encode())
    return {name: path.read_bytes() for name, path in files.items()}


def local_secrets(state_dir: Path = LOCAL_STATE_DIR) -> StackSecrets:
    found = ensure_local_secrets(state_dir)
    return StackSecrets(
        signing_key_pem=pulumi.Output.secret(found["signing_key"].decode()),
        ca_cert_pem=pulumi.Output.from_input(found["ca_cert"].decode()),
        ca_key_pem=pulumi.Output.secret(found["ca_key"].decode()),
        vpn_secret=pulumi.Output.secret(""),
    )
