"""Smoke test of bench/membership_sim.py: one small run through the same phases as the
benchmark, asserting the protocol behaves (not how fast the machine is)."""

from __future__ import annotations

from pathlib import Path
from types import ModuleType

import pytest

from skyfleet.config import membership_preset
from skyfleet.membership.timing import suspicion_timeout

BENCH = Path(__file__).resolve().parents[2] / "bench"


@pytest.fixture
def bench(monkeypatch: pytest.MonkeyPatch) -> ModuleType:
    monkeypatch.syspath_prepend(str(BENCH))
    import membership_sim

    return membership_sim


def test_small_fleet_informs_everyone_detects_the_crash_and_accuses_no_live_node(
    bench: ModuleType,
) -> None:
    n, cfg = 50, membership_preset("lan")
    run = bench.measure_size(n, seed=7, config=cfg)

    assert run.join_s is not None
    fractions = [f for _, f in run.curve]
    assert fractions == sorted(fractions), "the news was forgotten by someone"
    assert fractions[0] < 0.5 and fractions[-1] == 1.0
    assert run.t50_s is not None and run.t_all_s is not None and run.t50_s <= run.t_all_s

    # Nobody may declare the crashed node dead before the shortest suspicion timeout.
    shortest = suspicion_timeout(cfg.suspicion_mult, n, cfg.probe_interval)
    assert run.first_dead_s is not None and run.all_dead_s is not None
    assert shortest <= run.first_dead_s <= run.all_dead_s

    assert run.false_failed == 0
    # Quiet fleet: at least one ping and one ack per node per probe interval.
    assert run.packets_per_node_s >= 2.0 / cfg.probe_interval
    assert run.bytes_per_node_s > 0

    summary = bench.summarize([run])
    assert summary["false_failed"] == 0
    assert summary["t_all_s"] == pytest.approx(run.t_all_s, abs=1e-3)
    assert bench.markdown_table({n: summary}).splitlines()[2].startswith("| 50 |")
