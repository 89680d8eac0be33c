"""The dissemination chart of bench/membership_sim.py: fraction of nodes holding one
piece of news against virtual time, one curve per fleet size, with Serf's model point."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only; never a display
import matplotlib.pyplot as plt  # noqa: E402


def plot_dissemination(
    curves: Mapping[int, list[tuple[float, float]]],
    serf_model: Mapping[str, float],
    path: Path,
) -> None:
    fig, ax = plt.subplots(figsize=(7, 4.2), dpi=120)
    for n, curve in sorted(curves.items()):
        ax.step([t for t, _ in curve], [f for _, f in curve], where="post", label=f"N = {n:,}")
    ax.plot(
        [serf_model["seconds"]],
        [serf_model["fraction"]],
        "k*",
        markersize=10,
        label=f"Serf model: {serf_model['fraction']:.2%} of {int(serf_model['n']):,} "
        f"in {serf_model['seconds']} s",
    )
    ax.set_xlabel("virtual seconds since the refutation")
    ax.set_ylabel("fraction of live nodes holding the news")
    ax.set_title("Skyfleet SWIM+Lifeguard (LAN defaults): dissemination of one update")
    ax.set_ylim(0, 1.02)
    ax.grid(True, alpha=0.3)
    ax.legend(loc="lower right")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    plt.close(fig)
