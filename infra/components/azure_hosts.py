"""AzureHosts: the Azure side of the fleet in one location (azure-native).

A resource group, a VNet with a subnet per availability zone plus the GatewaySubnet the
VPN gateway needs, an NSG that admits the agent and metrics ports from fleet ranges and
denies the rest of the VNet (Azure's default rules allow all VNet and VPN traffic), a NAT
gateway for egress, a user-assigned managed identity that reads the published policy, and
one zonal VM per planned host with encryption at host and no password or SSH exposure.
"""

from __future__ import annotations

import base64
from dataclasses import dataclass

import pulumi
import pulumi_azure_native as azure

from infra import images, ipam, publication
from infra.components.host_args import HostsArgs
from infra.topology import HostSpec


@dataclass(frozen=True)
class AzureHostsArgs(HostsArgs):
    ssh_public_key: str
    """Azure requires one; port 22 is never opened, so it is a break-glass key for the
    serial console / Bastion only."""
    store_account: str
    """Storage account holding the policy and the runtime bundle (see infra.publication)."""


def _rule(name: str, priority: int, port: str, sources: list[str],
          access: str) -> azure.network.SecurityRuleArgsDict:
    return {
        "name": name, "priority": priority, "direction": "Inbound", "access": access,
        "protocol": "Tcp" if port != "*" else "*", "source_port_range": "*",
        "destination_port_range": port, "source_address_prefixes": sources,
        "destination_address_prefix": "*",
    }


class AzureHosts(pulumi.ComponentResource):
    def __init__(
        self, name: str, args: AzureHostsArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__("skyfleet:infra:AzureHosts", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        cloud = args.cloud
        tags = {"skyfleet-environment": args.environment}
        self.resource_group = azure.resources.ResourceGroup(
            f"{name}-rg", location=cloud.region, tags=tags, opts=child
        )
        rg = self.resource_group.name
        fleet = [str(r) for r in args.fleet_ranges]
        self.nsg = azure.network.NetworkSecurityGroup(
            f"{name}-agents", resource_group_name=rg, location=cloud.region,
            security_rules=[
                _rule("agent", 100, str(args.agent_port),
                      fleet + [str(r) for r in args.admin_ranges], "Allow"),
                _rule("metrics", 110, str(args.metrics_port), fleet, "Allow"),
                _rule("deny-vnet", 4000, "*", ["VirtualNetwork"], "Deny"),
            ],
            tags=tags, opts=child,
        )
        nat_ip = azure.network.PublicIPAddress(
            f"{name}-nat", resource_group_name=rg, location=cloud.region,
            sku={"name": "Standard"}, public_ip_allocation_method="Static",
            zones=list(cloud.zones), tags=tags, opts=child,
        )
        nat = azure.network.NatGateway(
            f"{name}-nat", resource_group_name=rg, location=cloud.region,
            sku={"name": "Standard"}, public_ip_addresses=[{"id": nat_ip.id}], tags=tags,
            opts=child,
        )
        self.vnet = azure.network.VirtualNetwork(
            f"{name}-vnet", resource_group_name=rg, location=cloud.region,
            address_space={"address_prefixes": [str(cloud.cidr)]}, tags=tags,
            # Subnets are separate resources; without this the VNet would fight them.
            opts=pulumi.ResourceOptions(parent=self, ignore_changes=["subnets"]),
        )
        self.subnets = {}
        for zone, cidr in zip(
            cloud.zones, ipam.zone_subnets(cloud.cidr, len(cloud.zones)), strict=True
        ):
            self.subnets[zone] = azure.network.Subnet(
                f"{name}-zone{zone}", resource_group_name=rg,
                virtual_network_name=self.vnet.name, subnet_name=f"zone-{zone}",
                address_prefix=str(cidr), network_security_group={"id": self.nsg.id},
                nat_gateway={"id": nat.id}, default_outbound_access=False, opts=child,
            )
        self.gateway_subnet = azure.network.Subnet(
            f"{name}-gateway", resource_group_name=rg, virtual_network_name=self.vnet.name,
            subnet_name="GatewaySubnet", address_prefix=str(ipam.gateway_subnet(cloud.cidr)),
            opts=child,
        )
        self.identity = azure.managedidentity.UserAssignedIdentity(
            f"{name}-hosts", resource_group_name=rg, location=cloud.region, tags=tags,
            opts=child,
        )
        self.vms = {}
        for zone, hosts in args.by_zone():
            chain = args.rollout
            after = chain.after_tag("skyfleet:after")
            for host in hosts:
                self.vms[host.name] = self._vm(name, host, args, rg, {**tags, **after})
            chain.gate(chain.label("azure", args.cloud.region, zone), [h.name for h in hosts],
                       [self.vms[h.name].id for h in hosts], self)
        self.register_outputs(
            {"resource_group": rg, "hosts": [h.name for h in args.hosts]}
        )

    def _vm(self, name: str, host: HostSpec, args: AzureHostsArgs, rg: pulumi.Output[str],
            tags: dict[str, pulumi.Input[str]]) -> azure.compute.VirtualMachine:
        child = pulumi.ResourceOptions(parent=self)
        nic = azure.network.NetworkInterface(
            f"{name}-{host.name}", resource_group_name=rg, location=args.cloud.region,
            ip_configurations=[{
                "name": "primary", "subnet": {"id": self.subnets[host.zone].id},
                "private_ip_allocation_method": "Static",
                "private_ip_address": str(host.address),
            }],
            tags=tags, opts=child,
        )
        fetch = self.identity.client_id.apply(
            lambda cid: publication.azure_download(args.store_account, cid)
        )
        boot = args.boot.for_host(f"{name}-{host.name}", host, fetch, self)
        custom_data = boot.user_data.apply(
            lambda text: base64.b64encode(text.encode()).decode()
        )
        return azure.compute.VirtualMachine(
            f"{name}-{host.name}-vm", resource_group_name=rg, location=args.cloud.region,
            vm_name=host.name, zones=[host.zone],
            hardware_profile={"vm_size": args.cloud.instance_size},
            identity={"type": azure.compute.ResourceIdentityType.USER_ASSIGNED,
                      "user_assigned_identities": [self.identity.id]},
            network_profile={"network_interfaces": [{"id": nic.id, "primary": True}]},
            os_profile={
                "computer_name": host.name, "admin_username": "skyfleet-admin",
                "custom_data": custom_data,
                "linux_configuration": {
                    "disable_password_authentication": True,
                    "ssh": {"public_keys": [{
                        "path": "/home/skyfleet-admin/.ssh/authorized_keys",
                        "key_data": args.ssh_public_key,
                    }]},
                },
            },
            security_profile={"encryption_at_host": True, "security_type": "TrustedLaunch",
                              "uefi_settings": {"secure_boot_enabled": True,
                                                "v_tpm_enabled": True}},
            storage_profile={
                "image_reference": images.AZURE_IMAGE,
                "os_disk": {"create_option": "FromImage", "delete_option": "Delete",
                            "managed_disk": {"storage_account_type": "Premium_LRS"}},
            },
            tags=tags,
            # custom_data is only read at first boot and Azure cannot update it in place:
            # new custom data (a new runtime bundle) is a new VM, zone after zone
            # (`zone_rollout`), the old one deleted first (its name and NIC are the new one's).
            opts=pulumi.ResourceOptions(parent=self, replace_on_changes=["osProfile.customData"],
                                        delete_before_replace=True),
        )
