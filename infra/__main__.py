"""Skyfleet's Pulumi program: read the stack config once, then compose the components.

`pulumi up -s <env>`: hosts per enabled cloud (spread over zones), the VPN mesh between
the clouds, and the signed policy published where each cloud's agents read it. The
`local` stack runs the same composition with local agent processes and a policy file.
"""

import sys
from pathlib import Path

# Pulumi runs `main: infra/` with infra/ itself on sys.path; the program imports itself as
# the `infra` package, so the repository root must be importable too.
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import pulumi  # noqa: E402

from infra.program import compose  # noqa: E402

compose(pulumi.Config("skyfleet"), pulumi.get_project(), pulumi.get_stack())
