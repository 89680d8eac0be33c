"""PolicyPublication: sign the stack's policy document and publish it to every cloud.

The document is signed here with the fleet key (a Pulumi secret) and published as one
object per cloud: an SSM parameter, a blob, a GCS object (the local stack's store is
`infra.components.local_policy`). Hosts poll their cloud's object, so changing `policyVersion` and
`policyFile` in stack config shows in `pulumi preview` as an update of these objects only,
and `pulumi up` rolls the policy out without touching a host.

ed25519 signatures are deterministic, so an unchanged document yields an unchanged
envelope and no diff at all.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pulumi
import pulumi_aws as aws
import pulumi_azure_native as azure
import pulumi_gcp as gcp

from infra import publication

STORAGE_BLOB_DATA_READER = "2a2b9908-6ea1-4ae2-8e65-a410df84e7d1"
"""Built-in Azure role id: read blobs, nothing else."""


@dataclass(frozen=True)
class PolicyPublicationArgs:
    environment: str
    document: dict[str, Any]
    signing_key_pem: pulumi.Input[str]
    aws_region: str | None = None
    azure_resource_group: pulumi.Input[str] | None = None
    azure_location: str | None = None
    azure_reader_principal: pulumi.Input[str] | None = None
    gcp_region: str | None = None
    gcp_reader_email: pulumi.Input[str] | None = None
    project: str = "skyfleet"
    stack: str = "dev"


class PolicyPublication(pulumi.ComponentResource):
    envelope: pulumi.Output[str]
    """The published text (signed envelope JSON); not secret, only the key is."""

    def __init__(
        self, name: str, args: PolicyPublicationArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__("skyfleet:infra:PolicyPublication", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        self.version = int(args.document["version"])
        self.hash = publication.policy_hash(args.document)
        self.envelope = publication.signed_envelope(args.document, args.signing_key_pem)
        self.locations: dict[str, str] = {}
        env = args.environment
        if args.aws_region:
            self.parameter = aws.ssm.Parameter(
                f"{name}-aws", name=publication.ssm_parameter_name(env), type="String",
                tier="Intelligent-Tiering", value=self.envelope,
                description=f"Skyfleet {env} signed balancing policy", opts=child,
            )
            self.locations["aws"] = f"ssm:{publication.ssm_parameter_name(env)}"
        if args.azure_resource_group is not None:
            self._azure(name, args, child)
        if args.gcp_region:
            self._gcp(name, args, child)
        self.register_outputs(
            {"version": self.version, "hash": self.hash, "locations": self.locations}
        )

    def _azure(self, name: str, args: PolicyPublicationArgs,
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
            container_name=publication.AZURE_CONTAINER, public_access="None", opts=child,
        )
        azure.storage.Blob(
            f"{name}-azure-policy", account_name=account.name,
            resource_group_name=args.azure_resource_group, container_name=container.name,
            blob_name=publication.POLICY_OBJECT, content_type="application/json",
            source=self.envelope.apply(pulumi.StringAsset), opts=child,
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

    def _gcp(self, name: str, args: PolicyPublicationArgs,
             child: pulumi.ResourceOptions) -> None:
        bucket_name = publication.gcs_bucket(args.environment, args.project, args.stack)
        bucket = gcp.storage.Bucket(
            f"{name}-gcp", name=bucket_name, location=args.gcp_region,
            uniform_bucket_level_access=True, public_access_prevention="enforced",
            versioning={"enabled": True}, opts=child,
        )
        gcp.storage.BucketObject(
            f"{name}-gcp-policy", bucket=bucket.name, name=publication.POLICY_OBJECT,
            content=self.envelope, content_type="application/json", opts=child,
        )
        gcp.storage.BucketIAMMember(
            f"{name}-gcp-reader", bucket=bucket.name, role="roles/storage.objectViewer",
            member=pulumi.Output.from_input(args.gcp_reader_email).apply(
                lambda e: f"serviceAccount:{e}"
            ),
            opts=child,
        )
        self.locations["gcp"] = f"gs://{bucket_name}/{publication.POLICY_OBJECT}"
