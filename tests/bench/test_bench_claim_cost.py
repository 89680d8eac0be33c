"""Smoke test of bench/claim_cost.py: a tiny run measures both sides and reports signed
packets larger than unsigned ones (not by how much, nor how fast)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[2] / "bench"


def test_a_tiny_run_measures_both_sides(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                        capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.syspath_prepend(str(BENCH))
    monkeypatch.setattr(sys, "argv", ["claim_cost.py"])
    import claim_cost

    out = tmp_path / "cost.json"
    assert claim_cost.main(["--packets", "20", "--repeats", "2", "--members", "3",
                            "--out", str(out)]) == 0
    doc = json.loads(out.read_text())
    assert len(doc["unsigned_us"]) == len(doc["signed_us"]) == 2
    for unsigned, signed in doc["sizes"].values():
        assert signed > unsigned
    assert doc["certificate_bytes"] > 0
    assert "signed/unsigned" in capsys.readouterr().out
