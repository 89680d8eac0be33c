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

    record_copies: int = 3
    """Agents that keep each long-running task's record (`skyfleet.tasks.records`): it
    survives any `record_copies - 1` of them dying at once."""

    report_interval: float = 2.0
    """Seconds between a long-running task's heartbeats to its holders, and between its
    supervisor's checks; three missed ones and the task runs again elsewhere."""

    max_runs: int = 5
    """Runs of a long-running task at most (its host lost each time) before it fails."""

    record_ttl: float = 3600.0
    """Seconds an ended long-running task's record is kept for GetTask and WaitTask."""

    max_records: int = 10_000
    """Long-running tasks' records one agent keeps at most; past it, ended ones go first
    and a new one is refused if none has ended."""

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
        for name in ("record_copies", "max_runs", "max_records"):
            if getattr(self, name) < 1:
                raise ConfigError(f"tasks.{name}: must be >= 1, got {getattr(self, name)}")
        for name in ("idempotency_ttl", "latency_decay", "report_interval", "record_ttl"):
            value = getattr(self, name)
            if not (math.isfinite(value) and value > 0):
                raise ConfigError(f"tasks.{name}: must be a finite number > 0, got {value}")
        for name in ("sleep_mean", "sleep_scv"):
            value = getattr(self, name)
            if not (math.isfinite(value) and value >= 0):
                raise ConfigError(f"tasks.{name}: must be a finite number >= 0, got {value}")
