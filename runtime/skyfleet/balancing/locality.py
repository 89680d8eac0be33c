"""Locality: keep a task in the narrowest failure domain that can take it, and spill
outward by health (Envoy's priority levels) and by load (the policy's spill threshold).

Tiers, narrowest first, for `prefer = zone`: the picking node's zone, the rest of its
region, the rest of its cloud, then the other clouds — cheapest `relative_cost` first,
clouds of equal cost sharing a tier. `prefer = region` or `cloud` starts at that level;
`none` puts every peer in one tier.

Two rules move traffic outward:

1. Health (Envoy): a tier whose healthy share is h takes min(1, h x overprovisioning
   factor) of the traffic still unplaced; the rest goes to the next tier. With the
   default 1.4 a zone can lose ~29 % of its hosts before anything leaves it.
2. Load: when the chosen tier's utilisation (estimated tasks / capacity) is above the
   spill threshold, the next tier joins it and the strategy picks over both, repeating
   while the union is still too busy. Load then flows outward only as far as needed.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

from skyfleet.balancing.peers import Locale, PeerLoad
from skyfleet.policy.model import Locality


def tier_of(local: Locale, peer: PeerLoad, prefer: str) -> int:
    """0 for the preferred domain, 1, 2 for the next wider ones; 3 means another cloud.
    With `prefer = none` everything is tier 0."""
    if prefer == "none":
        return 0
    same_cloud = peer.cloud == local.cloud
    same_region = same_cloud and peer.region == local.region
    if not same_cloud:
        return 3
    if prefer == "zone":
        return 0 if same_region and peer.zone == local.zone else 1 if same_region else 2
    if prefer == "region":
        return 0 if same_region else 1
    return 0


def tiers(
    local: Locale,
    peers: Sequence[PeerLoad],
    prefer: str,
    relative_cost: Mapping[str, float],
) -> list[list[PeerLoad]]:
    """`peers` grouped into non-empty tiers, narrowest first; other clouds are ordered by
    relative cost (equal costs share a tier)."""
    groups: dict[tuple[int, float], list[PeerLoad]] = {}
    for p in peers:
        t = tier_of(local, p, prefer)
        cost = relative_cost.get(p.cloud, 1.0) if t == 3 else 0.0
        groups.setdefault((t, cost), []).append(p)
    return [groups[k] for k in sorted(groups)]


def tier_shares(healthy_fractions: Sequence[float], overprovisioning_factor: float) -> list[float]:
    """Envoy priority load: the share of traffic each tier takes, given each tier's healthy
    fraction. Sums to 1 unless no tier has a healthy host (then all zeros); when the
    tiers together are short of health the shares are scaled up to sum to 1."""
    shares: list[float] = []
    left = 1.0
    for h in healthy_fractions:
        share = min(left, min(1.0, h * overprovisioning_factor))
        shares.append(share)
        left -= share
    total = sum(shares)
    return [s / total for s in shares] if total > 0 else shares


def utilisation(peers: Sequence[PeerLoad], capacity: Callable[[PeerLoad], float]) -> float:
    """Estimated tasks per unit of capacity over `peers`."""
    return sum(p.load for p in peers) / sum(capacity(p) for p in peers)


def select(
    all_tiers: Sequence[Sequence[PeerLoad]],
    healthy_tiers: Sequence[Sequence[PeerLoad]],
    policy: Locality,
    capacity: Callable[[PeerLoad], float],
    u: float,
) -> tuple[list[PeerLoad], int]:
    """The peers the strategy picks among, and the index of the tier the pick started at.

    `healthy_tiers[i]` holds the healthy members of `all_tiers[i]`; `u` is a uniform
    draw in [0, 1) choosing the tier by health share. Returns ([], -1) when no tier has
    a healthy peer.
    """
    fractions = [len(h) / len(a) for a, h in zip(all_tiers, healthy_tiers, strict=True)]
    shares = tier_shares(fractions, policy.overprovisioning_factor)
    start, acc = -1, 0.0
    for i, share in enumerate(shares):
        if share <= 0:
            continue
        start = i
        acc += share
        if u < acc:
            break
    if start < 0:
        return [], -1
    chosen = list(healthy_tiers[start])
    threshold = policy.spill_threshold_percent / 100.0
    for wider in healthy_tiers[start + 1 :]:
        if utilisation(chosen, capacity) <= threshold:
            break
        chosen.extend(wider)
    return chosen, start
