"""Summaries of the runs (median, min, max per system and N) and the side-by-side table.

The ratio column is Skyfleet's median over Serf's: below 1 is better for every row
(time, bytes, CPU, false positives). A failed run contributes only the phases it finished,
and the number of runs behind each cell is shown when some are missing.
"""

from __future__ import annotations

import statistics
from collections.abc import Sequence
from dataclasses import asdict, dataclass

from membership_run import RunResult


@dataclass(frozen=True, slots=True)
class Metric:
    key: str
    """RunResult field (or poll-gap percentile) and key in the JSON summary."""
    label: str
    fmt: str

    def value(self, result: RunResult) -> float | None:
        if self.key == "poll_gap_p95_ms":
            return result.poll_gap_ms.get("p95")
        value = getattr(result, self.key)
        return None if value is None else float(value)


METRICS: tuple[Metric, ...] = (
    Metric("join_s", "join: from the join command until all N see all N alive (s)", "{:.2f}"),
    Metric("up_s", "start-up: launch until all N APIs answer (s)", "{:.2f}"),
    Metric("launch_to_converged_s", "launch until all N see all N alive (s)", "{:.2f}"),
    Metric("detect_all_s", "kill -9: all survivors see it dead (s)", "{:.2f}"),
    Metric("detect_first_s", "kill -9: first survivor sees it dead (s)", "{:.2f}"),
    Metric("bytes_per_node_s", "steady state: bytes sent / node / s", "{:.0f}"),
    Metric("cpu_per_node_pct", "steady state: CPU / node (% of a core)", "{:.1f}"),
    Metric("false_deaths", "false positives: (observer, live node) seen dead", "{:.0f}"),
    Metric("false_suspicions", "(observer, live node) seen suspect", "{:.0f}"),
    Metric("poll_gap_p95_ms", "poll gap p95 (ms): timing resolution", "{:.0f}"),
)


def summarise(values: Sequence[float]) -> dict[str, float] | None:
    if not values:
        return None
    return {
        "median": statistics.median(values),
        "min": min(values),
        "max": max(values),
        "runs": len(values),
    }


def summaries(results: Sequence[RunResult]) -> dict[str, dict[int, dict[str, object]]]:
    """{system: {n: {metric key: summary or None}}}"""
    out: dict[str, dict[int, dict[str, object]]] = {}
    for result in results:
        out.setdefault(result.system, {}).setdefault(result.n, {})
    for system, by_n in out.items():
        for n in by_n:
            runs = [r for r in results if r.system == system and r.n == n]
            cell: dict[str, object] = {"runs": len(runs)}
            for metric in METRICS:
                values = [v for r in runs if (v := metric.value(r)) is not None]
                cell[metric.key] = summarise(values)
            cell["errors"] = [r.error for r in runs if r.error]
            by_n[n] = cell
    return out


def _cell(summary: object, fmt: str, runs: int) -> str:
    if not isinstance(summary, dict):
        return "—"
    text = fmt.format(summary["median"])
    if summary["min"] != summary["max"]:
        text += f" ({fmt.format(summary['min'])}–{fmt.format(summary['max'])})"
    if summary["runs"] < runs:
        text += f" [{summary['runs']}/{runs} runs]"
    return text


def _ratio(ours: object, theirs: object) -> str:
    if not (isinstance(ours, dict) and isinstance(theirs, dict)):
        return "—"
    if theirs["median"] == 0:
        return "—" if ours["median"] == 0 else "∞"
    return f"{ours['median'] / theirs['median']:.2f}"


def markdown_table(
    table: dict[str, dict[int, dict[str, object]]], ours: str = "Skyfleet", theirs: str = "Serf"
) -> str:
    """Rows per N and metric; medians with (min–max) and Skyfleet/Serf ratio of medians."""
    systems = [s for s in (ours, theirs) if s in table]
    header = ["N", "metric", *(f"{s} median (min–max)" for s in systems)]
    both = len(systems) == 2
    if both:
        header.append(f"{ours}/{theirs}")
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    sizes = sorted({n for s in systems for n in table[s]})
    for n in sizes:
        for metric in METRICS:
            key, fmt = metric.key, metric.fmt
            cells = [str(n), metric.label]
            for system in systems:
                cell = table[system].get(n, {})
                runs = cell.get("runs", 0)
                cells.append(_cell(cell.get(key), fmt, runs if isinstance(runs, int) else 0))
            if both:
                mine, other = (table[s].get(n, {}).get(key) for s in (ours, theirs))
                cells.append(_ratio(mine, other))
            lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def as_json(results: Sequence[RunResult]) -> list[dict[str, object]]:
    return [asdict(r) for r in results]
