"""PNG plots of bench/strategies.py: p99 over the pooled limit against load, per
strategy; and the time series of the slow-cloud and failing-cloud events."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from strategies_grid import EVENT_CLOUD, EVENT_END, EVENT_START  # noqa: E402

Record = dict[str, Any]


def _p99_vs_load(records: list[Record], out: Path) -> Path | None:
    rows = [r for r in records if r["group"] == "load"]
    fleets = sorted({r["labels"]["fleet"] for r in rows})
    if not fleets:
        return None
    fig, axes = plt.subplots(1, len(fleets), figsize=(6 * len(fleets), 4.5), squeeze=False)
    for ax, fleet in zip(axes[0], fleets, strict=True):
        mine = [r for r in rows if r["labels"]["fleet"] == fleet]
        pooled = {
            r["labels"]["load"]: r["summary"]["p99"] for r in mine if r["strategy"] == "pooled"
        }
        for name in sorted({r["strategy"] for r in mine} - {"pooled"}):
            pts = sorted(
                (float(r["labels"]["load"]), r["summary"]["p99"] / pooled[r["labels"]["load"]])
                for r in mine
                if r["strategy"] == name and r["labels"]["load"] in pooled
            )
            style = "--" if name == "jsq" else "-"
            ax.plot(*zip(*pts, strict=True), style, marker="o", label=name)
        ax.set_yscale("log")
        ax.set_title(f"{fleet}, equal hosts, exponential, gossip 1")
        ax.set_xlabel("load (share of true capacity)")
        ax.set_ylabel("p99 / pooled M/M/c p99")
        ax.grid(True, which="both", alpha=0.3)
    axes[0][0].legend(fontsize=8)
    fig.tight_layout()
    path = out / "strategies_p99_vs_load.png"
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def _events(records: list[Record], out: Path) -> Path | None:
    rows = [r for r in records if r["labels"]["event"] != "none" and r.get("series")]
    events = sorted({r["labels"]["event"] for r in rows})
    if not events:
        return None
    fig, axes = plt.subplots(2, len(events), figsize=(6.5 * len(events), 7), squeeze=False)
    for col, event in enumerate(events):
        top, bottom = axes[0][col], axes[1][col]
        for r in (r for r in rows if r["labels"]["event"] == event):
            s = r["series"]
            top.plot(s["t"], s["mean_latency"], label=r["strategy"], lw=1)
            if f"share_{EVENT_CLOUD}" in s and r["strategy"] != "pooled":
                bottom.plot(s["t"], s[f"share_{EVENT_CLOUD}"], label=r["strategy"], lw=1)
        for ax in (top, bottom):
            ax.axvspan(EVENT_START, EVENT_END, color="red", alpha=0.08)
            ax.grid(True, alpha=0.3)
        top.set_yscale("log")
        top.set_title(f"{EVENT_CLOUD} {'4x slower' if event == 'slow' else 'fails'} (shaded)")
        top.set_ylabel("mean latency of tasks finishing (5 s bins)")
        bottom.set_ylabel(f"share of attempts sent to {EVENT_CLOUD}")
        bottom.set_xlabel("time (mean service times)")
        top.legend(fontsize=7)
    fig.tight_layout()
    path = out / "strategies_events.png"
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def plot_all(records: list[Record], out: Path) -> list[Path]:
    out.mkdir(parents=True, exist_ok=True)
    return [p for p in (_p99_vs_load(records, out), _events(records, out)) if p is not None]
