"""The stack's secrets: the fleet policy-signing key and the fleet CA.

Cloud stacks hold them as Pulumi secret config (`pulumi config set --secret ...`), so they
stay encrypted in the stack file and state and reach resources only as secret Outputs.
The `local` stack has nothing worth encrypting and must run on a fresh checkout: its CA
and signing key are the local fleet's own (`skyfleet.localfleet.layout.FleetLayout` under
`.skyfleet/local/`, created once, mode 0600), the same files `skyfleet local demo` uses.

The VPN tunnels' pre-shared keys are not config: each is a pulumi-random password of its
own, kept secret in state (`infra.components.mesh`).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pulumi

from skyfleet.config.fleet_files import CA_CERT, CA_KEY
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


def from_config(config: pulumi.Config) -> StackSecrets:
    """Secrets of a cloud stack; a missing key fails naming it (ConfigMissingError)."""
    return StackSecrets(
        signing_key_pem=config.require_secret("fleetSigningKey"),
        ca_cert_pem=pulumi.Output.from_input(config.require("caCert")),
        ca_key_pem=config.require_secret("caKey"),
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
        ca_cert_pem=pulumi.Output.from_input((layout.tls / CA_CERT).read_text()),
        ca_key_pem=pulumi.Output.secret((layout.tls / CA_KEY).read_text()),
    )
