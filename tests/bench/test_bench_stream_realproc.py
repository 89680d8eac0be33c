"""Smoke test of bench/stream_realproc.py: two real agents and the bare server, tiny
counts, two runs; asserts that every path delivered every chunk through the right
executor (the bench checks each stream and raises otherwise), that each cell has its
figures and ratios, that the JSON and the table are written (not how fast anything is)."""

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
    import stream_realproc

    return stream_realproc


def test_routed_direct_and_bare_streams_side_by_side(
    bench: ModuleType, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "stream.json"
    argv = [
        "--runs", "2",
        "--ttfc-streams", "4",
        "--ttfc-concurrency", "1", "2",
        "--shapes", "30x1024", "3x65536",
        "--throughput-concurrency", "2",
        "--out", str(out),
    ]  # fmt: skip
    assert bench.main(argv) == 0
    result = json.loads(out.read_text())

    ttfc = result["time_to_first_chunk"]
    assert [row["concurrency"] for row in ttfc] == [1, 2]
    for row in ttfc:
        assert row["runs"] == 2
        for label in ("routed", "direct", "bare"):
            assert all(run["streams"] == 4 for run in row[label]["each_run"])
            p50 = row[label]["p50_ms"]
            assert 0 < p50["min"] <= p50["median"] <= p50["max"]
        # The entry agent's own view: a0 forwarded (its first chunk came from c0).
        assert row["routed"]["agent_first_chunk_p50_ms"]["median"] > 0
        assert row["routed_over_direct"]["p50_ms"]["median"] > 0
        assert "agent_first_chunk_p50_ms" not in row["direct_over_bare"]  # bare has none

    shapes = [(row["chunks_per_stream"], row["chunk_bytes"]) for row in result["throughput"]]
    assert shapes == [(30, 1024), (3, 65536)]
    for row in result["throughput"]:
        for label in ("routed", "direct", "bare"):
            for run in row[label]["each_run"]:
                assert run["chunks"] == 2 * row["chunks_per_stream"]
                assert set(run["cpu_us_per_chunk"]) == {"client", "a0", "c0", "bare-stream"}
        lo, mid, hi = (row["routed_over_direct"]["mb_per_s"][k] for k in ("min", "median", "max"))
        assert 0 < lo <= mid <= hi

    table = capsys.readouterr().out
    assert "| 1 KiB | 30 | 2 |" in table and "| 64 KiB | 3 | 2 |" in table
