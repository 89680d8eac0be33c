"""The core's counters, in a module of their own because every part of it counts."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(slots=True)
class SwimStats:
    """Monotonic counters for metrics."""

    probes: int = 0
    probe_failures: int = 0
    indirect_probes: int = 0
    suspicions: int = 0
    refutations: int = 0
    push_pulls: int = 0
    refused_connections: int = 0
    """Refused connections to members held up (`Swim.refused`), each taken as evidence."""
    refused_claims: int = 0
    """Claims dropped by the incarnation rule (beyond the step or the ceiling)."""
    forged_claims: int = 0
    """Self-claims (alive, leave) not signed by the node they speak for."""
    claims_asked: int = 0
    """Nodes whose signed claims (and certificates) we asked a peer for: a claim signed by
    a key we did not hold yet, or a table row that would change ours."""
    refused_certificates: int = 0
    """Certificates peers sent that the fleet did not issue (or out of date, or no agent's)."""
