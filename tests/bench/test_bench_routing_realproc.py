"""Smoke test of bench/routing_realproc.py: one agent per cloud, tiny windows; asserts
that both systems answer every echo task, that the overhead rows are filled, and that
killing a cloud under load loses no task (not how fast anything is)."""

from __future__ import annotations

from pathlib import Path
from types import ModuleType

import pytest

pytestmark = [pytest.mark.realproc, pytest.mark.slow]

BENCH = Path(__file__).resolve().parents[2] / "bench"


@pytest.fixture
def bench(monkeypatch: pytest.MonkeyPatch) -> ModuleType:
    monkeypatch.syspath_prepend(str(BENCH))
    import routing_realproc

    return routing_realproc


async def test_echo_through_three_clouds_and_loss_of_one(
    bench: ModuleType, tmp_path: Path
) -> None:
    args = bench.parse_args(
        [
            "--per-cloud", "1",
            "--concurrency", "2",
            "--window", "0.5",
            "--repeats", "2",
            "--before-kill", "1",
            "--after-kill", "3",
            "--prefer", "none",
            "--out", str(tmp_path / "routing.json"),
        ]
    )  # fmt: skip
    result = await bench.run(args)

    (row,) = result["overhead"]
    assert row["pairs"] == 2
    for system in ("skyfleet", "bare"):
        assert all(run["tasks"] > 0 for run in row[system]["runs"])
        assert row[system]["succeeded"] == 1.0
    lo, hi = row["throughput_ratio_range"]
    assert 0 < lo <= row["throughput_ratio"] <= hi

    loss = result["cloud_loss"]
    assert loss["victims"] == ["gcp-0"]
    assert loss["tasks_after_kill"] > 0
    assert loss["failed_after_kill"] == 0  # every task found a surviving cloud
    last_run = loss["last_executed_in_killed_s"]
    assert last_run is None or last_run < 1.0  # nothing runs on a dead process
    assert "| 2 |" in bench.markdown(result["overhead"], loss)
