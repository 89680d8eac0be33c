"""Summaries of a task-simulator run: latency percentiles, stability, time series."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from skyfleet.sim.tasks import TaskRun

STABLE_DRIFT = 1.5
"""A run is called unstable when tasks created in the last quarter of the measured
window take this many times longer on average than those of the second quarter (the
queue grew), or when tasks were left unfinished at the drain limit."""


@dataclass(frozen=True, slots=True)
class Summary:
    tasks: int
    mean: float
    p50: float
    p99: float
    p999: float
    wait_mean: float
    """Mean waiting: response time less the successful attempt's service (queues, the
    network, failed attempts). The sojourn hides it under the service time."""
    wait_p99: float
    failed: int
    unfinished: int
    retries: int
    drift: float
    stable: bool

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def drift(created: np.ndarray, latency: np.ndarray) -> float:
    """Mean latency of the last quarter of tasks (by creation) over that of the second."""
    if len(latency) < 8:
        return float("nan")
    order = np.argsort(created, kind="stable")
    quarters = np.array_split(latency[order], 4)
    return float(quarters[3].mean() / quarters[1].mean())


def summarise(run: TaskRun, created_between: tuple[float, float] | None = None) -> Summary:
    """Latency figures of the measured tasks, or of those created inside a window (the
    failure count stays the whole run's)."""
    lat, created, wait = run.latency, run.created, run.latency - run.service
    if created_between is not None:
        inside = (created >= created_between[0]) & (created < created_between[1])
        lat, created, wait = lat[inside], created[inside], wait[inside]
    if len(lat) == 0:
        nan = float("nan")
        return Summary(
            0, nan, nan, nan, nan, nan, nan, run.failed, run.unfinished, run.retries, nan, False
        )
    p50, p99, p999 = (float(x) for x in np.quantile(lat, [0.5, 0.99, 0.999]))
    d = drift(created, lat)
    stable = run.unfinished == 0 and d < STABLE_DRIFT
    return Summary(
        tasks=len(lat),
        mean=float(lat.mean()),
        p50=p50,
        p99=p99,
        p999=p999,
        wait_mean=float(wait.mean()),
        wait_p99=float(np.quantile(wait, 0.99)),
        failed=run.failed,
        unfinished=run.unfinished,
        retries=run.retries,
        drift=d,
        stable=stable,
    )


def series(run: TaskRun, bin_width: float, end: float) -> dict[str, list[float]]:
    """Per time bin: mean latency of tasks finishing in it, and each cloud's share of the
    attempts sent in it."""
    edges = np.arange(0.0, end + bin_width, bin_width)
    which = np.digitize(run.finished, edges) - 1
    n = len(edges) - 1
    sums = np.bincount(
        which[(which >= 0) & (which < n)], run.latency[(which >= 0) & (which < n)], n
    )
    counts = np.bincount(which[(which >= 0) & (which < n)], minlength=n)
    out: dict[str, list[float]] = {
        "t": (edges[:-1] + bin_width / 2).tolist(),
        "mean_latency": np.where(counts > 0, sums / np.maximum(counts, 1), np.nan).tolist(),
    }
    if len(run.sends):
        sb = np.digitize(run.sends[:, 0], edges) - 1
        keep = (sb >= 0) & (sb < n)
        total = np.maximum(np.bincount(sb[keep], minlength=n), 1)
        for i, cloud in enumerate(run.clouds):
            mine = keep & (run.sends[:, 1] == i)
            out[f"share_{cloud}"] = (np.bincount(sb[mine], minlength=n) / total).tolist()
    return out
