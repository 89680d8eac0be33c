"""Smoke test of bench/membership_sim_join.py: a small join burst and a dissemination run
end, for every configuration the benchmark compares (not how fast they are)."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from types import ModuleType

import pytest

from skyfleet.config import membership_preset

BENCH = Path(__file__).resolve().parents[2] / "bench"


@pytest.fixture
def bench(monkeypatch: pytest.MonkeyPatch) -> ModuleType:
    monkeypatch.syspath_prepend(str(BENCH))
    import membership_sim_join

    return membership_sim_join


@pytest.mark.parametrize("catch_up", [0.0, 0.2])
@pytest.mark.parametrize("gap", [0.05, 0.2])
def test_a_join_burst_converges_and_news_reaches_everyone(
    bench: ModuleType, gap: float, catch_up: float
) -> None:
    config = replace(membership_preset("lan"), gossip_eager_gap=gap, join_catch_up_window=catch_up)
    assert bench.join_burst(config, 8, seed=3) > 0
    assert bench.dissemination(config, 30, seed=3) is not None
