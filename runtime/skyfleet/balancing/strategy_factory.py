"""Build the strategy a policy names, with its parameters."""

from __future__ import annotations

import random
from collections.abc import Mapping

from skyfleet.balancing.strategies import (
    P2C,
    LeastLoaded,
    PeakEwma,
    RandomPick,
    RoundRobin,
    Strategy,
    Weighted,
)
from skyfleet.config.policy_defaults import P2C_CHOICES
from skyfleet.policy.model import AdaptiveParams, P2CParams, PeakEwmaParams
from skyfleet.policy.model import Strategy as StrategySpec


def make_strategy(
    spec: StrategySpec, *, weights: Mapping[str, float], rng: random.Random
) -> Strategy:
    """The strategy object for `spec`. `weights` maps cloud -> capacity multiplier."""
    params = spec.params
    match spec.name:
        case "round_robin":
            return RoundRobin(rng)
        case "random":
            return RandomPick(rng)
        case "weighted":
            return Weighted(rng, weights)
        case "least_loaded":
            return LeastLoaded(rng, weights)
        case "p2c":
            assert isinstance(params, P2CParams)
            return P2C(
                rng, weights, choices=params.choices, capacity_weighted=params.capacity_weighted
            )
        case "peak_ewma":
            assert isinstance(params, PeakEwmaParams)
            return PeakEwma(
                rng, weights, decay_seconds=params.decay_seconds, choices=params.choices
            )
        case "adaptive":
            # Imported here: it pulls in numpy, which a fleet not using it should not pay
            # for at every agent start (about 0.2 s of a 2-core machine per agent).
            from skyfleet.balancing.adaptive import Adaptive

            assert isinstance(params, AdaptiveParams)
            # The policy has no `choices` for adaptive yet; it samples as p2c does.
            return Adaptive(
                rng,
                weights,
                exploration=params.exploration,
                decay_seconds=params.decay_seconds,
                choices=P2C_CHOICES,
            )
    raise ValueError(f"strategy.name: unknown strategy {spec.name!r}")
