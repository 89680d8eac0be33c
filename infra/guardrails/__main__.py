"""Serve the guardrails to the Pulumi engine: `pulumi preview --policy-pack
infra/guardrails/serve --policy-pack-config <file>` (the config: `python -m
infra.pack_config <stack>`).

The pack runs in its own virtualenv (PulumiPolicy.yaml: `virtualenv: venv`, made by
install.sh); started with any other interpreter (`python infra/guardrails`), it moves into
that one first. Then only composition: constructing a PolicyPack starts
the analyzer's gRPC server and blocks, so the policies live in `skyfleet_guardrails.pack`.
"""

import os
import sys
from pathlib import Path

PACK = Path(__file__).resolve().parent
VENV = PACK / "venv"

if Path(sys.prefix).resolve() != VENV:
    python = VENV / "bin" / "python"
    if not python.exists():
        sys.exit(f"the guardrail pack's virtualenv {VENV} is missing: run "
                 "bash infra/guardrails/install.sh")
    os.execv(python, [str(python), str(PACK), *sys.argv[1:]])

sys.path.insert(0, str(PACK))

from pulumi_policy import EnforcementLevel, PolicyPack  # noqa: E402
from skyfleet_guardrails.pack import PACK_NAME, POLICIES  # noqa: E402

PolicyPack(name=PACK_NAME, policies=POLICIES, enforcement_level=EnforcementLevel.MANDATORY)
