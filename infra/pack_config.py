"""The guardrail pack's config for a stack: `python -m infra.pack_config <stack> [--out F]`.

The pack (infra/guardrails) imports nothing of the program, so what it must know of a
stack comes from here, derived from the same config and tables the program uses: the
ports it protects (the local stack's hosts share an address and take consecutive ports,
cloud hosts all use the one port) and the minimum redundancy of every environment.

    pulumi preview -s prod --policy-pack infra/guardrails \\
        --policy-pack-config <(python -m infra.pack_config prod)
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from infra.config import REDUNDANCY, StackConfig, StackConfigError, load_stack_config
from infra.stack_files import StackFileError, stack_config
from infra.topology import plan_hosts

WORLD_OPEN_PORTS = "no-world-open-agent-ports"
REDUNDANCY_POLICY = "minimum-redundancy"
"""The pack's policy names (skyfleet_guardrails.findings)."""


def render(cfg: StackConfig) -> dict[str, Any]:
    hosts = plan_hosts(cfg)
    agent = sorted({h.port for h in hosts})
    metrics = sorted({h.metrics_port for h in hosts})
    return {
        WORLD_OPEN_PORTS: {"ports": {"agent/admin": [agent[0], agent[-1]],
                                     "metrics": [metrics[0], metrics[-1]]}},
        REDUNDANCY_POLICY: {"environments": {
            env: {"minClouds": r.min_clouds, "minZones": r.min_zones,
                  "minHostsPerZone": r.min_hosts_per_zone}
            for env, r in REDUNDANCY.items()}},
    }


def for_stack(root: Path, stack: str) -> dict[str, Any]:
    values = stack_config(root, stack)
    return render(load_stack_config(lambda k: values.get(f"skyfleet:{k}"), stack, root))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m infra.pack_config",
                                 description="the guardrail pack's config for a stack")
    ap.add_argument("stack")
    ap.add_argument("--root", type=Path, default=Path.cwd(), help="project folder")
    ap.add_argument("--out", type=Path, help="write here instead of stdout")
    args = ap.parse_args(argv)
    try:
        text = json.dumps(for_stack(args.root, args.stack), indent=2) + "\n"
    except (StackConfigError, StackFileError) as exc:
        print(f"pack_config: {exc}", file=sys.stderr)
        return 1
    if args.out:
        args.out.write_text(text)
    else:
        sys.stdout.write(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
