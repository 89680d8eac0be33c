"""The on-disk layout of a local fleet: one fleet CA, a certificate and a TOML config per
agent (the same format cloud-init writes on cloud hosts), and an admin certificate.

    DIR/tls/ca.pem, ca.key, admin.pem, admin.key, <node>.pem, <node>.key
    DIR/policy/fleet.key, fleet.pub   the policy signing key; agents trust fleet.pub
    DIR/policy/source/                the folder agents watch (infra's local publication)
    DIR/agents/<node>.toml
    DIR/state/<node>/
"""

from __future__ import annotations

import shutil
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

from skyfleet.policy.signing import generate_signing_key
from skyfleet.security.certs import (
    create_ca,
    issue_admin_cert,
    issue_node_cert,
    write_cert_file,
    write_key_file,
)


@dataclass(frozen=True, slots=True)
class AgentSpec:
    name: str
    cloud: str
    zone: str
    address: str
    """host:port the agent binds to and advertises."""
    region: str = "local"
    seeds: tuple[str, ...] = ()
    profile: str = "local"
    overrides: dict[str, float | int] = field(default_factory=dict)
    """MembershipConfig fields on top of `profile`."""
    netns: str | None = None
    """Network namespace the agent runs in (see localfleet.netns); None: this namespace."""
    metrics_port: int = 0
    """Port of the agent's Prometheus endpoint on its own address; 0: none."""

    @property
    def metrics_address(self) -> str:
        """host:port of the metrics endpoint (the agent's own host), or empty."""
        if not self.metrics_port:
            return ""
        return f"{self.address.rpartition(':')[0]}:{self.metrics_port}"


def _toml_value(value: object) -> str:
    if isinstance(value, str):
        return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    return repr(value)


def render_config(spec: AgentSpec, root: Path) -> str:
    """The agent's TOML config (paths relative to the config file's folder)."""
    lines = [
        "[node]",
        f"name = {_toml_value(spec.name)}",
        f"cloud = {_toml_value(spec.cloud)}",
        f"region = {_toml_value(spec.region)}",
        f"zone = {_toml_value(spec.zone)}",
        f"bind = {_toml_value(spec.address)}",
        "",
        "[join]",
        f"seeds = {_toml_value(list(spec.seeds))}",
        "",
        "[tls]",
        'ca = "../tls/ca.pem"',
        f"cert = {_toml_value(f'../tls/{spec.name}.pem')}",
        f"key = {_toml_value(f'../tls/{spec.name}.key')}",
        "",
        "[policy]",
        'trusted_keys = ["../policy/fleet.pub"]',
        'source = "../policy/source"',
        "",
        "[membership]",
        f"profile = {_toml_value(spec.profile)}",
        *(f"{k} = {_toml_value(v)}" for k, v in sorted(spec.overrides.items())),
        "",
        "[agent]",
        f"state_dir = {_toml_value(f'../state/{spec.name}')}",
        f"metrics_bind = {_toml_value(spec.metrics_address)}",
    ]
    text = "\n".join(lines) + "\n"
    tomllib.loads(text)  # what we write must parse
    return text


class FleetLayout:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.tls = root / "tls"
        self.agents = root / "agents"
        self.policy = root / "policy"
        self.policy_source = self.policy / "source"
        self.signing_key = self.policy / "fleet.key"
        self.trusted_key = self.policy / "fleet.pub"
        self.logs = root / "logs"

    def config_path(self, name: str) -> Path:
        return self.agents / f"{name}.toml"

    def log_path(self, name: str) -> Path:
        """The agent's stderr: its JSON log lines."""
        return self.logs / f"{name}.log"

    def ensure_ca(self) -> None:
        """Create the fleet CA, the admin certificate and the policy signing key once;
        later calls reuse them."""
        self.tls.mkdir(parents=True, exist_ok=True)
        if not (self.tls / "ca.pem").exists():
            cert, key = create_ca("skyfleet local fleet CA")
            write_key_file(self.tls / "ca.key", key)
            write_cert_file(self.tls / "ca.pem", cert)
        self.policy_source.mkdir(parents=True, exist_ok=True)
        if not self.signing_key.exists():
            private, public = generate_signing_key()
            write_key_file(self.signing_key, private)
            write_cert_file(self.trusted_key, public)
        if not (self.tls / "admin.pem").exists():
            cert, key = issue_admin_cert(*self._ca(), "admin")
            write_key_file(self.tls / "admin.key", key)
            write_cert_file(self.tls / "admin.pem", cert)

    def write_agent(self, spec: AgentSpec) -> Path:
        """Certificate (CN = name, SAN = name + its IP) and config for one agent."""
        self.ensure_ca()
        host = spec.address.rpartition(":")[0]
        cert, key = issue_node_cert(*self._ca(), spec.name, [host])
        write_key_file(self.tls / f"{spec.name}.key", key)
        write_cert_file(self.tls / f"{spec.name}.pem", cert)
        self.agents.mkdir(parents=True, exist_ok=True)
        self.state_path(spec.name).mkdir(parents=True, exist_ok=True)
        path = self.config_path(spec.name)
        path.write_text(render_config(spec, self.root))
        return path

    def state_path(self, name: str) -> Path:
        return self.root / "state" / name

    def remove_agent(self, name: str) -> None:
        """Forget an agent as a deleted host is forgotten: its config, certificate, key
        and persisted state go (a new agent of that name starts clean); its log stays for
        the post-mortem."""
        for path in (self.config_path(name), self.tls / f"{name}.pem", self.tls / f"{name}.key"):
            path.unlink(missing_ok=True)
        shutil.rmtree(self.state_path(name), ignore_errors=True)

    def _ca(self) -> tuple[bytes, bytes]:
        return (self.tls / "ca.pem").read_bytes(), (self.tls / "ca.key").read_bytes()
