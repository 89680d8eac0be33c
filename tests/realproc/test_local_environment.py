"""The `local` environment end to end, as a user runs it, through the Pulumi engine: the
demo in its short mode (every phase an engine step), and `local up | status | down`
leaving nothing behind. Each runs in a throwaway copy of the project (its own stack files,
backend and fleet folder); as root the agents live in network namespaces."""

from __future__ import annotations

import re
import subprocess
import sys
import time
from pathlib import Path

import pytest

from skyfleet.localfleet import ops
from skyfleet.localfleet.stack import LocalStack
from tests.infra.engine_project import make_project

pytestmark = [pytest.mark.realproc, pytest.mark.slow]


def skyfleet(project: Path, *args: str, timeout: float = 400) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "skyfleet", *args, "--project", str(project)],
        cwd=project, capture_output=True, text=True, timeout=timeout,
    )


def test_demo_short_mode_runs_every_phase_through_the_engine_and_loses_nothing(tmp_path):
    project = make_project(tmp_path / "project", network="auto")
    committed = (project / "Pulumi.local.yaml").read_text()
    run = skyfleet(project, "local", "demo", "--quick")
    out = run.stdout
    assert run.returncode == 0, run.stdout + run.stderr
    assert re.search(r"tasks submitted (\d+), succeeded \d+, lost 0", out)
    assert int(re.search(r"tasks submitted (\d+)", out).group(1)) > 100  # type: ignore[union-attr]
    assert re.search(r"rollout: new policy on every agent \d+\.\d+s after `pulumi up` began", out)
    assert re.search(r"cloud loss detected by every survivor after \d+\.\d+s", out)
    loss = re.search(r"cloud-loss\s+(\d+)\s+(\d+)\s+(\d+)\s+(\d+)\s+(\d+)\s+(\d+)", out)
    assert loss is not None
    submitted, ok, failed, deadline, rejected, retried = map(int, loss.groups())
    assert submitted == ok + failed + deadline + rejected
    assert retried > 0  # tasks failed over away from the dead cloud
    # Sessions of the assistant across the loss: every one the lost cloud owned moved (a
    # session of a surviving host may move too: bounded_hash's load bound, or a retry),
    # and no stream's output was ever repeated.
    sessions = re.search(r"sessions: 12 x `assistant` streamed through random agents, "
                         r"(\d+) turns, (\d+) succeeded", out)
    assert sessions is not None, out
    assert int(sessions.group(1)) == 60 and int(sessions.group(2)) > 30
    moved = re.search(r"moved by the loss: (\d+) \(expected (\d+): sessions owned by gcp\)",
                      out)
    assert moved is not None and moved.group(1) == moved.group(2), out
    assert re.search(r"streams cut mid-way, reported so in their end: \d+", out)
    assert ("output repeated: 0 streams; ends whose chunk count differs from what the client "
            "received: 0") in out
    # Every engine step, timed, in order; the rollout preview named one update.
    steps = re.findall(r"^\S+\s+(pulumi \w+(?: --refresh)?): \d+\.\d+s \((.*)\)$", out, re.M)
    # (a new stack has nothing to refresh: its first step is a plain `pulumi up`)
    assert [s for s, _ in steps[:6]] == ["pulumi up", "pulumi preview", "pulumi up",
                                         "pulumi refresh", "pulumi up", "pulumi destroy"]
    assert "1 update" in steps[1][1] and "replace" not in steps[1][1]
    assert "rollout preview: update policy (LocalPolicyFile)" in out
    assert "after pulumi destroy: no agent process, no namespace" in out
    assert (project / ".skyfleet" / "demo.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    # The rollout's `pulumi config set` was put back.
    assert (project / "Pulumi.local.yaml").read_text() == committed


def test_up_status_down_leaves_no_process_and_no_namespace(tmp_path):
    project = make_project(tmp_path / "project", network="auto")
    up = skyfleet(project, "local", "up", timeout=200)
    try:
        assert up.returncode == 0, up.stdout + up.stderr
        outputs = LocalStack(project).outputs()
        assert len(outputs.agents) == 9
        # Every agent runs v1 when `up` returns; the observer's table shows each member's
        # policy once that member's status has reached it by gossip (seconds in a new fleet).
        deadline = time.monotonic() + 60
        while True:
            status = skyfleet(project, "local", "status", timeout=60)
            assert status.returncode == 0, status.stderr
            rows = [line for line in status.stdout.splitlines() if " alive " in line]
            assert len(rows) == 9, status.stdout
            if all(" v1 " in row for row in rows) or time.monotonic() > deadline:
                break
        assert all(" v1 " in row for row in rows), status.stdout
    finally:
        down = skyfleet(project, "local", "down", timeout=120)
    assert down.returncode == 0, down.stdout + down.stderr
    assert "no agent process and no namespace left" in down.stdout
    assert ops.leftovers(outputs) == []
    again = skyfleet(project, "local", "status", timeout=60)
    assert again.returncode == 1 and "Traceback" not in again.stderr
