"""Skyfleet's guardrails: a CrossGuard policy pack checked on every preview and update.

`pulumi up --policy-pack infra/guardrails --policy-pack-config <file>` refuses a stack
that opens the agent, admin or metrics port or SSH to the internet, leaves a disk
unencrypted, lets an instance answer IMDSv1, gives an agent host a public address, or has
fewer hosts per cloud and zone than its environment must keep.

The pack is self-contained: its own requirements and virtualenv (infra/guardrails/), no
import from the program it judges. What it must know of the stack (the protected ports,
the per-environment minimums) is pack config, which `python -m infra.pack_config <stack>`
renders from the stack's own config and tables. The rules are plain functions over
resource properties (`ingress`, `hosts`, `redundancy`) wrapped as policies in `pack`, so
tests call them directly and `__main__` only serves the pack.
"""
