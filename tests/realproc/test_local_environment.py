"""The `local` environment end to end, as a user runs it: the demo in its short mode, and
`local up | status | down` leaving nothing behind."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from skyfleet.localfleet import netns
from skyfleet.localfleet.state import FleetState

pytestmark = [pytest.mark.realproc, pytest.mark.slow]

ROOT = Path(__file__).resolve().parents[2]


def skyfleet(*args: str, timeout: float = 400) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "skyfleet", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def test_demo_short_mode_loses_nothing_and_shows_rollout_and_failover(tmp_path: Path) -> None:
    run = skyfleet("local", "demo", "--quick", "--dir", str(tmp_path))
    out = run.stdout
    assert run.returncode == 0, run.stdout + run.stderr
    assert re.search(r"tasks submitted (\d+), succeeded \d+, lost 0", out)
    assert int(re.search(r"tasks submitted (\d+)", out).group(1)) > 100  # type: ignore[union-attr]
    assert re.search(r"policy v1 -> v2 on every agent after \d+\.\d+s", out)
    assert re.search(r"cloud loss detected by every survivor after \d+\.\d+s", out)
    loss = re.search(r"cloud-loss\s+(\d+)\s+(\d+)\s+(\d+)\s+(\d+)\s+(\d+)\s+(\d+)", out)
    assert loss is not None
    submitted, ok, failed, deadline, rejected, retried = map(int, loss.groups())
    assert submitted == ok + failed + deadline + rejected
    assert retried > 0  # tasks failed over away from the dead cloud
    assert (tmp_path / "demo.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert not list(tmp_path.glob("fleet.json"))


def test_up_status_down_leaves_no_process_and_no_namespace(tmp_path: Path) -> None:
    up = skyfleet("local", "up", "--dir", str(tmp_path), timeout=200)
    try:
        assert up.returncode == 0, up.stdout + up.stderr
        state = FleetState.load(tmp_path)
        assert state is not None and len(state.pids) == 9
        status = skyfleet("local", "status", "--dir", str(tmp_path), timeout=60)
        assert status.returncode == 0, status.stderr
        rows = [line for line in status.stdout.splitlines() if " alive " in line]
        assert len(rows) == 9 and all(" v1 " in row for row in rows)
    finally:
        down = skyfleet("local", "down", "--dir", str(tmp_path), timeout=120)
    assert down.returncode == 0, down.stdout + down.stderr
    assert "no agent process and no namespace left" in down.stdout
    for pid in state.pids.values():
        assert not Path(f"/proc/{pid}").exists() or "Z" in Path(f"/proc/{pid}/stat").read_text()
    if state.network_prefix:
        assert netns.leftovers(state.network_prefix) == []
    assert FleetState.load(tmp_path) is None
