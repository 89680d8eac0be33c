"""FleetStore: the private store on each cloud that hosts read, holding the signed policy
and the runtime bundle.

One store per cloud (an S3 bucket, a blob container, a GCS bucket), readable by the
fleet's host identity only: the instance role, the user-assigned identity, the service
account. The local stack's store is `infra.components.local_policy`.

The policy document is signed here with the fleet key (a Pulumi secret) and published as
one object. Hosts poll it, so changing `policyVersion` and `policyFile` in stack config
shows in `pulumi preview` as an update of that object only, and `pulumi up` rolls the
policy out without touching a host. ed25519 signatures are deterministic, so an
unchanged document yields an unchanged envelope and no diff at all.

The runtime bundle (`infra.runtime_bundle`) is published under its content-addressed
name, so a new version adds an object instead of changing one a booting host may be
reading.

What changes after first boot lives here too, public halves only: the CA bundle, the
policy-signing public key, each host's certificate and agent config (`publication`
names them). A renewal or a rotation is an update of these objects; hosts copy them
every minute and the agent takes them up live.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import pulumi
import pulumi_aws as aws
import pulumi_azure_native as azure
import pulumi_gcp as gcp

from infra import publication
from infra.runtime_bundle import RuntimeBundle

STORAGE_BLOB_DATA_READER = "2a2b9908-6ea1-4ae2-8e65-a410df84e7d1"
"""Built-in Azure role id: read blobs, nothing else."""


@dataclass(frozen=True)
class StoreObject:
    """One object of a cloud's store: small text, or a file (the runtime bundle)."""

    suffix: str
    """Of its resource name, `<store>-<cloud>-<suffix>`."""
    name: str
    content_type: str
    text: pulumi.Input[str] | None = None
    path: str | None = None


@dataclass(frozen=True)
class FleetStoreArgs:
    environment: str
    document: dict[str, Any]
    signing_key_pem: pulumi.Input[str]
    runtime: RuntimeBundle
    ca_cert_pem: pulumi.Input[str]
    trusted_key_pem: pulumi.Input[str]
    host_certs: dict[str, dict[str, pulumi.Output[str]]]
    """Cloud -> node -> its certificate: each cloud's store holds its own hosts'."""
    host_configs: dict[str, dict[str, str]]
    """Cloud -> node -> its agent config (TOML)."""
    aws_region: str | None = None
    aws_reader_role: pulumi.Input[str] | None = None
    """ARN of the hosts' instance role, the bucket's only reader."""
    azure_resource_group: pulumi.Input[str] | None = None
    azure_location: str | None = None
    azure_reader_principal: pulumi.Input[str] | None = None
    gcp_region: str | None = None
    gcp_reader_email: pulumi.Input[str] | None = None
    project: str = "skyfleet"
    stack: str = "dev"


class FleetStore(pulumi.ComponentResource):
    envelope: pulumi.Output[str]
    """The published text (signed envelope JSON); not secret, only the key is."""

    def __init__(
        self, name: str, args: FleetStoreArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__("skyfleet:infra:FleetStore", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        self.version = int(args.document["version"])
        self.hash = publication.policy_hash(args.document)
        self.envelope = publication.signed_envelope(args.document, args.signing_key_pem)
        self.locations: dict[str, str] = {}
        if args.aws_region:
            self._aws(name, args, child)
        if args.azure_resource_group is not None:
            self._azure(name, args, child)
        if args.gcp_region:
            self._gcp(name, args, child)
        self.register_outputs(
            {"version": self.version, "hash": self.hash, "locations": self.locations}
        )

    def _objects(self, args: FleetStoreArgs, cloud: str) -> list[StoreObject]:
        """Everything one cloud's store holds, by resource suffix."""
        objects = [
            StoreObject("policy", publication.POLICY_OBJECT, "application/json",
                        text=self.envelope),
            StoreObject("ca", publication.CA_OBJECT, "text/plain", text=args.ca_cert_pem),
            StoreObject("trusted-key", publication.TRUSTED_KEY_OBJECT, "text/plain",
                        text=args.trusted_key_pem),
        ]
        for node, cert in sorted(args.host_certs.get(cloud, {}).items()):
            objects.append(StoreObject(f"cert-{node}", publication.cert_object(node),
                                       "text/plain", text=cert))
        for node, config in sorted(args.host_configs.get(cloud, {}).items()):
            objects.append(StoreObject(f"config-{node}", publication.config_object(node),
                                       "text/plain", text=config))
        objects.append(StoreObject("runtime", args.runtime.object_name, "application/x-tar",
                                   path=str(args.runtime.path)))
        return objects

    def _aws(self, name: str, args: FleetStoreArgs, child: pulumi.ResourceOptions) -> None:
        bucket_name = publication.aws_bucket(args.environment, args.project, args.stack)
        bucket = aws.s3.Bucket(f"{name}-aws", bucket=bucket_name, opts=child)
        aws.s3.BucketPublicAccessBlock(
            f"{name}-aws", bucket=bucket.id, block_public_acls=True, block_public_policy=True,
            ignore_public_acls=True, restrict_public_buckets=True, opts=child,
        )
        aws.s3.BucketServerSideEncryptionConfiguration(
            f"{name}-aws", bucket=bucket.id,
            rules=[{"apply_server_side_encryption_by_default": {"sse_algorithm": "AES256"}}],
            opts=child,
        )
        aws.s3.BucketPolicy(
            f"{name}-aws-reader", bucket=bucket.id,
            policy=pulumi.Output.all(bucket.arn, args.aws_reader_role).apply(
                lambda v: json.dumps({
                    "Version": "2012-10-17",
                    "Statement": [{"Effect": "Allow", "Principal": {"AWS": v[1]},
                                   "Action": "s3:GetObject", "Resource": f"{v[0]}/*"}],
                })),
            opts=child,
        )
        for obj in self._objects(args, "aws"):
            aws.s3.BucketObjectv2(
                f"{name}-aws-{obj.suffix}", bucket=bucket.id, key=obj.name,
                content=obj.text, source=pulumi.FileAsset(obj.path) if obj.path else None,
                content_type=obj.content_type, opts=child,
            )
        self.locations["aws"] = f"s3://{bucket_name}/{publication.POLICY_OBJECT}"

    def _azure(self, name: str, args: FleetStoreArgs,
               child: pulumi.ResourceOptions) -> None:
        account_name = publication.azure_storage_account(args.environment, args.project,
                                                         args.stack)
        account = azure.storage.StorageAccount(
            f"{name}-azure", account_name=account_name,
            resource_group_name=args.azure_resource_group, location=args.azure_location,
            kind="StorageV2", sku={"name": "Standard_ZRS"},
            allow_blob_public_access=False, enable_https_traffic_only=True,
            minimum_tls_version="TLS1_2", opts=child,
        )
        container = azure.storage.BlobContainer(
            f"{name}-azure", account_name=account.name,
            resource_group_name=args.azure_resource_group,
            container_name=publication.AZURE_CONTAINER,
            public_access=azure.storage.PublicAccess.NONE, opts=child,
        )
        for obj in self._objects(args, "azure"):
            source = (pulumi.FileAsset(obj.path) if obj.path
                      else pulumi.Output.from_input(obj.text).apply(
                          lambda text: pulumi.StringAsset(text or "")))
            azure.storage.Blob(
                f"{name}-azure-{obj.suffix}", account_name=account.name,
                resource_group_name=args.azure_resource_group, container_name=container.name,
                blob_name=obj.name, content_type=obj.content_type, source=source, opts=child,
            )
        client = azure.authorization.get_client_config_output(
            opts=pulumi.InvokeOptions(parent=self)
        )
        azure.authorization.RoleAssignment(
            f"{name}-azure-reader", scope=container.id,
            principal_id=args.azure_reader_principal, principal_type="ServicePrincipal",
            role_definition_id=client.subscription_id.apply(
                lambda sub: f"/subscriptions/{sub}/providers/Microsoft.Authorization/"
                f"roleDefinitions/{STORAGE_BLOB_DATA_READER}"
            ),
            opts=child,
        )
        self.locations["azure"] = (
            f"blob:{account_name}/{publication.AZURE_CONTAINER}/{publication.POLICY_OBJECT}"
        )

    def _gcp(self, name: str, args: FleetStoreArgs,
             child: pulumi.ResourceOptions) -> None:
        bucket_name = publication.gcs_bucket(args.environment, args.project, args.stack)
        bucket = gcp.storage.Bucket(
            f"{name}-gcp", name=bucket_name, location=args.gcp_region,
            uniform_bucket_level_access=True, public_access_prevention="enforced",
            versioning={"enabled": True}, opts=child,
        )
        for obj in self._objects(args, "gcp"):
            gcp.storage.BucketObject(
                f"{name}-gcp-{obj.suffix}", bucket=bucket.name, name=obj.name,
                content=obj.text, source=pulumi.FileAsset(obj.path) if obj.path else None,
                content_type=obj.content_type, opts=child,
            )
        gcp.storage.BucketIAMMember(
            f"{name}-gcp-reader", bucket=bucket.name, role="roles/storage.objectViewer",
            member=pulumi.Output.from_input(args.gcp_reader_email).apply(
                lambda e: f"serviceAccount:{e}"
            ),
            opts=child,
        )
        self.locations["gcp"] = f"gs://{bucket_name}/{publication.POLICY_OBJECT}"
