"""bench/engine_local.py's arithmetic (the runs themselves are the benchmark)."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[2] / "bench" / "engine_local.py"


@pytest.fixture(scope="module")
def bench():
    spec = importlib.util.spec_from_file_location("engine_local", BENCH)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules["engine_local"] = module
    spec.loader.exec_module(module)
    return module


def test_summary_takes_medians_per_fleet_size_and_ratios_per_run(bench):
    runs = [bench.Run(agents=3, engine_up_s=e, runtime_start_s=r, engine_noop_up_s=1.0,
                      rollout_stack_s=s, rollout_publish_s=p)
            for e, r, s, p in ((4.0, 2.0, 3.0, 1.0), (6.0, 2.0, 2.0, 1.0), (5.0, 4.0, 4.0, 2.0))]
    runs.append(bench.Run(agents=9, engine_up_s=9.0, runtime_start_s=3.0,
                          rollout_stack_s=2.0, rollout_publish_s=0.5))
    rows = bench.summary(runs)
    assert set(rows) == {"3", "9"}
    three = rows["3"]
    assert three["engine_up_s"] == 5.0 and three["runtime_start_s"] == 2.0
    assert three["engine_overhead_s"] == 2.0  # medians of (2, 4, 1), not 5 - 2
    assert three["start_ratio"] == 2.0  # of 2.0, 3.0, 1.25
    assert three["rollout_ratio"] == 2.0  # of 3.0, 2.0, 2.0
    assert rows["9"]["engine_overhead_s"] == 6.0
