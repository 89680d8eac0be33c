"""Smoke test of bench/session_affinity.py: a tiny run writes its table and JSON, plain
hashing moves only the lost peer's share, and the bound holds where plain hashing is
overloaded by a hot session."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[2] / "bench"


def test_a_tiny_run_compares_plain_and_bounded(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.syspath_prepend(str(BENCH))
    import session_affinity

    out = tmp_path / "affinity.json"
    assert session_affinity.main(["--peers", "5", "--sessions", "400", "--lost", "2",
                                  "--factors", "1.25", "--out", str(out)]) == 0
    (row,) = json.loads(out.read_text())["rows"]
    assert 0.5 < row["moved_hash_x_1_over_n"] < 1.5
    assert row["zipf_max_over_mean_bounded"] <= row["factor"] + 0.01  # ceil(c x mean) / mean
    assert row["zipf_max_over_mean_hash"] > row["zipf_max_over_mean_bounded"]
    assert "| peers | c |" in capsys.readouterr().out
