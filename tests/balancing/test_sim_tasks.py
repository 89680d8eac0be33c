"""The task simulator and its references: Erlang C against known values, the pooled
simulation against Erlang C, determinism, and the failure path end to end."""

from __future__ import annotations

import math
from dataclasses import replace

import numpy as np
import pytest

from skyfleet.policy.model import Locality, PolicyDocument, parse_policy
from skyfleet.sim.task_pooled import simulate_pooled
from skyfleet.sim.task_reference import (
    erlang_c,
    mmc_mean_response,
    mmc_mean_wait,
    mmc_response_quantile,
    mmc_response_survival,
    mmc_wait_quantile,
)
from skyfleet.sim.task_scenario import CloudFailure, CloudSpec, Scenario, SlowCloud
from skyfleet.sim.task_service import SERVICE_KINDS, draw_service, service_scv
from skyfleet.sim.task_stats import series, summarise
from skyfleet.sim.tasks import TaskSim


@pytest.mark.parametrize(
    ("c", "offered", "expected"),
    [
        (1, 0.5, 0.5),  # M/M/1: the wait probability is rho
        (1, 0.9, 0.9),
        (2, 1.0, 1 / 3),
        (10, 8.0, 0.4092),  # textbook table value
        (5, 0.0, 0.0),
    ],
)
def test_erlang_c(c: int, offered: float, expected: float) -> None:
    assert erlang_c(c, offered) == pytest.approx(expected, abs=5e-5)


def test_erlang_c_rejects_an_unstable_queue() -> None:
    with pytest.raises(ValueError, match="offered load"):
        erlang_c(4, 4.0)


@pytest.mark.parametrize(("lam", "q"), [(0.5, 0.5), (0.9, 0.99), (0.9, 0.999)])
def test_mm1_matches_its_closed_form(lam: float, q: float) -> None:
    # M/M/1 response time is Exp(mu - lam): mean 1/(1-lam), quantile -ln(1-q)/(1-lam).
    assert mmc_mean_response(1, lam) == pytest.approx(1 / (1 - lam))
    assert mmc_response_quantile(q, 1, lam) == pytest.approx(-math.log(1 - q) / (1 - lam))


@pytest.mark.parametrize(("lam", "q"), [(0.5, 0.9), (0.9, 0.99)])
def test_mm1_wait_matches_its_closed_form(lam: float, q: float) -> None:
    # M/M/1: P(W > t) = rho exp(-(1 - rho) t), so the mean is rho / (1 - rho).
    assert mmc_mean_wait(1, lam) == pytest.approx(lam / (1 - lam))
    assert mmc_wait_quantile(q, 1, lam) == pytest.approx(math.log(lam / (1 - q)) / (1 - lam))
    assert mmc_wait_quantile(0.3, 1, 0.5) == 0.0  # half the tasks never wait


def test_mmc_survival_is_a_distribution_consistent_with_the_mean() -> None:
    c, lam = 36, 32.4
    ts = np.linspace(0, 60, 60001)
    surv = np.array([mmc_response_survival(t, c, lam) for t in ts])
    assert surv[0] == 1.0 and np.all(np.diff(surv) <= 1e-12)
    mean = float(np.sum((surv[:-1] + surv[1:]) / 2) * (ts[1] - ts[0]))  # E[T] = int P(T>t)
    assert mean == pytest.approx(mmc_mean_response(c, lam), rel=1e-4)


@pytest.mark.parametrize("kind", SERVICE_KINDS)
def test_service_times_have_mean_one_and_the_documented_scv(kind: str) -> None:
    x = draw_service(kind, np.random.default_rng(1), 400_000)
    assert x.mean() == pytest.approx(1.0, rel=0.02)
    assert x.var() / x.mean() ** 2 == pytest.approx(service_scv(kind), rel=0.1)


def fleet(hosts: int = 3, slots: int = 2) -> tuple[CloudSpec, ...]:
    return tuple(CloudSpec(name=c, hosts=hosts, slots=slots) for c in ("aws", "azure", "gcp"))


def test_pooled_simulation_agrees_with_erlang_c() -> None:
    sc = Scenario(clouds=fleet(), load=0.7, duration=3000.0, warmup=100.0, seed=3)
    s = summarise(simulate_pooled(sc))
    assert s.mean == pytest.approx(mmc_mean_response(18, 0.7 * 18), rel=0.03)
    # The wait, response less service: at load 0.9, where there is some (noisy: ±20 %).
    busy = Scenario(clouds=fleet(), load=0.9, duration=5000.0, warmup=100.0, seed=3)
    wait = summarise(simulate_pooled(busy)).wait_mean
    assert wait == pytest.approx(mmc_mean_wait(18, 0.9 * 18), rel=0.25)
    assert s.p99 == pytest.approx(mmc_response_quantile(0.99, 18, 0.7 * 18), rel=0.08)


NO_LOCALITY = PolicyDocument(version=1, locality=Locality(prefer="none"))


def test_a_run_is_a_pure_function_of_the_scenario() -> None:
    sc = Scenario(clouds=fleet(), load=0.8, duration=150.0, warmup=20.0, seed=5)
    a, b = TaskSim(sc, NO_LOCALITY).run(), TaskSim(sc, NO_LOCALITY).run()
    assert np.array_equal(a.latency, b.latency) and len(a.latency) > 1000
    # A crash too: its broken attempts are answered in an order of the run's own, not of
    # where the tasks happen to sit in memory.
    crash = replace(sc, load=0.95, events=(CloudFailure(cloud="gcp", start=60.0, end=140.0),))
    runs = [TaskSim(crash, NO_LOCALITY).run() for _ in range(4)]
    assert all(np.array_equal(runs[0].latency, r.latency) for r in runs[1:])
    assert all(runs[0].failed == r.failed for r in runs[1:])
    c = TaskSim(
        Scenario(clouds=fleet(), load=0.8, duration=150.0, warmup=20.0, seed=6), NO_LOCALITY
    )
    assert not np.array_equal(a.latency, c.run().latency)


def test_statuses_reach_the_routers_by_gossip_dated_by_their_measurement() -> None:
    sc = Scenario(clouds=fleet(), load=0.8, duration=60.0, warmup=10.0, seed=2)
    sim = TaskSim(sc, NO_LOCALITY)
    sim.run()
    nodes = sim.fleet.nodes
    own = {name: node.swim.statuses()[name][0] for name, node in nodes.items()}
    lags = []
    for name, node in nodes.items():
        held = node.swim.statuses()
        assert set(held) == set(nodes)  # every router knows every host's load
        for origin, (status, arrived) in held.items():
            if origin == name:
                continue
            newest = own[origin]
            assert status.seq <= newest.seq  # never ahead of its origin
            if status.seq == newest.seq:  # the same report: the origin's measurement time
                assert status.measured_at == newest.measured_at
            assert arrived >= status.measured_at
            lags.append(arrived - status.measured_at)
    # Gossip takes rounds (0.2 s each), not zero time: some statuses arrived a round late.
    assert max(lags) >= sim.fleet.config.gossip_interval


def test_p2c_on_gossip_beats_random_and_jsq_on_fresh_state_beats_both() -> None:
    from skyfleet.policy.model import NoParams, Strategy

    sc = Scenario(clouds=fleet(), load=0.9, duration=400.0, warmup=50.0, seed=7)
    p2c = summarise(TaskSim(sc, NO_LOCALITY).run())
    rnd_policy = PolicyDocument(
        version=1,
        strategy=Strategy(name="random", params=NoParams()),
        locality=Locality(prefer="none"),
    )
    rnd = summarise(TaskSim(sc, rnd_policy).run())
    jsq_policy = PolicyDocument(
        version=1,
        strategy=Strategy(name="least_loaded", params=NoParams()),
        locality=Locality(prefer="none"),
    )
    from dataclasses import replace

    jsq = summarise(TaskSim(replace(sc, fresh_status=True), jsq_policy).run())
    pooled = mmc_mean_response(18, 0.9 * 18)
    assert pooled < jsq.mean < p2c.mean < rnd.mean
    assert p2c.stable and rnd.stable


def test_a_failed_cloud_is_left_within_seconds_and_tasks_are_retried_elsewhere() -> None:
    fail = CloudFailure(cloud="gcp", start=60.0, end=140.0)
    sc = Scenario(
        clouds=fleet(),
        load=0.5,
        duration=200.0,
        warmup=20.0,
        seed=9,
        events=(fail,),
        series_bin=2.0,
    )
    sim = TaskSim(sc, NO_LOCALITY)
    run = sim.run()
    s = series(run, 2.0, sc.duration)
    t = np.array(s["t"])
    share = np.array(s["share_gcp"])
    # Failures and ejection act before membership has suspected anyone (seconds).
    assert share[(t > 50) & (t < 60)].mean() > 0.2
    assert share[(t > 64) & (t < 90)].max() < 0.05
    assert share[t > 150].mean() > 0.2  # back after recovery and ejection expiry
    assert run.retries > 0
    # Almost every task still succeeds (some lose every attempt before ejection kicks in).
    assert run.failed <= 0.01 * run.measured
    assert run.unfinished == 0
    # The restarted gcp agents rejoined: every agent sees every other alive again.
    assert sim.fleet.converged() and len(sim.fleet.live_names()) == 9


def test_the_simulator_retries_by_the_agents_rules_a_dead_cloud_costs_no_budget() -> None:
    """The retry budget forbids every budgeted retry; failing over from a cloud whose
    hosts refuse the connection is still allowed, in the simulator as in the agent,
    because both run the one `TaskFlight`."""
    doc = NO_LOCALITY.to_dict()
    doc["failover"]["retry_budget"] = {"percent": 0, "min_concurrent": 0}
    policy = parse_policy(doc)
    fail = CloudFailure(cloud="gcp", start=30.0, end=200.0)
    sc = Scenario(clouds=fleet(), load=0.5, duration=100.0, warmup=20.0, seed=4, events=(fail,))
    run = TaskSim(sc, policy).run()
    free = TaskSim(sc, NO_LOCALITY).run()
    # Every retry is a failover from a refusing peer: a zero budget changes nothing (with
    # the simulator's old copy of the rule, every one of them was refused).
    assert run.retries > 0 and (run.retries, run.failed) == (free.retries, free.failed)
    assert np.array_equal(run.latency, free.latency)
    assert run.failed <= 0.01 * run.measured and run.unfinished == 0


def test_a_slow_cloud_gets_less_traffic_while_slow() -> None:
    slow = SlowCloud(cloud="gcp", start=50.0, end=150.0)
    sc = Scenario(
        clouds=fleet(),
        load=0.6,
        duration=200.0,
        warmup=20.0,
        seed=11,
        events=(slow,),
        series_bin=5.0,
    )
    s = series(TaskSim(sc, NO_LOCALITY).run(), 5.0, sc.duration)
    t, share = np.array(s["t"]), np.array(s["share_gcp"])
    assert share[(t > 70) & (t < 150)].mean() < 0.8 * share[(t > 20) & (t < 50)].mean()


def test_a_fleet_that_died_whole_forms_again() -> None:
    one = (CloudSpec(name="aws", hosts=3, slots=2),)
    sc = Scenario(clouds=one, load=0.5, duration=80.0, warmup=10.0, seed=3,
                  events=(CloudFailure(cloud="aws", start=30.0, end=40.0),))
    sim = TaskSim(sc, NO_LOCALITY)
    run = sim.run()
    assert sim.fleet.converged() and len(sim.fleet.live_names()) == 3
    assert run.unfinished == 0 and len(run.latency) > 0


def test_bad_scenarios_are_named() -> None:
    with pytest.raises(ValueError, match="gossip_period"):
        Scenario(clouds=fleet(), load=0.5, gossip_period=0.0)
    with pytest.raises(ValueError, match="clouds"):
        Scenario(clouds=(CloudSpec(name="aws", hosts=0, slots=1),), load=0.5)
    with pytest.raises(ValueError, match=r"events\[1\]: overlaps events\[0\] in cloud 'gcp'"):
        Scenario(clouds=fleet(), load=0.5, events=(
            CloudFailure(cloud="gcp", start=10.0, end=50.0),
            CloudFailure(cloud="gcp", start=20.0, end=30.0),
        ))
    with pytest.raises(ValueError, match=r"events\[0\]: start must be before end"):
        Scenario(clouds=fleet(), load=0.5, events=(SlowCloud(cloud="gcp", start=5.0, end=5.0),))
