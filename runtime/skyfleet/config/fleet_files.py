"""Where a fleet's files live and what they are called: the one statement of the layout,
read by `skyfleet certs`, the client, the local fleet and the local stack's program.
Nothing here writes a file or imports more than pathlib, so any of them may use it.

    TLS folder:  ca.pem, ca.key, NAME.pem, NAME.key   (`skyfleet certs` writes it)
    local fleet: DIR/tls/                             the TLS folder above
                 DIR/policy/fleet.key, fleet.pub      the policy signing key, its public half
                 DIR/policy/source/                   the folder agents watch
                 DIR/agents/NAME.toml                 each agent's config
                 DIR/state/NAME/                      each agent's state (adopted policy)
                 DIR/logs/NAME.log                    each agent's JSON log lines
"""

from __future__ import annotations

from pathlib import Path

CA_CERT = "ca.pem"
CA_KEY = "ca.key"


def cert_name(identity: str) -> str:
    return f"{identity}.pem"


def key_name(identity: str) -> str:
    return f"{identity}.key"


class FleetPaths:
    """The local fleet's folder, by the layout above."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.tls = root / "tls"
        self.agents = root / "agents"
        self.policy = root / "policy"
        self.policy_source = self.policy / "source"
        self.signing_key = self.policy / "fleet.key"
        self.trusted_key = self.policy / "fleet.pub"
        self.logs = root / "logs"

    def cert_path(self, identity: str) -> Path:
        return self.tls / cert_name(identity)

    def key_path(self, identity: str) -> Path:
        return self.tls / key_name(identity)

    def config_path(self, name: str) -> Path:
        return self.agents / f"{name}.toml"

    def log_path(self, name: str) -> Path:
        return self.logs / f"{name}.log"

    def state_path(self, name: str) -> Path:
        return self.root / "state" / name
