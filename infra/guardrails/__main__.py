"""Serve the guardrails to the Pulumi engine: `pulumi preview --policy-pack
infra/guardrails --policy-pack-config <file>` (the config: `python -m infra.pack_config
<stack>`). The language host runs this folder with the pack's own virtualenv
(PulumiPolicy.yaml: `virtualenv: venv`, made by install.sh).

Only composition: constructing a PolicyPack starts the analyzer's gRPC server and blocks,
so the policies live in `skyfleet_guardrails.pack`.
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from pulumi_policy import EnforcementLevel, PolicyPack  # noqa: E402
from skyfleet_guardrails.pack import PACK_NAME, POLICIES  # noqa: E402

PolicyPack(name=PACK_NAME, policies=POLICIES, enforcement_level=EnforcementLevel.MANDATORY)
