"""The stack's secrets: fleet policy-signing key, fleet CA and the VPN pre-shared-key seed.

Cloud stacks hold them as Pulumi secret config (`pulumi config set --secret ...`), so they
stay encrypted in the stack file and state and reach resources only as secret Outputs.
The `local` stack has nothing worth encrypting and must run on a fresh checkout: its CA
and signing key are the local fleet's own (`skyfleet.localfleet.layout.FleetLayout` under
`.skyfleet/local/`, created once, mode 0600), the same files `skyfleet local demo` uses.

Pre-shared keys: pulumi_random is not installed, and a PSK must be stable across runs (a
new one would re-key every tunnel), so each is HMAC-SHA256(vpnSecret, tunnel label):
deterministic, independent per tunnel, and unrecoverable without the stack secret.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from dataclasses import dataclass
from pathlib import Path

import pulumi

from skyfleet.localfleet.layout import FleetLayout

LOCAL_STATE_DIR = Path(".skyfleet/local")
"""Relative to the repository root; `skyfleet:localStateDir` overrides it."""


@dataclass(frozen=True)
class StackSecrets:
    signing_key_pem: pulumi.Output[str]
    """ed25519 private key (PEM) that signs the policy document."""
    ca_cert_pem: pulumi.Output[str]
    """The issuing CA: it signs every node certificate."""
    ca_key_pem: pulumi.Output[str]
    vpn_secret: pulumi.Output[str]
    ca_trust_extra: str = ""
    """More CA certificates hosts trust but that issue nothing (the old CA, or the next
    one, while the CA rotates: docs/operations.md)."""
    policy_keys_extra: str = ""
    """More ed25519 public keys hosts trust for policies (while the signing key rotates)."""

    @property
    def ca_bundle_pem(self) -> pulumi.Output[str]:
        """What hosts trust: the issuing CA, then the extra ones."""
        return self.ca_cert_pem.apply(lambda ca: _bundle(ca, self.ca_trust_extra))


def _bundle(first: str, extra: str) -> str:
    return first.rstrip("\n") + "\n" + (extra.rstrip("\n") + "\n" if extra.strip() else "")


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
        ca_trust_extra=config.get("caTrustExtra") or "",
        policy_keys_extra=config.get("policyKeysExtra") or "",
    )


def trusted_keys_pem(public_pem: str, secrets: StackSecrets) -> str:
    """The trusted-keys file hosts get: the signing key's public half, then the extras."""
    return _bundle(public_pem, secrets.policy_keys_extra)


def local_secrets(state_dir: Path = LOCAL_STATE_DIR) -> StackSecrets:
    """The local fleet's CA and policy signing key, created on first use."""
    layout = FleetLayout(state_dir)
    layout.ensure_ca()
    return StackSecrets(
        signing_key_pem=pulumi.Output.secret(layout.signing_key.read_text()),
        ca_cert_pem=pulumi.Output.from_input((layout.tls / "ca.pem").read_text()),
        ca_key_pem=pulumi.Output.secret((layout.tls / "ca.key").read_text()),
        vpn_secret=pulumi.Output.secret(""),
    )
