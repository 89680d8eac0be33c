"""A cloud host's TLS identity: its key, and a certificate from the fleet CA that
`pulumi up` renews before it expires.

pulumi-tls resources rather than our own issuer: the key (`tls.PrivateKey`) is made
once and kept, as a secret, in state; the certificate (`tls.LocallySignedCert`) is
signed from a request for exactly what `skyfleet.security.certs` issues (CN = node name,
OU = the agent role, DNS SAN = node name, IP SAN = the host's address, server and client
auth) and is re-signed with the same key whenever it is within `EARLY_RENEWAL_HOURS` of
expiry or the CA changes. Only the certificate changes then, and it reaches the host
through the fleet's store (`FleetStore`), never user data, so a renewal or a CA
rotation replaces no host. The key is in the host's user data: it changes only with the
host's identity, which is a new host.
"""

from __future__ import annotations

import pulumi
import pulumi_tls as tls

from skyfleet.security.certs import ROLE_UNITS, Role

VALIDITY_HOURS = 365 * 24
EARLY_RENEWAL_HOURS = 30 * 24
"""A month before expiry, every `pulumi up` renews (a monthly run keeps every host in date;
the agent takes up the new file live, `skyfleet.node.Agent.reload_credentials`)."""


class NodeCertificate(pulumi.ComponentResource):
    cert_pem: pulumi.Output[str]
    key_pem: pulumi.Output[str]

    def __init__(
        self,
        name: str,
        *,
        node_name: str,
        hosts: list[str],
        ca_cert_pem: pulumi.Input[str],
        ca_key_pem: pulumi.Input[str],
        role: Role = "agent",
        opts: pulumi.ResourceOptions | None = None,
    ) -> None:
        """`role` "admin": an operator's client certificate (the rollout's identity)."""
        super().__init__("skyfleet:infra:NodeCertificate", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        key = tls.PrivateKey(f"{name}-key", algorithm="ECDSA", ecdsa_curve="P256", opts=child)
        request = tls.CertRequest(
            f"{name}-csr",
            private_key_pem=key.private_key_pem,
            subject={"common_name": node_name, "organizational_unit": ROLE_UNITS[role]},
            dns_names=[node_name] if role == "agent" else [],
            ip_addresses=hosts,
            opts=child,
        )
        cert = tls.LocallySignedCert(
            f"{name}-cert",
            cert_request_pem=request.cert_request_pem,
            ca_cert_pem=ca_cert_pem,
            ca_private_key_pem=pulumi.Output.secret(ca_key_pem),
            validity_period_hours=VALIDITY_HOURS,
            early_renewal_hours=EARLY_RENEWAL_HOURS,
            allowed_uses=["digital_signature", "client_auth"]
            + (["server_auth"] if role == "agent" else []),
            set_subject_key_id=True,
            opts=child,
        )
        self.cert_pem = cert.cert_pem
        self.key_pem = pulumi.Output.secret(key.private_key_pem)
        self.register_outputs({"cert_pem": self.cert_pem})
