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
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from skyfleet.config.agent import (
    AgentConfig,
    NodeIdentity,
    PolicySettings,
    TlsFiles,
    render_agent_config,
)
from skyfleet.config.fleet_files import CA_CERT, CA_KEY, FleetPaths
from skyfleet.config.membership import membership_preset
from skyfleet.config.tasks import TaskSettings
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
    handlers: tuple[str, ...] | None = None
    """Task handlers it serves (`[tasks] handlers`); None: every installed one."""
    handler_config: dict[str, dict[str, Any]] = field(default_factory=dict)
    """`[handlers.<name>]` tables: each handler's own settings."""

    @property
    def metrics_address(self) -> str:
        """host:port of the metrics endpoint (the agent's own host), or empty."""
        if not self.metrics_port:
            return ""
        return f"{self.address.rpartition(':')[0]}:{self.metrics_port}"


class FleetLayout(FleetPaths):
    """The fleet's folder (`skyfleet.config.fleet_files`), and what writes its files."""

    def ensure_ca(self) -> None:
        """Create the fleet CA, the admin certificate and the policy signing key once;
        later calls reuse them."""
        self.tls.mkdir(parents=True, exist_ok=True)
        if not (self.tls / CA_CERT).exists():
            cert, key = create_ca("skyfleet local fleet CA")
            write_key_file(self.tls / CA_KEY, key)
            write_cert_file(self.tls / CA_CERT, cert)
        self.policy_source.mkdir(parents=True, exist_ok=True)
        if not self.signing_key.exists():
            private, public = generate_signing_key()
            write_key_file(self.signing_key, private)
            write_cert_file(self.trusted_key, public)
        if not self.cert_path("admin").exists():
            cert, key = issue_admin_cert(*self._ca(), "admin")
            write_key_file(self.key_path("admin"), key)
            write_cert_file(self.cert_path("admin"), cert)

    def agent_config(self, spec: AgentSpec) -> AgentConfig:
        """What `write_agent` writes for `spec`. Its paths are relative to the config's
        folder as the parser joins them (`agents/../tls/...`), so they are written
        relative and the fleet's folder can move."""
        def here(path: Path) -> Path:
            """`path` as the config's folder reaches it."""
            return self.agents / ".." / path.relative_to(self.root)

        return AgentConfig(
            node=NodeIdentity(
                name=spec.name,
                cloud=spec.cloud,
                region=spec.region,
                zone=spec.zone,
                address=spec.address,
            ),
            bind=spec.address,
            seeds=spec.seeds,
            tls=TlsFiles(
                ca=here(self.tls / CA_CERT),
                cert=here(self.cert_path(spec.name)),
                key=here(self.key_path(spec.name)),
            ),
            membership=membership_preset(spec.profile).with_overrides(spec.overrides),
            membership_profile=spec.profile,
            policy=PolicySettings(
                trusted_keys=(here(self.trusted_key),), source=here(self.policy_source)
            ),
            tasks=TaskSettings(handlers=spec.handlers),
            state_dir=here(self.state_path(spec.name)),
            metrics_bind=spec.metrics_address,
            handler_config=spec.handler_config,
        )

    def write_agent(self, spec: AgentSpec) -> Path:
        """Certificate (CN = name, SAN = name + its IP) and config for one agent."""
        self.ensure_ca()
        host = spec.address.rpartition(":")[0]
        cert, key = issue_node_cert(*self._ca(), spec.name, [host])
        write_key_file(self.key_path(spec.name), key)
        write_cert_file(self.cert_path(spec.name), cert)
        self.agents.mkdir(parents=True, exist_ok=True)
        self.state_path(spec.name).mkdir(parents=True, exist_ok=True)
        path = self.config_path(spec.name)
        path.write_text(render_agent_config(self.agent_config(spec), self.agents), "utf-8")
        return path

    def remove_agent(self, name: str) -> None:
        """Forget an agent as a deleted host is forgotten: its config, certificate, key
        and persisted state go (a new agent of that name starts clean); its log stays for
        the post-mortem."""
        for path in (self.config_path(name), self.cert_path(name), self.key_path(name)):
            path.unlink(missing_ok=True)
        shutil.rmtree(self.state_path(name), ignore_errors=True)

    def _ca(self) -> tuple[bytes, bytes]:
        return (self.tls / CA_CERT).read_bytes(), (self.tls / CA_KEY).read_bytes()
