"""GcpHosts: the GCP side of the fleet in one region.

A custom-mode VPC with a subnet per planned zone range, a firewall that admits the agent
and metrics ports from fleet ranges to agent-tagged instances only (GCP denies all other
ingress implicitly), Cloud NAT for egress, a service account that reads the published
policy, and one shielded VM per planned host without an external address or project SSH
keys.
"""

from __future__ import annotations

from dataclasses import dataclass

import pulumi
import pulumi_gcp as gcp

from infra import images, ipam, publication
from infra.components.host_args import HostsArgs

AGENT_TAG = "skyfleet-agent"


@dataclass(frozen=True)
class GcpHostsArgs(HostsArgs):
    store_bucket: str
    """GCS bucket holding the policy and the runtime bundle (see infra.publication)."""


class GcpHosts(pulumi.ComponentResource):
    def __init__(
        self, name: str, args: GcpHostsArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__("skyfleet:infra:GcpHosts", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        cloud = args.cloud
        labels = {"skyfleet-environment": args.environment}
        self.network = gcp.compute.Network(
            f"{name}-vpc", auto_create_subnetworks=False, routing_mode="GLOBAL", opts=child
        )
        self.subnets = {}
        for zone, cidr in zip(
            cloud.zones, ipam.zone_subnets(cloud.cidr, len(cloud.zones)), strict=True
        ):
            self.subnets[zone] = gcp.compute.Subnetwork(
                f"{name}-{zone}", network=self.network.id, region=cloud.region,
                ip_cidr_range=str(cidr), private_ip_google_access=True, opts=child,
            )
        fleet = [str(r) for r in args.fleet_ranges]
        gcp.compute.Firewall(
            f"{name}-agent", network=self.network.id, direction="INGRESS",
            source_ranges=fleet + [str(r) for r in args.admin_ranges],
            target_tags=[AGENT_TAG],
            allows=[{"protocol": "tcp", "ports": [str(args.agent_port)]}], opts=child,
        )
        gcp.compute.Firewall(
            f"{name}-metrics", network=self.network.id, direction="INGRESS",
            source_ranges=fleet, target_tags=[AGENT_TAG],
            allows=[{"protocol": "tcp", "ports": [str(args.metrics_port)]}], opts=child,
        )
        nat_router = gcp.compute.Router(
            f"{name}-nat", network=self.network.id, region=cloud.region, opts=child
        )
        gcp.compute.RouterNat(
            f"{name}-nat", router=nat_router.name, region=cloud.region,
            nat_ip_allocate_option="AUTO_ONLY",
            source_subnetwork_ip_ranges_to_nat="ALL_SUBNETWORKS_ALL_IP_RANGES", opts=child,
        )
        self.service_account = gcp.serviceaccount.Account(
            f"{name}-hosts", account_id=f"skyfleet-{args.environment}-hosts",
            display_name="Skyfleet agent hosts", opts=child,
        )
        fetch = publication.gcp_download(args.store_bucket)
        image = gcp.compute.get_image_output(family=images.GCP_FAMILY,
                                             project=images.GCP_PROJECT,
                                             opts=pulumi.InvokeOptions(parent=self))
        self.instances = {}
        for zone, hosts in args.by_zone():
            chain = args.rollout
            after = chain.after_tag("skyfleet-after")
            for host in hosts:
                boot = args.boot.for_host(f"{name}-{host.name}", host, fetch, self)
                self.instances[host.name] = gcp.compute.Instance(
                    f"{name}-{host.name}", name=host.name, zone=host.zone,
                    machine_type=cloud.instance_size, tags=[AGENT_TAG],
                    labels={**labels, **after},
                    boot_disk={"initialize_params": {"image": image.self_link, "size": 20,
                                                     "type": "pd-balanced"}},
                    network_interfaces=[{"subnetwork": self.subnets[host.zone].id,
                                         "network_ip": str(host.address)}],
                    metadata={"user-data": boot.user_data,
                              "block-project-ssh-keys": "TRUE", "enable-oslogin": "TRUE"},
                    service_account={"email": self.service_account.email,
                                     "scopes": ["cloud-platform"]},
                    shielded_instance_config={"enable_secure_boot": True, "enable_vtpm": True,
                                              "enable_integrity_monitoring": True},
                    # New user data (a new runtime bundle) is a new host, zone after zone
                    # (`zone_rollout`); a newer image in the family is rolled deliberately.
                    opts=pulumi.ResourceOptions(
                        parent=self, ignore_changes=["bootDisk.initializeParams.image"],
                        replace_on_changes=["metadata"], delete_before_replace=True),
                )
            chain.gate(chain.label("gcp", cloud.region, zone), [h.name for h in hosts],
                       [self.instances[h.name].id for h in hosts], self)
        self.register_outputs({"network": self.network.id,
                               "hosts": [h.name for h in args.hosts]})
