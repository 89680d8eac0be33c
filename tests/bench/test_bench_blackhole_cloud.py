"""Smoke test of bench/blackhole_cloud.py: one short run of each configuration on the
namespace fleet. Asserts the report is complete and consistent (every task accounted
for, the table written), not how fast anything is. Skipped without network namespaces."""

from __future__ import annotations

import json
from pathlib import Path
from types import ModuleType

import pytest

from skyfleet.localfleet.netns import unavailable_reason

pytestmark = [pytest.mark.netns, pytest.mark.realproc, pytest.mark.slow]

BENCH = Path(__file__).resolve().parents[2] / "bench"


@pytest.fixture
def bench(monkeypatch: pytest.MonkeyPatch) -> ModuleType:
    reason = unavailable_reason()
    if reason is not None:
        pytest.skip(f"needs network namespaces: {reason}")
    monkeypatch.syspath_prepend(str(BENCH))
    import blackhole_cloud

    return blackhole_cloud


def test_both_configurations_are_measured_on_one_fleet(
    bench: ModuleType, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "blackhole.json"
    args = ["--runs", "1", "--warm", "1", "--dark", "3", "--rate", "20", "--out", str(out)]
    assert bench.main(args) == 0
    report = json.loads(out.read_text())
    runs = report["runs"]
    assert [r["config"] for r in runs] == ["skyfleet", "envoy"]
    assert runs[0]["cloud"] != runs[1]["cloud"]  # the dark cloud moves run by run
    for run in runs:
        assert 0 <= run["succeeded"] <= run["tasks"] and run["tasks"] > 0
        assert all(v >= 0 for v in run["last_attempt_s"].values())
        dark = [n for n in bench.AGENTS if n[1] == run["cloud"]]
        assert not set(run["last_attempt_s"]) & {n for n, _ in dark}
    for config in ("skyfleet", "envoy"):
        summary = report["summary"][config]
        assert summary["tasks"] == sum(r["tasks"] for r in runs if r["config"] == config)
    assert "| succeeded (%) |" in capsys.readouterr().out
