"""What a task-simulator run is: the fleet, the load, the information delay and the
trouble injected. Plain frozen data, so a scenario can be logged and replayed.

Units: time in mean service times (every service distribution has mean 1), so a gossip
period of 10 is ten average tasks long; the simulator converts to the seconds membership
runs in (`skyfleet.sim.tasks`). Capacity is slots: a host of capacity c runs c
tasks at once, each at rate 1 (times its cloud's speed factor during a slow event).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from skyfleet.config.membership import MembershipConfig


@dataclass(frozen=True, slots=True, kw_only=True)
class CloudSpec:
    name: str
    hosts: int
    slots: int
    """Slots per host in this cloud."""
    zones: int = 3
    """Hosts are spread round-robin over this many zones of one region."""


@dataclass(frozen=True, slots=True, kw_only=True)
class SlowCloud:
    """Every slot of `cloud` runs `factor` times slower from `start` until `end`; hosts
    keep reporting the same capacity, as a real noisy-neighbour slowdown would."""

    cloud: str
    start: float
    end: float
    factor: float = 4.0


@dataclass(frozen=True, slots=True, kw_only=True)
class CloudFailure:
    """Every host of `cloud` dies at `start` (running and queued tasks fail, new
    connections are refused) and restarts at `end`. Membership finds out as the agents'
    does: the simulated fleet runs it."""

    cloud: str
    start: float
    end: float


@dataclass(frozen=True, slots=True, kw_only=True)
class Scenario:
    clouds: tuple[CloudSpec, ...]
    load: float
    """Arrival rate as a share of the fleet's nominal capacity (total slots)."""
    service: str = "exponential"
    gossip_period: float = 1.0
    """The agents' `membership.status_interval` (how often a host checks whether its
    status is worth gossiping) in mean service times: 10 means tasks ten times shorter
    than the interval. Statuses then take SWIM's rounds to spread, in seconds."""
    membership: MembershipConfig = field(default_factory=MembershipConfig)
    """The agents' membership settings (the shipped defaults unless a scenario says)."""
    cross_cloud_delay: float = 0.0
    """One-way network delay between clouds, paid on the way there and back."""
    duration: float = 2000.0
    """Arrivals stop after this; the run then drains."""
    warmup: float = 200.0
    """Tasks created before this are not measured."""
    events: tuple[SlowCloud | CloudFailure, ...] = ()
    fresh_status: bool = False
    """Every pick sees the true current load of every host (no gossip delay, tasks on the
    wire counted): the join-shortest-queue-with-fresh-information reference."""
    seed: int = 1
    series_bin: float = 0.0
    """If > 0, also record a time series in bins of this width."""
    labels: dict[str, str] = field(default_factory=dict, compare=False, hash=False)

    def __post_init__(self) -> None:
        if not 0 < self.load:
            raise ValueError(f"scenario.load must be > 0, got {self.load}")
        if self.gossip_period <= 0:
            raise ValueError(f"scenario.gossip_period must be > 0, got {self.gossip_period}")
        if not 0 <= self.warmup < self.duration:
            raise ValueError("scenario.warmup must be in [0, duration)")
        if not self.clouds or any(c.hosts < 1 or c.slots < 1 for c in self.clouds):
            raise ValueError("scenario.clouds: every cloud needs >= 1 host of >= 1 slot")
        for i, ev in enumerate(self.events):
            if not ev.start < ev.end:
                raise ValueError(f"scenario.events[{i}]: start must be before end")
            for j, other in enumerate(self.events[:i]):
                same = type(other) is type(ev) and other.cloud == ev.cloud
                if same and ev.start < other.end and other.start < ev.end:
                    raise ValueError(
                        f"scenario.events[{i}]: overlaps events[{j}] in cloud {ev.cloud!r}"
                    )

    @property
    def total_slots(self) -> int:
        return sum(c.hosts * c.slots for c in self.clouds)

    @property
    def arrival_rate(self) -> float:
        return self.load * self.total_slots
