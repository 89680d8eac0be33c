"""Where each cloud's agents read the signed policy, and how they download it.

Names are pure functions of (environment, project/stack), so host bootstrap can render its
fetch command before the store exists and the publication component can create the store
under exactly that name. Each download uses the host's own cloud identity: no credentials
are ever written to a host.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

import pulumi

POLICY_OBJECT = "policy.json"
_TOKEN_FIELD = (
    "/opt/skyfleet/bin/python -c "
    "'import json,sys; print(json.load(sys.stdin)[\"access_token\"])'"
)
AZURE_CONTAINER = "policy"


def ssm_parameter_name(environment: str) -> str:
    return f"/skyfleet/{environment}/policy"


def _suffix(project: str, stack: str) -> str:
    """Storage names are global across all customers: a stable hash keeps ours unique."""
    return hashlib.sha256(f"{project}/{stack}".encode()).hexdigest()[:8]


def azure_storage_account(environment: str, project: str, stack: str) -> str:
    """3-24 lowercase letters and digits."""
    return f"sf{environment[:8]}{_suffix(project, stack)}"


def gcs_bucket(environment: str, project: str, stack: str) -> str:
    return f"skyfleet-{environment}-policy-{_suffix(project, stack)}"


def aws_download(environment: str, region: str) -> str:
    # Amazon Linux 2023 ships the AWS CLI; the instance role grants ssm:GetParameter.
    return (
        f"aws ssm get-parameter --region {region} --name {ssm_parameter_name(environment)} "
        '--query Parameter.Value --output text > "$tmp"'
    )


def azure_download(account: str, client_id: str) -> str:
    token_url = (
        "http://169.254.169.254/metadata/identity/oauth2/token?api-version=2018-02-01"
        f"&resource=https://storage.azure.com/&client_id={client_id}"
    )
    return (
        f"token=$(curl -sf -H Metadata:true '{token_url}' | "
        f"{_TOKEN_FIELD})\n"
        'curl -sf -H "Authorization: Bearer $token" -H "x-ms-version: 2021-08-06" '
        f'-o "$tmp" https://{account}.blob.core.windows.net/{AZURE_CONTAINER}/{POLICY_OBJECT}'
    )


def gcp_download(bucket: str) -> str:
    token_url = (
        "http://metadata.google.internal/computeMetadata/v1/instance/service-accounts/default/token"
    )
    return (
        f"token=$(curl -sf -H Metadata-Flavor:Google {token_url} | "
        f"{_TOKEN_FIELD})\n"
        'curl -sf -H "Authorization: Bearer $token" -o "$tmp" '
        f"'https://storage.googleapis.com/storage/v1/b/{bucket}/o/{POLICY_OBJECT}?alt=media'"
    )


def envelope_text(envelope: dict[str, Any]) -> str:
    """The published bytes: stable key order so an unchanged policy is an unchanged object."""
    return json.dumps(envelope, sort_keys=True, separators=(",", ":"))


def sign(document: dict[str, Any], signing_key_pem: str) -> dict[str, Any]:
    from skyfleet.policy.signing import sign_policy

    return sign_policy(document, signing_key_pem.encode())


def signed_envelope(document: dict[str, Any],
                    signing_key_pem: pulumi.Input[str]) -> pulumi.Output[str]:
    """The published text, signed with the fleet key. Not a secret (only the key is):
    every agent and operator may read the policy."""
    return pulumi.Output.unsecret(pulumi.Output.from_input(signing_key_pem).apply(
        lambda key: envelope_text(sign(document, key))))


def policy_hash(document: dict[str, Any]) -> str:
    from skyfleet.policy.canonical import policy_hash as canonical_hash

    return canonical_hash(document)
