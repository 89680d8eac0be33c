"""AwsHosts: the AWS side of the fleet in one region.

A VPC with a private subnet per zone, one NAT gateway for package installs (egress only;
hosts have no public address), a security group that admits the agent and metrics ports
from fleet ranges only, and one instance per planned host with IMDSv2 required and an
encrypted root volume. There is no SSH at all. The role keeps Session Manager's policy,
but Debian's AMIs are not among those AWS ships with the SSM agent: an operator who
wants Session Manager installs the agent; otherwise the EC2 serial console.

Why instances and not an ASG: every host has an identity (certificate CN = node name) and
a static address that other hosts list as seeds, which an ASG cannot give its members.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

import pulumi
import pulumi_aws as aws

from infra import images, ipam, publication
from infra.components.host_args import HostsArgs
from infra.config import CloudConfig


@dataclass(frozen=True)
class AwsHostsArgs(HostsArgs):
    store_bucket: str
    """S3 bucket holding the policy and the runtime bundle (see infra.publication)."""


class AwsHosts(pulumi.ComponentResource):
    def __init__(
        self, name: str, args: AwsHostsArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__("skyfleet:infra:AwsHosts", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        tags = {"skyfleet:environment": args.environment}
        cloud = args.cloud
        self.vpc = aws.ec2.Vpc(
            f"{name}-vpc",
            cidr_block=str(cloud.cidr),
            enable_dns_hostnames=True,
            enable_dns_support=True,
            tags={**tags, "Name": f"skyfleet-{args.environment}"},
            opts=child,
        )
        self.route_table = aws.ec2.RouteTable(
            f"{name}-private", vpc_id=self.vpc.id, tags=tags, opts=child
        )
        self.subnets = []
        for zone, cidr in zip(
            cloud.zones, ipam.zone_subnets(cloud.cidr, len(cloud.zones)), strict=True
        ):
            subnet = aws.ec2.Subnet(
                f"{name}-{zone}",
                vpc_id=self.vpc.id,
                cidr_block=str(cidr),
                availability_zone=zone,
                map_public_ip_on_launch=False,
                tags={**tags, "Name": f"skyfleet-{args.environment}-{zone}"},
                opts=child,
            )
            aws.ec2.RouteTableAssociation(
                f"{name}-{zone}-rt", subnet_id=subnet.id, route_table_id=self.route_table.id,
                opts=child,
            )
            self.subnets.append(subnet)
        self._egress(name, cloud, tags, child)
        self.security_group = self._security_group(name, args, tags, child)
        self.role = self._role(name, args, tags, child)
        profile = aws.iam.InstanceProfile(f"{name}-profile", role=self.role.name, opts=child)
        ami = aws.ec2.get_ami_output(
            most_recent=True,
            owners=[images.AWS_OWNER],
            filters=[{"name": "name", "values": [images.AWS_NAME]},
                     {"name": "architecture", "values": ["x86_64"]}],
            opts=pulumi.InvokeOptions(parent=self),
        )
        subnet_by_zone = dict(zip(cloud.zones, self.subnets, strict=True))
        fetch = publication.aws_download(args.store_bucket, cloud.region)
        self.instances = {}
        for zone, hosts in args.by_zone():
            chain = args.rollout
            after = chain.after_tag("skyfleet:after")
            for host in hosts:
                boot = args.boot.for_host(f"{name}-{host.name}", host, fetch, self)
                self.instances[host.name] = aws.ec2.Instance(
                    f"{name}-{host.name}",
                    ami=ami.id,
                    instance_type=cloud.instance_size,
                    subnet_id=subnet_by_zone[host.zone].id,
                    private_ip=str(host.address),
                    vpc_security_group_ids=[self.security_group.id],
                    iam_instance_profile=profile.name,
                    associate_public_ip_address=False,
                    metadata_options={"http_tokens": "required",
                                      "http_put_response_hop_limit": 1,
                                      "http_endpoint": "enabled"},
                    root_block_device={"encrypted": True, "volume_type": "gp3",
                                       "volume_size": 20},
                    user_data=boot.user_data,
                    # User data changes only with the runtime bundle: a new runtime is a
                    # new host, zone after zone (`zone_rollout`); the old one goes first,
                    # its address is the new one's.
                    user_data_replace_on_change=True,
                    tags={**tags, "Name": host.name, "skyfleet:zone": host.zone, **after},
                    # A newer AMI is rolled deliberately, never as a side effect of an
                    # unrelated `pulumi up`.
                    opts=pulumi.ResourceOptions(parent=self, ignore_changes=["ami"],
                                                delete_before_replace=True),
                )
            chain.gate(chain.label("aws", cloud.region, zone), [h.name for h in hosts],
                       [self.instances[h.name].id for h in hosts], self)
        self.register_outputs(
            {"vpc_id": self.vpc.id, "hosts": [h.name for h in args.hosts]}
        )

    def _egress(self, name: str, cloud: CloudConfig, tags: dict[str, str],
                child: pulumi.ResourceOptions) -> None:
        """Hosts reach the S3 store and peers' public VPN ends through one NAT gateway in a
        small public subnet (the last /24 of the reserved /20)."""
        igw = aws.ec2.InternetGateway(f"{name}-igw", vpc_id=self.vpc.id, tags=tags, opts=child)
        reserved = list(cloud.cidr.subnets(new_prefix=ipam.ZONE_PREFIX))[-1]
        public_cidr = list(reserved.subnets(new_prefix=24))[-1]
        public = aws.ec2.Subnet(
            f"{name}-public", vpc_id=self.vpc.id, cidr_block=str(public_cidr),
            availability_zone=cloud.zones[0], map_public_ip_on_launch=False, tags=tags,
            opts=child,
        )
        public_rt = aws.ec2.RouteTable(
            f"{name}-public", vpc_id=self.vpc.id,
            routes=[{"cidr_block": "0.0.0.0/0", "gateway_id": igw.id}], tags=tags, opts=child,
        )
        aws.ec2.RouteTableAssociation(
            f"{name}-public-rt", subnet_id=public.id, route_table_id=public_rt.id, opts=child
        )
        eip = aws.ec2.Eip(f"{name}-nat", domain="vpc", tags=tags, opts=child)
        nat = aws.ec2.NatGateway(
            f"{name}-nat", allocation_id=eip.id, subnet_id=public.id, tags=tags, opts=child
        )
        aws.ec2.Route(
            f"{name}-default", route_table_id=self.route_table.id,
            destination_cidr_block="0.0.0.0/0", nat_gateway_id=nat.id, opts=child,
        )

    def _security_group(self, name: str, args: AwsHostsArgs, tags: dict[str, str],
                        child: pulumi.ResourceOptions) -> aws.ec2.SecurityGroup:
        fleet = [str(r) for r in args.fleet_ranges]
        return aws.ec2.SecurityGroup(
            f"{name}-agents",
            vpc_id=self.vpc.id,
            description="Skyfleet agents: agent and metrics ports from fleet ranges only",
            ingress=[
                {"protocol": "tcp", "from_port": args.agent_port, "to_port": args.agent_port,
                 "cidr_blocks": fleet + [str(r) for r in args.admin_ranges],
                 "description": "agent gRPC (mTLS) from the fleet and operators"},
                {"protocol": "tcp", "from_port": args.metrics_port,
                 "to_port": args.metrics_port, "cidr_blocks": fleet,
                 "description": "metrics from the fleet"},
            ],
            egress=[{"protocol": "-1", "from_port": 0, "to_port": 0,
                     "cidr_blocks": ["0.0.0.0/0"], "description": "installs and peers"}],
            tags=tags,
            opts=child,
        )

    def _role(self, name: str, args: AwsHostsArgs, tags: dict[str, str],
              child: pulumi.ResourceOptions) -> aws.iam.Role:
        role = aws.iam.Role(
            f"{name}-host",
            assume_role_policy=json.dumps({
                "Version": "2012-10-17",
                "Statement": [{"Effect": "Allow", "Action": "sts:AssumeRole",
                               "Principal": {"Service": "ec2.amazonaws.com"}}],
            }),
            tags=tags,
            opts=child,
        )
        aws.iam.RolePolicyAttachment(
            f"{name}-ssm-session", role=role.name,
            policy_arn="arn:aws:iam::aws:policy/AmazonSSMManagedInstanceCore", opts=child,
        )
        aws.iam.RolePolicy(
            f"{name}-read-store",
            role=role.id,
            policy=json.dumps({
                "Version": "2012-10-17",
                "Statement": [{
                    "Effect": "Allow", "Action": "s3:GetObject",
                    "Resource": f"arn:aws:s3:::{args.store_bucket}/*",
                }],
            }),
            opts=child,
        )
        return role
