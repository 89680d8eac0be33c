"""The cases of bench/strategies.py: which scenarios, which strategies, which references.

A *case* is one simulator run: a scenario (fleet, load, service times, gossip period,
cross-cloud delay, event) and a strategy, or a reference (`jsq`: least_loaded on fresh
information; `pooled`: one pooled queue). Capacity is slots per host: equal hosts have 4;
the mixed fleet has clouds of 8, 4 and 2 (2 : 1 : 0.5).
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, replace

from skyfleet.config.policy_defaults import STRATEGIES
from skyfleet.policy.model import (
    AdaptiveParams,
    Locality,
    NoParams,
    P2CParams,
    PeakEwmaParams,
    PolicyDocument,
    Strategy,
)
from skyfleet.sim.task_scenario import CloudFailure, CloudSpec, Scenario, SlowCloud

CLOUDS = ("aws", "azure", "gcp")
EQUAL_SLOTS = (4, 4, 4)
MIXED_SLOTS = (8, 4, 2)
EVENT_CLOUD = "gcp"
EVENT_START, EVENT_END = 200.0, 400.0
CROSS_CLOUD_DELAY = 0.05
"""One way, in mean service times: 50 ms each way for one-second tasks."""

REFERENCES = ("jsq", "pooled")

_PARAMS = {"p2c": P2CParams(), "peak_ewma": PeakEwmaParams(), "adaptive": AdaptiveParams()}


@dataclass(frozen=True, slots=True)
class Case:
    group: str
    scenario: Scenario
    strategy: str
    """A strategy name, or `jsq` / `pooled`."""
    locality: str = "none"

    def policy(self) -> PolicyDocument:
        name = "least_loaded" if self.strategy == "jsq" else self.strategy
        return PolicyDocument(
            version=1,
            strategy=Strategy(name=name, params=_PARAMS.get(name, NoParams())),
            locality=Locality(prefer=self.locality),
        )


def fleet(hosts: int, capacities: str) -> tuple[CloudSpec, ...]:
    slots = EQUAL_SLOTS if capacities == "equal" else MIXED_SLOTS
    return tuple(
        CloudSpec(name=c, hosts=hosts, slots=s) for c, s in zip(CLOUDS, slots, strict=True)
    )


def scenario(
    *,
    hosts: int,
    capacities: str = "equal",
    service: str = "exponential",
    load: float = 0.9,
    gossip: float = 1.0,
    delay: float = 0.0,
    event: str = "none",
    scale: float = 1.0,
    seed: int = 1,
) -> Scenario:
    """Duration scales so each run has roughly 30-50k measured tasks at `scale` 1."""
    duration = (1000.0 if hosts <= 3 else 500.0) * scale
    events: tuple[SlowCloud | CloudFailure, ...] = ()
    if event == "slow":
        events = (SlowCloud(cloud=EVENT_CLOUD, start=EVENT_START, end=EVENT_END),)
    elif event == "fail":
        events = (CloudFailure(cloud=EVENT_CLOUD, start=EVENT_START, end=EVENT_END),)
    if event != "none":
        duration = 600.0
    return Scenario(
        clouds=fleet(hosts, capacities),
        load=load,
        service=service,
        gossip_period=gossip,
        cross_cloud_delay=delay,
        duration=duration,
        warmup=min(100.0, duration / 5),
        events=events,
        seed=seed,
        series_bin=5.0 if event != "none" else 0.0,
        labels={
            "fleet": f"3x{hosts}",
            "capacities": capacities,
            "service": service,
            "load": str(load),
            "gossip": str(gossip),
            "delay": str(delay),
            "event": event,
        },
    )


def _with_refs(group: str, scenarios: list[Scenario], strategies: tuple[str, ...]) -> list[Case]:
    cases = []
    for sc in scenarios:
        for name in (*strategies, *REFERENCES):
            if name == "jsq":
                cases.append(Case(group, replace(sc, fresh_status=True), name))
            else:
                cases.append(Case(group, sc, name))
    return cases


def default_grid(scale: float = 1.0, strategies: tuple[str, ...] = STRATEGIES) -> list[Case]:
    """The grid that answers the issue's questions in ~10 minutes on two idle cores."""
    s = scale
    cases: list[Case] = []
    loads = (0.5, 0.7, 0.9, 0.95)
    sweep = [scenario(hosts=h, load=x, scale=s) for h in (3, 10) for x in loads]
    cases += _with_refs("load", sweep, strategies)
    gossip = [scenario(hosts=h, gossip=g, scale=s) for h in (3, 10) for g in (0.1, 10.0)]
    cases += _with_refs("gossip", gossip, strategies)
    mixed = [
        scenario(hosts=h, capacities="mixed", load=x, gossip=g, scale=s)
        for h in (3, 10)
        for x, g in ((0.7, 1.0), (0.9, 1.0), (0.95, 1.0), (0.9, 10.0))
    ]
    cases += _with_refs("mixed", mixed, strategies)
    service = [
        scenario(hosts=3, service=k, gossip=g, scale=s)
        for k in ("lognormal", "bimodal")
        for g in (1.0, 10.0)
    ]
    cases += _with_refs("service", service, strategies)
    events = [scenario(hosts=3, load=0.6, event=e) for e in ("slow", "fail")]
    cases += _with_refs("events", events, strategies)
    cases += locality_cases(scale)
    return cases


def quick_grid(strategies: tuple[str, ...] = STRATEGIES) -> list[Case]:
    """Under a minute: the bar scenario and gossip 10 on 3x3, and the two events."""
    s = 0.2
    cases = _with_refs("load", [scenario(hosts=3, load=0.9, scale=s)], strategies) + _with_refs(
        "gossip", [scenario(hosts=3, gossip=10.0, scale=s)], strategies
    )
    events = [scenario(hosts=3, load=0.6, event=e) for e in ("slow", "fail")]
    return cases + _with_refs("events", events, ("p2c", "random", "adaptive"))


def full_grid(strategies: tuple[str, ...] = STRATEGIES) -> list[Case]:
    """The issue's whole cartesian product (hours on two cores)."""
    cases: list[Case] = []
    dims = itertools.product(
        (3, 10),
        ("equal", "mixed"),
        ("exponential", "lognormal", "bimodal"),
        (0.5, 0.7, 0.9, 0.95),
        (0.1, 1.0, 10.0),
        (0.0, CROSS_CLOUD_DELAY),
    )
    for h, cap, svc, load, g, delay in dims:
        sc = scenario(hosts=h, capacities=cap, service=svc, load=load, gossip=g, delay=delay)
        cases += _with_refs("full", [sc], strategies)
    events = [scenario(hosts=h, load=0.6, event=e) for h in (3, 10) for e in ("slow", "fail")]
    return cases + _with_refs("events", events, strategies) + locality_cases(1.0)


def locality_cases(scale: float) -> list[Case]:
    """Cross-cloud delay: does keeping tasks at home pay, and who learns it unaided?"""
    sc = scenario(hosts=3, load=0.7, delay=CROSS_CLOUD_DELAY, scale=scale)
    cases = [Case("locality", sc, n) for n in ("random", "p2c", "peak_ewma", "adaptive")]
    cases += [Case("locality", sc, "p2c", loc) for loc in ("zone", "cloud")]
    cases += [
        Case("locality", replace(sc, fresh_status=True), "jsq"),
        Case("locality", sc, "pooled"),
    ]
    return cases
