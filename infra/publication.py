"""Where each cloud's hosts read the signed policy and the runtime bundle, and how they
download them.

Names are pure functions of (environment, project/stack), so host bootstrap can render its
fetch command before the store exists and the publication component can create the store
under exactly that name. Each download uses the host's own cloud identity: no credentials
are ever written to a host.
"""

from __future__ import annotations

import hashlib
from typing import Any

import pulumi

POLICY_OBJECT = "policy.json"
CA_OBJECT = "tls/ca.pem"
"""The fleet's CA bundle (several CAs while one rotates)."""
TRUSTED_KEY_OBJECT = "keys/fleet.pub"
"""The public half of the policy signing key."""


def config_object(node: str) -> str:
    """A host's agent config (seeds change when the fleet grows a zone)."""
    return f"hosts/{node}/agent.toml"


def cert_object(node: str) -> str:
    """A host's certificate (renewed by `pulumi up`); its key is never in the store."""
    return f"hosts/{node}/node.pem"
AZURE_CONTAINER = "policy"
"""One private container holds everything hosts read (the policy, runtime bundles)."""
_JSON_FIELD = "python3 -c 'import json,sys; print(json.load(sys.stdin)[sys.argv[1]])'"
"""Debian 12 has python3 and curl and nothing more: no cloud CLI, no jq. These reads run
before the runtime is installed, so they use the system python."""


def _suffix(project: str, stack: str) -> str:
    """Storage names are global across all customers: a stable hash keeps ours unique."""
    return hashlib.sha256(f"{project}/{stack}".encode()).hexdigest()[:8]


def aws_bucket(environment: str, project: str, stack: str) -> str:
    return f"skyfleet-{environment}-{_suffix(project, stack)}"


def azure_storage_account(environment: str, project: str, stack: str) -> str:
    """3-24 lowercase letters and digits."""
    return f"sf{environment[:8]}{_suffix(project, stack)}"


def gcs_bucket(environment: str, project: str, stack: str) -> str:
    return f"skyfleet-{environment}-policy-{_suffix(project, stack)}"


# Each download below is a shell fragment that writes object "$1" of the fleet's store
# to "$tmp" with the host's own cloud identity (no credential is ever written to a host)
# and fails on any HTTP error; `bootstrap.render_fetch_script` wraps it.

_S3_EMPTY_PAYLOAD = (
    "x-amz-content-sha256: e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
)
"""S3 refuses a SigV4 request without this header (the body's hash, here of an empty
GET), and Debian 12's curl (7.88) does not add it: we send it, and curl signs it."""


def aws_download(bucket: str, region: str) -> str:
    """S3 GET signed by curl (--aws-sigv4) with the instance role's credentials from
    IMDSv2; the credentials go to curl on stdin (-K -), never on a command line."""
    imds = "http://169.254.169.254/latest"
    return (
        f"imds_token=$(curl -sf -X PUT -H 'X-aws-ec2-metadata-token-ttl-seconds: 300' "
        f"{imds}/api/token)\n"
        f"role=$(curl -sf -H \"X-aws-ec2-metadata-token: $imds_token\" "
        f"{imds}/meta-data/iam/security-credentials/)\n"
        f"creds=$(curl -sf -H \"X-aws-ec2-metadata-token: $imds_token\" "
        f"{imds}/meta-data/iam/security-credentials/$role)\n"
        "field() { printf '%s' \"$creds\" | " + _JSON_FIELD + " \"$1\"; }\n"
        "printf 'user = \"%s:%s\"\\nheader = \"x-amz-security-token: %s\"\\n' "
        "\"$(field AccessKeyId)\" \"$(field SecretAccessKey)\" \"$(field Token)\" |\n"
        f"  curl -sf -K - --aws-sigv4 'aws:amz:{region}:s3' -H '{_S3_EMPTY_PAYLOAD}' "
        "-o \"$tmp\" "
        f"\"https://{bucket}.s3.{region}.amazonaws.com/$1\""
    )


def azure_download(account: str, client_id: str) -> str:
    token_url = (
        "http://169.254.169.254/metadata/identity/oauth2/token?api-version=2018-02-01"
        f"&resource=https://storage.azure.com/&client_id={client_id}"
    )
    return (
        f"token=$(curl -sf -H Metadata:true '{token_url}' | {_JSON_FIELD} access_token)\n"
        'printf \'header = "Authorization: Bearer %s"\\n\' "$token" |\n'
        '  curl -sf -K - -H "x-ms-version: 2021-08-06" -o "$tmp" '
        f'"https://{account}.blob.core.windows.net/{AZURE_CONTAINER}/$1"'
    )


def gcp_download(bucket: str) -> str:
    token_url = (
        "http://metadata.google.internal/computeMetadata/v1/instance/service-accounts/default/token"
    )
    return (
        f"token=$(curl -sf -H Metadata-Flavor:Google {token_url} | {_JSON_FIELD} access_token)\n"
        "object=$(printf '%s' \"$1\" | sed 's|/|%2F|g')\n"
        'printf \'header = "Authorization: Bearer %s"\\n\' "$token" |\n'
        '  curl -sf -K - -o "$tmp" '
        f'"https://storage.googleapis.com/storage/v1/b/{bucket}/o/$object?alt=media"'
    )


def sign(document: dict[str, Any], signing_key_pem: str) -> dict[str, Any]:
    from skyfleet.policy.signing import sign_policy

    return sign_policy(document, signing_key_pem.encode())


def signed_envelope(document: dict[str, Any],
                    signing_key_pem: pulumi.Input[str]) -> pulumi.Output[str]:
    """The published text, signed with the fleet key. Not a secret (only the key is):
    every agent and operator may read the policy."""
    from skyfleet.policy.envelope import wire_text

    return pulumi.Output.unsecret(pulumi.Output.from_input(signing_key_pem).apply(
        lambda key: wire_text(sign(document, key))))


def policy_hash(document: dict[str, Any]) -> str:
    from skyfleet.policy.canonical import policy_hash as canonical_hash

    return canonical_hash(document)
