"""Smoke test of bench/long_task_realproc.py: one run of its three variants with a 1 s
task. The bench itself checks each run's task (SUCCEEDED, the sleep's output, 1 or 2
attempts, a rerun away from the killed executor, every live agent agreeing) and raises
otherwise; this asserts the figures are all there and the JSON and the table are
written, not how fast anything is. Not a few seconds: a kill is detected only after
SWIM's suspicion or three missed 2 s reports, so the executor variant alone takes ~8 s."""

from __future__ import annotations

import json
from pathlib import Path
from types import ModuleType

import pytest

pytestmark = [pytest.mark.realproc, pytest.mark.slow]

BENCH = Path(__file__).resolve().parents[2] / "bench"


@pytest.fixture
def bench(monkeypatch: pytest.MonkeyPatch) -> ModuleType:
    monkeypatch.syspath_prepend(str(BENCH))
    import long_task_realproc

    return long_task_realproc


def test_undisturbed_executor_killed_and_acceptor_killed_side_by_side(
    bench: ModuleType, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "long_task.json"
    assert bench.main(["--runs", "1", "--seconds", "1", "--settle", "0",
                       "--out", str(out)]) == 0
    result = json.loads(out.read_text())

    (run,) = result["each_run"]
    assert set(run) == {"undisturbed", "executor_killed", "acceptor_killed"}
    assert [run[v]["attempts"] for v in bench.VARIANTS] == [1, 2, 1]
    assert {run[v]["state"] for v in bench.VARIANTS} == {"TASK_STATE_SUCCEEDED"}
    killed = run["executor_killed"]
    assert killed["victim"] == killed["first_executor"] != killed["rerun_executor"]
    assert run["acceptor_killed"]["victim"] == bench.ENTRY
    assert killed["trigger"] in ("membership", "silence")
    assert 0 < killed["lost_work_s"] < killed["outcome_s"]
    assert killed["detection_s"] > 0 and killed["rerun_s"] > 0

    summary = result["summary"]
    for variant in bench.VARIANTS:
        lo, mid, hi = (summary[variant]["outcome_s"][k] for k in ("min", "median", "max"))
        assert 0 < lo <= mid <= hi
    for variant in ("executor_killed", "acceptor_killed"):
        assert summary[variant]["ratio_to_undisturbed"]["median"] > 0
        assert summary[variant]["membership_all_dead_s"]["median"] > 0
    assert "detection_s" in summary["executor_killed"]
    assert "detection_s" not in summary["acceptor_killed"]

    table = capsys.readouterr().out
    assert "| detection: kill to attempt 2 RUNNING (s) | — |" in table
    assert "**ratio to undisturbed** (WaitTask)" in table
