"""Mesh: HA VPN with BGP between every pair of enabled clouds (plan in infra.mesh_plan).

Per cloud one gateway endpoint: AWS a virtual private gateway propagating routes into the
private route table; GCP an HA VPN gateway and a Cloud Router; Azure an active-active,
zone-redundant VPN gateway with BGP and custom APIPA addresses. Per pair, the peer-side
objects (AWS customer gateways and VPN connections, GCP external gateways, tunnels, router
interfaces and peers, Azure local network gateways and connections) follow the plan's
tunnel list, so a pair is a loop over tunnels, not a copied block.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import pulumi
import pulumi_aws as aws
import pulumi_azure_native as azure
import pulumi_gcp as gcp
import pulumi_random as random

from infra import mesh_plan
from infra.mesh_plan import Tunnel

PSK_LENGTH = 48

AZURE_GATEWAY_TIMEOUTS = pulumi.CustomTimeouts(create="90m", update="90m", delete="90m")
"""Azure VPN gateways routinely take 45+ minutes; the default would abandon them."""


@dataclass(frozen=True)
class AwsEndpointArgs:
    region: str
    vpc_id: pulumi.Input[str]
    route_table_id: pulumi.Input[str]


@dataclass(frozen=True)
class AzureEndpointArgs:
    location: str
    resource_group: pulumi.Input[str]
    gateway_subnet_id: pulumi.Input[str]


@dataclass(frozen=True)
class GcpEndpointArgs:
    region: str
    network_id: pulumi.Input[str]


@dataclass(frozen=True)
class MeshArgs:
    environment: str
    tunnels: tuple[Tunnel, ...]
    key_generations: dict[str, int]
    """Tunnel label -> the generation of its pre-shared key: raising one re-keys that
    tunnel alone (both ends, one `pulumi up`) while its pair's other tunnel carries the
    traffic."""
    aws: AwsEndpointArgs | None = None
    azure: AzureEndpointArgs | None = None
    gcp: GcpEndpointArgs | None = None


class Mesh(pulumi.ComponentResource):
    def __init__(self, name: str, args: MeshArgs,
                 opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("skyfleet:infra:Mesh", name, None, opts)
        self._name = name
        self._args = args
        self._child = pulumi.ResourceOptions(parent=self)
        self._psks: dict[str, pulumi.Output[str]] = {}
        env = args.environment
        if args.aws:
            self.vgw = aws.ec2.VpnGateway(
                f"{name}-aws", vpc_id=args.aws.vpc_id,
                amazon_side_asn=str(mesh_plan.asn(env, "aws")), opts=self._child,
            )
            aws.ec2.VpnGatewayRoutePropagation(
                f"{name}-aws", vpn_gateway_id=self.vgw.id,
                route_table_id=args.aws.route_table_id, opts=self._child,
            )
        if args.gcp:
            self.ha_gateway = gcp.compute.HaVpnGateway(
                f"{name}-gcp", region=args.gcp.region, network=args.gcp.network_id,
                opts=self._child,
            )
            self.router = gcp.compute.Router(
                f"{name}-gcp", region=args.gcp.region, network=args.gcp.network_id,
                bgp={"asn": mesh_plan.asn(env, "gcp"), "advertise_mode": "DEFAULT"},
                opts=self._child,
            )
        if args.azure:
            self._azure_gateway()
        self.tunnel_outputs: list[dict[str, object]] = []
        pairs = sorted({t.pair for t in args.tunnels})
        for pair in pairs:
            tunnels = tuple(t for t in args.tunnels if t.pair == pair)
            {("aws", "gcp"): self._aws_gcp, ("aws", "azure"): self._aws_azure,
             ("azure", "gcp"): self._azure_gcp}[pair](tunnels)
            for t in tunnels:
                self.tunnel_outputs.append({
                    "name": t.label, "pair": f"{t.a}-{t.b}", "inside": str(t.inside),
                    f"{t.a}_bgp": str(t.a_address), f"{t.b}_bgp": str(t.b_address),
                    f"{t.a}_asn": mesh_plan.asn(env, t.a), f"{t.b}_asn": mesh_plan.asn(env, t.b),
                })
        self.register_outputs({"tunnels": self.tunnel_outputs})

    def _psk(self, tunnel: Tunnel) -> pulumi.Output[str]:
        """The tunnel's pre-shared key, one pulumi-random password per tunnel (both ends
        read the same), kept as a secret in state. Random and independent per tunnel,
        unlike keys derived from one stack secret, whose leak or rotation would touch
        every tunnel at once. AWS takes 8-64 chars of [A-Za-z0-9._] not starting with 0:
        a letter, then letters and digits."""
        if tunnel.label not in self._psks:
            password = random.RandomPassword(
                f"{self._name}-psk-{tunnel.label}", length=PSK_LENGTH - 1, special=False,
                keepers={"generation": str(self._args.key_generations.get(tunnel.label, 0))},
                opts=self._child,
            )
            self._psks[tunnel.label] = pulumi.Output.secret(
                password.result.apply(lambda r: "k" + r))
        return self._psks[tunnel.label]

    # --- Azure gateway -------------------------------------------------------------------

    def _azure_gateway(self) -> None:
        args, name, env = self._args.azure, self._name, self._args.environment
        assert args is not None
        gateway_name = f"skyfleet-{env}-vpn"
        client = azure.authorization.get_client_config_output(
            opts=pulumi.InvokeOptions(parent=self)
        )
        self.azure_ips = [
            azure.network.PublicIPAddress(
                f"{name}-azure-{i}", resource_group_name=args.resource_group,
                location=args.location, sku={"name": "Standard"},
                public_ip_allocation_method="Static", zones=["1", "2", "3"], opts=self._child,
            )
            for i in range(2)
        ]
        self._azure_ipconfig_ids = [
            pulumi.Output.concat(
                "/subscriptions/", client.subscription_id, "/resourceGroups/",
                args.resource_group, "/providers/Microsoft.Network/virtualNetworkGateways/",
                f"{gateway_name}/ipConfigurations/ipconfig{i}",
            )
            for i in range(2)
        ]
        self.azure_gateway = azure.network.VirtualNetworkGateway(
            f"{name}-azure", virtual_network_gateway_name=gateway_name,
            resource_group_name=args.resource_group, location=args.location,
            gateway_type="Vpn", vpn_type="RouteBased", vpn_gateway_generation="Generation2",
            sku={"name": "VpnGw2AZ", "tier": "VpnGw2AZ"}, active_active=True, enable_bgp=True,
            ip_configurations=[
                {"name": f"ipconfig{i}", "subnet": {"id": args.gateway_subnet_id},
                 "public_ip_address": {"id": ip.id}, "private_ip_allocation_method": "Dynamic"}
                for i, ip in enumerate(self.azure_ips)
            ],
            bgp_settings={
                "asn": mesh_plan.asn(env, "azure"),
                "bgp_peering_addresses": [
                    {"ipconfiguration_id": self._azure_ipconfig_ids[i],
                     "custom_bgp_ip_addresses": mesh_plan.azure_apipa(self._args.tunnels, i)}
                    for i in range(2)
                ],
            },
            opts=pulumi.ResourceOptions(parent=self, custom_timeouts=AZURE_GATEWAY_TIMEOUTS),
        )

    def _azure_side(self, tunnel: Tunnel, peer: str, peer_ip: pulumi.Input[str]) -> None:
        """Local network gateway + connection for one tunnel landing on Azure."""
        args, env = self._args.azure, self._args.environment
        assert args is not None
        azure_is_a = tunnel.a == "azure"
        azure_bgp = tunnel.a_address if azure_is_a else tunnel.b_address
        peer_bgp = tunnel.b_address if azure_is_a else tunnel.a_address
        instance = tunnel.a_interface if azure_is_a else tunnel.b_interface
        lng = azure.network.LocalNetworkGateway(
            f"{self._name}-{tunnel.label}", resource_group_name=args.resource_group,
            location=args.location, gateway_ip_address=peer_ip,
            bgp_settings={"asn": mesh_plan.asn(env, peer), "bgp_peering_address": str(peer_bgp)},
            opts=self._child,
        )
        azure.network.VirtualNetworkGatewayConnection(
            f"{self._name}-{tunnel.label}", resource_group_name=args.resource_group,
            location=args.location, connection_type="IPsec", connection_protocol="IKEv2",
            virtual_network_gateway1={"id": self.azure_gateway.id},
            local_network_gateway2={"id": lng.id}, enable_bgp=True,
            shared_key=self._psk(tunnel),
            gateway_custom_bgp_ip_addresses=[
                {"ip_configuration_id": self._azure_ipconfig_ids[i],
                 "custom_bgp_ip_address": str(azure_bgp) if i == instance
                 else mesh_plan.azure_apipa(self._args.tunnels, i)[0]}
                for i in range(2)
            ],
            opts=pulumi.ResourceOptions(parent=self, custom_timeouts=AZURE_GATEWAY_TIMEOUTS),
        )

    # --- GCP side ------------------------------------------------------------------------

    def _gcp_side(self, tunnel: Tunnel, peer: str, external: gcp.compute.ExternalVpnGateway,
                  peer_interface: int) -> None:
        region = self._args.gcp.region if self._args.gcp else ""
        gcp_bgp = tunnel.b_address  # GCP is always side b: it sorts last in CLOUDS.
        peer_bgp = tunnel.a_address
        vpn = gcp.compute.VPNTunnel(
            f"{self._name}-{tunnel.label}", region=region, vpn_gateway=self.ha_gateway.id,
            vpn_gateway_interface=tunnel.b_interface, peer_external_gateway=external.id,
            peer_external_gateway_interface=peer_interface, shared_secret=self._psk(tunnel),
            router=self.router.id, ike_version=2, opts=self._child,
        )
        interface = gcp.compute.RouterInterface(
            f"{self._name}-{tunnel.label}", router=self.router.name, region=region,
            ip_range=f"{gcp_bgp}/30", vpn_tunnel=vpn.name, opts=self._child,
        )
        gcp.compute.RouterPeer(
            f"{self._name}-{tunnel.label}", router=self.router.name, region=region,
            interface=interface.name, peer_ip_address=str(peer_bgp),
            peer_asn=mesh_plan.asn(self._args.environment, peer), opts=self._child,
        )

    # --- pairs ---------------------------------------------------------------------------

    def _aws_connections(self, peer: str, peer_ips: Sequence[pulumi.Output[str | None]],
                         tunnels: tuple[Tunnel, ...]) -> list[aws.ec2.VpnConnection]:
        """Two AWS VPN connections, one per peer gateway instance, two tunnels each. Peer
        addresses are optional as the providers type them (Azure's public IPs, for one)."""
        connections = []
        for i, ip in enumerate(peer_ips):
            cgw = aws.ec2.CustomerGateway(
                f"{self._name}-aws-{peer}-{i}", bgp_asn=str(mesh_plan.asn(
                    self._args.environment, peer)), ip_address=ip, type="ipsec.1",
                opts=self._child,
            )
            t1, t2 = (t for t in tunnels if t.a_interface == i)
            connections.append(aws.ec2.VpnConnection(
                f"{self._name}-aws-{peer}-{i}", vpn_gateway_id=self.vgw.id,
                customer_gateway_id=cgw.id, type="ipsec.1", static_routes_only=False,
                tunnel1_inside_cidr=str(t1.inside), tunnel2_inside_cidr=str(t2.inside),
                tunnel1_preshared_key=self._psk(t1), tunnel2_preshared_key=self._psk(t2),
                tunnel1_ike_versions=["ikev2"], tunnel2_ike_versions=["ikev2"],
                opts=self._child,
            ))
        return connections

    @staticmethod
    def _aws_tunnel_address(conns: list[aws.ec2.VpnConnection], t: Tunnel) -> pulumi.Output:
        conn = conns[t.a_interface]
        return conn.tunnel1_address if t.index % 2 == 0 else conn.tunnel2_address

    def _gcp_interface_ip(self, interface: int) -> pulumi.Output[str]:
        """One interface's public address of the GCP HA VPN gateway; a method, so the
        callback captures `interface` itself (a lambda in a loop sees the loop's last value)."""
        return self.ha_gateway.vpn_interfaces.apply(lambda v: v[interface]["ip_address"])

    def _aws_gcp(self, tunnels: tuple[Tunnel, ...]) -> None:
        gcp_ips = [self._gcp_interface_ip(i) for i in range(2)]
        conns = self._aws_connections("gcp", gcp_ips, tunnels)
        external = gcp.compute.ExternalVpnGateway(
            f"{self._name}-gcp-aws", redundancy_type="FOUR_IPS_REDUNDANCY",
            interfaces=[{"id": t.index, "ip_address": self._aws_tunnel_address(conns, t)}
                        for t in tunnels],
            opts=self._child,
        )
        for t in tunnels:
            self._gcp_side(t, "aws", external, t.index)

    def _aws_azure(self, tunnels: tuple[Tunnel, ...]) -> None:
        conns = self._aws_connections("azure", [ip.ip_address for ip in self.azure_ips],
                                      tunnels)
        for t in tunnels:
            self._azure_side(t, "aws", self._aws_tunnel_address(conns, t))

    def _azure_gcp(self, tunnels: tuple[Tunnel, ...]) -> None:
        external = gcp.compute.ExternalVpnGateway(
            f"{self._name}-gcp-azure", redundancy_type="TWO_IPS_REDUNDANCY",
            interfaces=[{"id": i, "ip_address": ip.ip_address}
                        for i, ip in enumerate(self.azure_ips)],
            opts=self._child,
        )
        for t in tunnels:
            self._gcp_side(t, "azure", external, t.a_interface)
            self._azure_side(t, "gcp", self._gcp_interface_ip(t.b_interface))
