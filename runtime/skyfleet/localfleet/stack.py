"""The `local` environment as the stack config describes it.

`Pulumi.local.yaml` is the single description of the local fleet, exactly as
`Pulumi.prod.yaml` is of production: the same loader (`infra.config`) validates it and the
same planner (`infra.topology`) names the hosts, places them in zones and picks the seeds.
Only the last step differs: here each host becomes an agent process on this machine.
"""

from __future__ import annotations

import json
from pathlib import Path

import yaml

from skyfleet.localfleet.layout import AgentSpec

NAMESPACE = "skyfleet:"


def stack_values(path: Path) -> dict[str, str]:
    """`skyfleet:*` values of a stack file, as the raw strings Pulumi config would give
    (lists as JSON)."""
    doc = yaml.safe_load(path.read_text()) or {}
    config = doc.get("config") or {}
    values = {}
    for full_key, value in config.items():
        if not full_key.startswith(NAMESPACE):
            continue
        name = full_key[len(NAMESPACE) :]
        values[name] = json.dumps(value) if isinstance(value, list) else str(value)
    return values


def local_specs(root: Path, *, profile: str = "local") -> list[AgentSpec]:
    """One AgentSpec per host of the local stack."""
    from infra.config import load_stack_config
    from infra.topology import plan_hosts, seeds_for

    values = stack_values(root / "Pulumi.local.yaml")
    cfg = load_stack_config(values.get, "local", root)
    hosts = plan_hosts(cfg)
    return [
        AgentSpec(
            name=h.name,
            cloud=h.cloud,
            region=h.region,
            zone=h.zone,
            address=h.endpoint,
            seeds=seeds_for(h, hosts),
            profile=profile,
            metrics_port=h.metrics_port,
        )
        for h in hosts
    ]
