"""Serve the guardrails to the Pulumi engine: `pulumi preview --policy-pack infra/guardrails`.

Only composition here: constructing a PolicyPack starts the analyzer's gRPC server and
blocks, so the policies live in `infra.guardrails.pack`, importable by tests.
"""

from pulumi_policy import EnforcementLevel, PolicyPack

from infra.guardrails.pack import PACK_NAME, POLICIES

PolicyPack(name=PACK_NAME, policies=POLICIES, enforcement_level=EnforcementLevel.MANDATORY)
