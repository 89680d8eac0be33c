"""Task execution settings of an agent (the `[tasks]` table of its config)."""

from __future__ import annotations

import math
from dataclasses import dataclass

from skyfleet.config.errors import ConfigError


@dataclass(frozen=True, slots=True, kw_only=True)
class TaskSettings:
    capacity: int = 4
    """Tasks this agent runs at once: its share of the fleet's capacity, advertised to
    peers so that balancers can normalise load by it."""

    queue_limit: int = 64
    """Tasks waiting for a slot beyond `capacity`; past it the agent answers
    RESOURCE_EXHAUSTED and the router tries another peer."""

    handlers: tuple[str, ...] | None = None
    """Handler names served (None: every installed `skyfleet.handlers` entry point)."""

    idempotency_ttl: float = 600.0
    """How long a finished task's result is kept for retries with the same key."""

    latency_decay: float = 10.0
    """Time constant (s) of the latency and error-rate EWMAs reported in status
    (Linkerd's peak-EWMA decay)."""

    sleep_distribution: str = "exponential"
    """Default service-time distribution of the `sleep` handler: fixed, exponential,
    lognormal or bimodal."""

    sleep_mean: float = 0.05
    """Default mean service time (s) of the `sleep` handler."""

    sleep_scv: float = 4.0
    """Squared coefficient of variation of the lognormal `sleep` distribution."""

    def validate(self) -> None:
        if self.capacity < 1:
            raise ConfigError(f"tasks.capacity: must be >= 1, got {self.capacity}")
        if self.queue_limit < 0:
            raise ConfigError(f"tasks.queue_limit: must be >= 0, got {self.queue_limit}")
        if self.sleep_distribution not in ("fixed", "exponential", "lognormal", "bimodal"):
            raise ConfigError(
                f"tasks.sleep_distribution: unknown distribution {self.sleep_distribution!r}"
            )
        for name in ("idempotency_ttl", "latency_decay"):
            value = getattr(self, name)
            if not (math.isfinite(value) and value > 0):
                raise ConfigError(f"tasks.{name}: must be a finite number > 0, got {value}")
        for name in ("sleep_mean", "sleep_scv"):
            value = getattr(self, name)
            if not (math.isfinite(value) and value >= 0):
                raise ConfigError(f"tasks.{name}: must be a finite number >= 0, got {value}")
