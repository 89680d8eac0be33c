"""Skyfleet: run fleets of AI agents redundantly across clouds.

The agent runtime. Protocol cores (membership, policy adoption, balancing) are pure,
deterministic state machines; `skyfleet.transport` and `skyfleet.node` put them on gRPC.
"""

__version__ = "0.1.0"
