"""The demo's summary table and its chart (throughput and latency over time, events
marked)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np

from skyfleet.localfleet import sessions
from skyfleet.localfleet.demo import PHASES, DemoReport
from skyfleet.localfleet.workload import Record


def summary_lines(report: DemoReport) -> list[str]:
    lines = [
        f"{'phase':<12}{'submitted':>10}{'ok':>7}{'failed':>8}{'deadline':>9}{'rejected':>9}"
        f"{'retried':>8}{'p50 ms':>9}{'p99 ms':>9}{'p99.9 ms':>10}",
    ]
    for phase in PHASES:
        p = report.phases[phase]
        lines.append(
            f"{phase:<12}{p.submitted:>10}{p.succeeded:>7}{p.failed:>8}{p.deadline_exceeded:>9}"
            f"{p.rejected:>9}{p.retried:>8}{p.p50_ms:>9.1f}{p.p99_ms:>9.1f}{p.p999_ms:>10.1f}"
        )
    for phase in PHASES:
        if report.phases[phase].top_error:
            lines.append(f"  {phase}: {report.phases[phase].top_error}")
    total_ok = sum(p.succeeded for p in report.phases.values())
    lines += [
        "",
        f"tasks submitted {report.submitted}, succeeded {total_ok}, lost {report.lost}",
        f"join: all agents see each other after {report.join_seconds:.2f}s",
        f"rollout: new policy on every agent {report.policy_convergence_seconds:.2f}s after "
        "`pulumi up` began",
        f"cloud loss detected by every survivor after {report.detection_seconds:.2f}s",
        f"lost cloud back in the fleet {report.rejoin_seconds:.2f}s after recovery began",
        *(sessions.summary_lines(report.sessions, report.victim_cloud)
          if report.sessions is not None else [f"sessions: skipped ({report.sessions_skipped})"]),
        "",
        "engine steps:",
        *(f"  {step.describe()}" for step in report.engine),
        *(f"  rollout preview: {line}" for line in report.rollout_preview),
        "after pulumi destroy: "
        + (", ".join(report.leftovers) if report.leftovers else "no agent process, no namespace"),
    ]
    if report.chart is not None:
        lines.append(f"chart: {report.chart}")
    return lines


def write_chart(
    records: list[Record], events: list[tuple[float, str]], path: Path, bin_seconds: float = 1.0
) -> Path:
    """Throughput (tasks/s completed) and p50/p99 latency per time bin, events marked."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    end = max((r.finished for r in records), default=1.0)
    edges = np.arange(0.0, end + bin_seconds, bin_seconds)
    done = np.array([r.finished for r in records if r.outcome.status == "succeeded"])
    lat = np.array(
        [(r.finished - r.started) * 1000 for r in records if r.outcome.status == "succeeded"]
    )
    bad = np.array([r.finished for r in records if r.outcome.status != "succeeded"])
    fig, (top, bottom) = plt.subplots(2, 1, figsize=(10, 6), sharex=True)
    top.hist(done, bins=edges, color="tab:blue", label="succeeded")
    if len(bad):
        top.hist(bad, bins=edges, color="tab:red", label="not succeeded")
    top.set_ylabel(f"tasks per {bin_seconds:g}s")
    top.legend(loc="upper right")
    mids, p50, p99 = [], [], []
    for lo, hi in zip(edges[:-1], edges[1:], strict=True):
        sel = lat[(done >= lo) & (done < hi)]
        if len(sel):
            mids.append((lo + hi) / 2)
            p50.append(np.percentile(sel, 50))
            p99.append(np.percentile(sel, 99))
    bottom.plot(mids, p50, label="p50")
    bottom.plot(mids, p99, label="p99")
    bottom.set_yscale("log")
    bottom.set_ylabel("latency (ms)")
    bottom.set_xlabel("seconds since the workload started")
    bottom.legend(loc="upper right")
    for at, label in events:
        for ax in (top, bottom):
            ax.axvline(at, color="gray", linestyle="--", linewidth=0.8)
        top.annotate(
            label.split(":")[0],
            (at, top.get_ylim()[1]),
            rotation=90,
            va="top",
            ha="right",
            fontsize=8,
        )
    fig.suptitle("Skyfleet local environment: throughput and latency")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def print_summary(report: DemoReport, say: Callable[[str], None]) -> None:
    for line in summary_lines(report):
        say(line)
