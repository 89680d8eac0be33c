"""Skyfleet's guardrails: a CrossGuard policy pack checked on every preview and update.

`pulumi up --policy-pack infra/guardrails` refuses a stack that opens the agent, admin or
metrics port or SSH to the internet, leaves a disk unencrypted, lets an instance answer
IMDSv1, gives an agent host a public address, or has fewer hosts per cloud and zone than
its environment must keep (`infra.config.REDUNDANCY`, the same table the config loader
enforces, re-checked here on what the program actually declares).

The rules are plain functions over resource properties (`ingress`, `hosts`) wrapped as
policies in `pack`, so tests call them directly and `__main__` only serves the pack.
"""
