"""HostBootstrap: one host's certificate and the cloud-init that brings it into the fleet."""

from __future__ import annotations

from dataclasses import dataclass, field

import pulumi

from infra import bootstrap
from infra.components.node_cert import NodeCertificate
from infra.runtime_bundle import RuntimeBundle
from infra.topology import HostSpec


@dataclass(frozen=True)
class HostBootstrapArgs:
    host: HostSpec
    seeds: tuple[str, ...]
    environment: str
    runtime: RuntimeBundle
    ca_cert_pem: pulumi.Input[str]
    ca_key_pem: pulumi.Input[str]
    fetch_download: pulumi.Input[str]
    """Shell that downloads store object "$1" to "$tmp" with the host's cloud identity."""


class HostBootstrap(pulumi.ComponentResource):
    """The node certificate (CN = node name) and the host's cloud-init user data, which
    holds the node's key but not its certificate (published in the store)."""

    agent_config: str
    user_data: pulumi.Output[str]

    def __init__(
        self, name: str, args: HostBootstrapArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__("skyfleet:infra:HostBootstrap", name, None, opts)
        host = args.host
        self.cert = NodeCertificate(
            f"{name}-cert",
            node_name=host.name,
            hosts=[str(host.address)],
            ca_cert_pem=args.ca_cert_pem,
            ca_key_pem=args.ca_key_pem,
            opts=pulumi.ResourceOptions(parent=self),
        )
        # Cloud hosts sit in one region per cloud but talk across clouds over the VPN:
        # the WAN profile's longer timeouts keep inter-cloud RTTs from looking like failure.
        self.agent_config = bootstrap.render_agent_config(
            host,
            args.seeds,
            bootstrap.AgentFiles(),
            profile="wan",
            environment=args.environment,
        )
        self.user_data = pulumi.Output.secret(
            pulumi.Output.all(self.cert.key_pem, args.fetch_download).apply(
                lambda v: bootstrap.render_cloud_init(
                    node=host.name,
                    key_pem=v[0],
                    fetch_download=v[1],
                    bundle_object=args.runtime.object_name,
                    bundle_sha256=args.runtime.sha256,
                )
            )
        )
        self.register_outputs({"agent_config": self.agent_config})


@dataclass(frozen=True)
class FleetBootstrap:
    """What every host's bootstrap shares; host components add their cloud's fetch
    command (which may depend on resources they create, e.g. Azure's identity)."""

    environment: str
    runtime: RuntimeBundle
    """Published by `FleetStore` on every cloud; hosts install it by hash."""
    seeds: dict[str, tuple[str, ...]]
    """Per host name."""
    ca_cert_pem: pulumi.Input[str]
    ca_key_pem: pulumi.Input[str]
    trusted_key_pem: pulumi.Input[str]
    """Public half of the fleet signing key; published in every cloud's store."""
    certs: dict[str, pulumi.Output[str]] = field(default_factory=dict)
    """Node -> its certificate, filled by `for_host`: `FleetStore` publishes each."""
    configs: dict[str, str] = field(default_factory=dict)
    """Node -> its agent config, filled by `for_host`, published the same way."""

    def for_host(self, name: str, host: HostSpec, fetch_download: pulumi.Input[str],
                 parent: pulumi.Resource) -> HostBootstrap:
        boot = HostBootstrap(
            name,
            HostBootstrapArgs(
                host=host, seeds=self.seeds[host.name], environment=self.environment,
                runtime=self.runtime, ca_cert_pem=self.ca_cert_pem,
                ca_key_pem=self.ca_key_pem, fetch_download=fetch_download,
            ),
            pulumi.ResourceOptions(parent=parent),
        )
        self.certs[host.name] = boot.cert.cert_pem
        self.configs[host.name] = boot.agent_config
        return boot
