"""The composition behind `__main__`: config -> components -> stack outputs.

Kept as a function (not module-level code) so tests can run it under Pulumi's mocks with
any config, and so importing the package never creates a resource.
"""

from __future__ import annotations

from pathlib import Path

import pulumi
from cryptography.hazmat.primitives import serialization

from infra import publication
from infra import stack_secrets as secrets
from infra.components.bootstrap import FleetBootstrap
from infra.components.local_hosts import LocalHosts, LocalHostsArgs
from infra.components.local_network import (
    IngressRule,
    LocalNetwork,
    LocalNetworkArgs,
    resolve_mode,
)
from infra.components.local_policy import LocalPolicyFile
from infra.config import StackConfig, StackConfigError, key, load_stack_config
from infra.runtime_bundle import BUNDLE_CACHE, build_bundle
from infra.topology import HostSpec, plan_hosts, seeds_for
from skyfleet.localfleet.layout import FleetLayout
from skyfleet.localfleet.netns import FLEET_SOURCE, HOST_SOURCE


def public_key_pem(private_pem: str) -> str:
    """The trusted key agents get: the public half of the fleet signing key."""
    private = serialization.load_pem_private_key(private_pem.encode(), password=None)
    return private.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    ).decode()


def compose(config: pulumi.Config, project: str, stack: str, root: Path) -> dict[str, object]:
    """Build the whole stack in the project folder `root`; returns (and exports) the
    stack outputs."""
    cfg = load_stack_config(config.get, stack, root)
    hosts = plan_hosts(cfg)
    stack_secrets = (
        secrets.local_secrets(cfg.local_state_dir) if cfg.environment == "local"
        else secrets.from_config(config)
    )
    trusted_key = pulumi.Output.unsecret(stack_secrets.signing_key_pem.apply(public_key_pem))
    outputs: dict[str, object] = {
        "hosts": {c.cloud: [h.name for h in hosts if h.cloud == c.cloud] for c in cfg.clouds},
        "caCert": stack_secrets.ca_cert_pem,
        "policyVersion": cfg.policy_version,
        "policyHash": publication.policy_hash(cfg.policy_document),
    }
    if cfg.environment == "local":
        outputs.update(_compose_local(cfg, hosts, trusted_key, stack_secrets))
    else:
        boot = FleetBootstrap(
            environment=cfg.environment,
            runtime=build_bundle(cfg.runtime_version, BUNDLE_CACHE, index=cfg.runtime_index),
            seeds={h.name: seeds_for(h, hosts) for h in hosts},
            ca_cert_pem=stack_secrets.ca_cert_pem, ca_key_pem=stack_secrets.ca_key_pem,
            trusted_key_pem=trusted_key.apply(
                lambda pem: secrets.trusted_keys_pem(pem, stack_secrets)),
        )
        outputs.update(_compose_clouds(cfg, hosts, boot, stack_secrets, config, project, stack))
    for name, value in outputs.items():
        pulumi.export(name, value)
    return outputs


def _compose_local(cfg: StackConfig, hosts: tuple[HostSpec, ...],
                   trusted_key: pulumi.Output[str],
                   stack_secrets: secrets.StackSecrets) -> dict[str, object]:
    """Agent processes on this machine, on a LocalNetwork (namespaces or loopback), and the
    policy in the file they watch; outputs for `skyfleet local` and operators."""
    layout = FleetLayout(cfg.local_state_dir)
    agents = tuple((h.name, h.cloud) for h in hosts)
    clouds = tuple(c.cloud for c in cfg.clouds)
    # The agent port also serves the admin API: fleet, this machine and adminRanges only.
    sources = (FLEET_SOURCE, HOST_SOURCE, *(str(r) for r in cfg.admin_ranges))
    last = len(hosts) - 1
    network = LocalNetwork("network", LocalNetworkArgs(
        mode=resolve_mode(cfg.local_network), agents=agents, clouds=clouds,
        ingress=(IngressRule((cfg.agent_port, cfg.agent_port + last), sources),
                 IngressRule((cfg.metrics_port, cfg.metrics_port + last), sources))))
    path = layout.policy_source / publication.POLICY_OBJECT
    ports = {h.name: h.port for h in hosts}
    endpoints = network.addresses.apply(
        lambda addresses: {n: f"{addresses[n]}:{p}" for n, p in ports.items()})
    policy = LocalPolicyFile(
        "policy", path=str(path),
        content=publication.signed_envelope(cfg.policy_document, stack_secrets.signing_key_pem),
        version=cfg.policy_version, hash=publication.policy_hash(cfg.policy_document),
        endpoints=endpoints, state_dir=str(cfg.local_state_dir),
    )
    fleet = LocalHosts("local", LocalHostsArgs(
        environment=cfg.environment, hosts=hosts, network=network, endpoints=endpoints,
        state_dir=cfg.local_state_dir, ca_cert_pem=stack_secrets.ca_cert_pem,
        trusted_key_pem=trusted_key,
        # Agents start with the policy already in the folder they watch: their first
        # status carries it, so a new fleet agrees on its policy as soon as it has joined.
    ), pulumi.ResourceOptions(depends_on=[policy]))
    seed_names = [h.name for h in hosts if h.seed]
    return {
        "endpoints": endpoints,
        "seeds": endpoints.apply(lambda e: [e[n] for n in seed_names]),
        "policyLocations": {"local": f"file:{path}"},
        "stateDir": str(cfg.local_state_dir),
        "network": pulumi.Output.all(network.mode, network.prefix, network.block,
                                     network.gateway).apply(
            lambda v: {"mode": v[0], "prefix": v[1], "block": v[2], "gateway": v[3],
                       "clouds": list(clouds), "agents": [list(a) for a in agents]}),
        "agents": pulumi.Output.all(*(
            pulumi.Output.all(a.pid, a.config, a.log, a.netns)
            for a in fleet.agents.values())).apply(
            lambda rows: {name: {"pid": r[0], "config": r[1], "log": r[2], "netns": r[3]}
                          for name, r in zip(fleet.agents, rows, strict=True)}),
    }


def _compose_clouds(cfg: StackConfig, hosts: tuple[HostSpec, ...], boot: FleetBootstrap,
                    stack_secrets: secrets.StackSecrets, config: pulumi.Config, project: str,
                    stack: str) -> dict[str, object]:
    # The cloud components import their provider SDKs; the local stack never needs them.
    from infra import mesh_plan
    from infra.components.aws_hosts import AwsHosts, AwsHostsArgs
    from infra.components.azure_hosts import AzureHosts, AzureHostsArgs
    from infra.components.fleet_store import FleetStore, FleetStoreArgs
    from infra.components.gcp_hosts import GcpHosts, GcpHostsArgs
    from infra.components.host_args import SharedHostsArgs
    from infra.components.mesh import (
        AwsEndpointArgs,
        AzureEndpointArgs,
        GcpEndpointArgs,
        Mesh,
        MeshArgs,
    )
    from infra.components.node_cert import NodeCertificate
    from infra.components.zone_rollout import RolloutChain

    env = cfg.environment
    # The rollout's own identity: an admin certificate, to watch each zone rejoin.
    identity = NodeCertificate("rollout-identity", node_name="pulumi-rollout", hosts=[],
                               ca_cert_pem=stack_secrets.ca_cert_pem,
                               ca_key_pem=stack_secrets.ca_key_pem, role="admin")
    rollout = RolloutChain(
        runtime=boot.runtime.sha256, endpoints={h.name: h.endpoint for h in hosts},
        ca_pem=stack_secrets.ca_bundle_pem, admin_cert_pem=identity.cert_pem,
        admin_key_pem=identity.key_pem)
    common = SharedHostsArgs(environment=env, boot=boot, fleet_ranges=cfg.fleet_ranges,
                             admin_ranges=cfg.admin_ranges, agent_port=cfg.agent_port,
                             metrics_port=cfg.metrics_port, rollout=rollout)
    on = {c.cloud: c for c in cfg.clouds}
    of = {c.cloud: tuple(h for h in hosts if h.cloud == c.cloud) for c in cfg.clouds}
    aws_hosts = azure_hosts = gcp_hosts = None
    if "aws" in on:
        aws_hosts = AwsHosts("aws", AwsHostsArgs(
            cloud=on["aws"], hosts=of["aws"],
            store_bucket=publication.aws_bucket(env, project, stack), **common))
    if "azure" in on:
        ssh_key = config.get("azureSshPublicKey")
        if not ssh_key:
            raise StackConfigError(f"{key('azureSshPublicKey')}: required when azure is enabled")
        azure_hosts = AzureHosts("azure", AzureHostsArgs(
            cloud=on["azure"], hosts=of["azure"], ssh_public_key=ssh_key,
            store_account=publication.azure_storage_account(env, project, stack), **common))
    if "gcp" in on:
        gcp_hosts = GcpHosts("gcp", GcpHostsArgs(
            cloud=on["gcp"], hosts=of["gcp"],
            store_bucket=publication.gcs_bucket(env, project, stack), **common))
    published = FleetStore("policy", FleetStoreArgs(
        environment=env, document=cfg.policy_document,
        signing_key_pem=stack_secrets.signing_key_pem, runtime=boot.runtime,
        ca_cert_pem=stack_secrets.ca_bundle_pem, trusted_key_pem=boot.trusted_key_pem,
        host_certs={cloud: {h.name: boot.certs[h.name] for h in of[cloud]} for cloud in on},
        host_configs={cloud: {h.name: boot.configs[h.name] for h in of[cloud]}
                      for cloud in on},
        project=project, stack=stack,
        aws_region=on["aws"].region if aws_hosts else None,
        aws_reader_role=aws_hosts.role.arn if aws_hosts else None,
        azure_resource_group=azure_hosts.resource_group.name if azure_hosts else None,
        azure_location=on["azure"].region if azure_hosts else None,
        azure_reader_principal=azure_hosts.identity.principal_id if azure_hosts else None,
        gcp_region=on["gcp"].region if gcp_hosts else None,
        gcp_reader_email=gcp_hosts.service_account.email if gcp_hosts else None,
    ))
    outputs: dict[str, object] = {
        "endpoints": {h.name: h.endpoint for h in hosts},
        "seeds": sorted(h.endpoint for h in hosts if h.seed),
        "policyLocations": published.locations,
        "policyEnvelope": published.envelope,
        "runtimeBundle": {"object": boot.runtime.object_name, "sha256": boot.runtime.sha256},
        "tunnels": [],
        "rolloutOrder": rollout.zones,
    }
    if len(on) < 2:
        return outputs
    mesh = Mesh("mesh", MeshArgs(
        environment=env, tunnels=mesh_plan.plan_mesh(env, tuple(on)),
        key_generations=cfg.tunnel_key_generations,
        aws=AwsEndpointArgs(region=on["aws"].region, vpc_id=aws_hosts.vpc.id,
                            route_table_id=aws_hosts.route_table.id) if aws_hosts else None,
        azure=AzureEndpointArgs(location=on["azure"].region,
                                resource_group=azure_hosts.resource_group.name,
                                gateway_subnet_id=azure_hosts.gateway_subnet.id)
        if azure_hosts else None,
        gcp=GcpEndpointArgs(region=on["gcp"].region, network_id=gcp_hosts.network.id)
        if gcp_hosts else None,
    ))
    outputs["tunnels"] = mesh.tunnel_outputs
    return outputs
