"""Balancing: pick the peer for each task attempt under the policy in force. Pure: the
clock (`now`) and randomness (`random.Random`) are injected; no I/O.

    peers             PeerLoad, the view of a candidate a strategy sees; Locale
    costs             the ranking formulas (p2c cost, peak EWMA)
    strategies        round_robin, random, weighted, least_loaded, p2c, peak_ewma
    adaptive          the experimental Thompson-sampling contextual bandit
    strategy_factory  the strategy a policy names
    locality          tiers, health-based shares (Envoy), spill by utilisation
    affinity          sessions: consistent hashing with bounded loads over the pool
    outlier           consecutive-failure ejection of peers and whole clouds
    retry_budget      Envoy's retry budget
    balancer          Balancer: the facade the router and the simulator drive
"""

from skyfleet.balancing.balancer import (
    Balancer,
    Choice,
    NoEligiblePeer,
    NoPeerReason,
    TaskRequest,
)
from skyfleet.balancing.peers import Locale, PeerLoad

__all__ = [
    "Balancer",
    "Choice",
    "Locale",
    "NoEligiblePeer",
    "NoPeerReason",
    "PeerLoad",
    "TaskRequest",
]
