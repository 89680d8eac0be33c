"""Smoke test of bench/policy_propagation.py: small simulated rollouts through the same
phases as the benchmark, and one tiny rollout over real agents, asserting that the
policy reaches everyone by pull and that the yardsticks are measured (not how fast)."""

from __future__ import annotations

from pathlib import Path
from types import ModuleType

import pytest

from skyfleet.config import membership_preset
from skyfleet.config.policy_sync import policy_sync_timings
from skyfleet.policy.signing import TrustedKeys, generate_signing_key
from skyfleet.sim.policy import PolicyCluster

BENCH = Path(__file__).resolve().parents[2] / "bench"


@pytest.fixture
def bench(monkeypatch: pytest.MonkeyPatch) -> ModuleType:
    monkeypatch.syspath_prepend(str(BENCH))
    import policy_propagation

    return policy_propagation


def test_the_simulated_policy_timings_are_the_agents() -> None:
    wan = membership_preset("wan")
    cluster = PolicyCluster(wan, trusted_keys=TrustedKeys.from_pems([generate_signing_key()[1]]))
    assert cluster.timings == policy_sync_timings(wan)
    assert cluster.timings.fetch_timeout == 2 * wan.probe_interval  # WAN: above the floor


def test_simulated_rollout_reaches_every_node_by_verified_pulls(bench: ModuleType) -> None:
    import policy_sim_run

    n, cfg = 40, membership_preset("lan")
    run = policy_sim_run.run_size(n, 3, cfg, plan=policy_sim_run.JoinPlan())

    assert run.join_s is not None
    assert run.alive_all_s is not None and run.status_all_s is not None
    assert run.policy_half_s is not None and run.policy_all_s is not None
    assert 0 < run.policy_half_s <= run.policy_all_s
    # Everyone but the publisher pulled; a pull is at least a request and a reply.
    assert run.pulls >= n - 1 and run.pull_failures == 0
    assert run.pull_rtt_s is not None and run.pull_rtt_s >= 2 * 0.0005
    table = bench.markdown({n: [run]}, {})
    assert table.splitlines()[2].startswith("| sim | 40 | 1 |")


def test_a_crashed_holder_does_not_stop_the_rollout(bench: ModuleType) -> None:
    import policy_sim_run

    key, public = generate_signing_key()
    v1, v2 = policy_sim_run.signed_pair(key)
    cluster = PolicyCluster(
        membership_preset("lan"),
        trusted_keys=TrustedKeys.from_pems([public]),
        initial_envelope=v1,
        seed=5,
    )
    names = [f"n{i}" for i in range(12)]
    for name in names:
        cluster.add_node(name, seeds=(cluster.address(names[0]),))
    assert cluster.run_until_true(cluster.converged, timeout=30) is not None
    cluster.start_advertising()
    cluster.run_for(2.0)

    assert cluster.offer("n3", v2, "admin:test").adopted
    assert cluster.run_until_true(lambda: cluster.on_version(2) >= 4, timeout=10) is not None
    holders = [n for n in names if cluster.version_of(n) == 2]
    cluster.crash(holders[0])
    assert cluster.run_until_true(lambda: cluster.on_version(2) == 11, timeout=30) is not None
    assert all(d.outcome != "invalid" for _, d in cluster.decisions)

    # Restarted on the old persisted version, it pulls the new one again.
    seed = next(n for n in names if n != holders[0])
    cluster.restart(holders[0], seeds=(cluster.address(seed),), incarnation=9)
    assert cluster.version_of(holders[0]) == 1
    assert cluster.run_until_true(lambda: cluster.on_version(2) == 12, timeout=30) is not None


def test_forged_rollout_is_refused_by_every_node(bench: ModuleType) -> None:
    import policy_sim_run

    key, public = generate_signing_key()
    v1, _ = policy_sim_run.signed_pair(key)
    _, forged = policy_sim_run.signed_pair(generate_signing_key()[0])
    cluster = PolicyCluster(
        membership_preset("lan"),
        trusted_keys=TrustedKeys.from_pems([public]),
        initial_envelope=v1,
    )
    for i in range(5):
        cluster.add_node(f"n{i}", seeds=(cluster.address("n0"),))
    cluster.start_advertising()
    cluster.run_for(5.0)
    assert cluster.offer("n1", forged, "admin:test").outcome == "invalid"
    cluster.run_for(5.0)
    assert cluster.on_version(2) == 0


@pytest.mark.realproc
@pytest.mark.slow
async def test_real_rollout_over_three_agents(bench: ModuleType) -> None:
    import policy_realproc_run

    runs = await policy_realproc_run.run_real_sizes([3], 1)
    run = runs[3][0]
    assert run.error == ""
    assert run.join_all_s is not None and run.join_all_s > 0
    assert run.fetch_rtt_s is not None and run.fetch_rtt_s > 0
    assert run.policy_all_s is not None and run.policy_half_s is not None
    assert run.policy_half_s <= run.policy_all_s
    assert bench.markdown({}, runs).splitlines()[2].startswith("| real | 3 | 1 |")
