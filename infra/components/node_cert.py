"""A node's TLS certificate as a resource, so it is issued once and kept in state.

Issuing in the program body would mint a new key on every run and, through user data,
touch every host on every `pulumi up`. As a dynamic resource the certificate changes only
when what it certifies changes (node name, addresses, issuing CA); its key is a secret
output. Issuance itself is `skyfleet.security.certs.issue_node_cert`, the same code the
local fleet uses.
"""

from __future__ import annotations

from typing import Any

import pulumi
from pulumi.dynamic import CreateResult, DiffResult, Resource, ResourceProvider

_REPLACE_ON = ("node_name", "hosts", "ca_cert_pem")


def _text(pem: bytes | str) -> str:
    return pem.decode() if isinstance(pem, bytes) else pem


class NodeCertificateProvider(ResourceProvider):
    """create issues; diff replaces only on identity change; delete has nothing to free."""

    def create(self, props: dict[str, Any]) -> CreateResult:
        from skyfleet.security.certs import issue_node_cert

        cert, key = issue_node_cert(
            props["ca_cert_pem"].encode(),
            props["ca_key_pem"].encode(),
            props["node_name"],
            list(props["hosts"]),
        )
        return CreateResult(
            id_=props["node_name"],
            outs={**props, "cert_pem": _text(cert), "key_pem": _text(key)},
        )

    def diff(self, _id: str, olds: dict[str, Any], news: dict[str, Any]) -> DiffResult:
        changed = [k for k in _REPLACE_ON if olds.get(k) != news.get(k)]
        return DiffResult(changes=bool(changed), replaces=changed, delete_before_replace=False)


class NodeCertificate(Resource, module="skyfleet", name="NodeCertificate"):
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
        opts: pulumi.ResourceOptions | None = None,
    ) -> None:
        super().__init__(
            NodeCertificateProvider(),
            name,
            {
                "node_name": node_name,
                "hosts": hosts,
                "ca_cert_pem": ca_cert_pem,
                "ca_key_pem": pulumi.Output.secret(ca_key_pem),
                "cert_pem": None,
                "key_pem": None,
            },
            pulumi.ResourceOptions.merge(
                opts, pulumi.ResourceOptions(additional_secret_outputs=["key_pem"])
            ),
        )
