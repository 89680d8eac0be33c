"""Tables and bar checks of bench/strategies.py, from its result records."""

from __future__ import annotations

from collections import defaultdict
from typing import Any

Record = dict[str, Any]

COLUMNS = ("mean", "p50", "p99", "p999")
SCENARIO_KEYS = ("fleet", "capacities", "service", "load", "gossip", "delay", "event")


def scenario_key(r: Record) -> tuple[str, ...]:
    return tuple(r["labels"][k] for k in SCENARIO_KEYS)


def label(r: Record) -> str:
    lab = r["labels"]
    parts = [lab["fleet"], lab["capacities"], lab["service"], f"load {lab['load']}"]
    parts.append(f"gossip {lab['gossip']}")
    if lab["delay"] != "0.0":
        parts.append(f"cross-cloud delay {lab['delay']}")
    if lab["event"] != "none":
        parts.append(f"event {lab['event']}")
    return ", ".join(parts)


def name(r: Record) -> str:
    return r["strategy"] + ("" if r["locality"] == "none" else f" (locality {r['locality']})")


def _refs(rows: list[Record], part: str) -> tuple[Record | None, Record | None]:
    pooled = next((r[part] for r in rows if r["strategy"] == "pooled"), None)
    jsq = next((r[part] for r in rows if r["strategy"] == "jsq"), None)
    return pooled, jsq


def _ratio(a: float, b: float | None) -> str:
    return f"{a / b:.2f}" if b else "-"


def table(rows: list[Record], part: str = "summary") -> list[str]:
    pooled, jsq = _refs(rows, part)
    out = [
        "| strategy | mean | p50 | p99 | p99.9 | mean/pooled | p99/pooled | p99.9/pooled "
        "| wait | wait/pooled | p99/jsq | stable | failed |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|:-:|---:|",
    ]
    for r in rows:
        s = r[part]
        out.append(
            f"| {name(r)} | {s['mean']:.3f} | {s['p50']:.3f} | {s['p99']:.2f} | {s['p999']:.2f} "
            f"| {_ratio(s['mean'], pooled and pooled['mean'])} "
            f"| {_ratio(s['p99'], pooled and pooled['p99'])} "
            f"| {_ratio(s['p999'], pooled and pooled['p999'])} "
            f"| {s['wait_mean']:.3f} | {_ratio(s['wait_mean'], pooled and pooled['wait_mean'])} "
            f"| {_ratio(s['p99'], jsq and jsq['p99'])} "
            f"| {'yes' if s['stable'] else '**no**'} | {s['failed']} |"
        )
    return out


def tables(records: list[Record]) -> str:
    by_group: dict[str, dict[tuple[str, ...], list[Record]]] = defaultdict(dict)
    for r in records:
        by_group[r["group"]].setdefault(scenario_key(r), []).append(r)
    lines: list[str] = []
    for group, scenarios in by_group.items():
        lines.append(f"## {group}\n")
        for rows in scenarios.values():
            lines.append(f"### {label(rows[0])}\n")
            lines += table(rows)
            if rows[0].get("window"):
                lines.append("\nTasks created during the event only:\n")
                lines += table(rows, "window")
            lines.append("")
    return "\n".join(lines)


def _find(records: list[Record], strategy: str, **labels: str) -> list[Record]:
    return [
        r
        for r in records
        if r["strategy"] == strategy
        and r["locality"] == "none"
        and all(r["labels"][k] == v for k, v in labels.items())
    ]


def _ref(records: list[Record], r: Record, strategy: str) -> Record | None:
    same = [x for x in records if x["strategy"] == strategy and scenario_key(x) == scenario_key(r)]
    return same[0] if same else None


def bars(records: list[Record], subject: str = "p2c") -> list[tuple[str, bool | None, str]]:
    """(bar, met, figures) for each bar of the issue; met is None when not measured."""
    out: list[tuple[str, bool | None, str]] = []
    for fleet in ("3x3", "3x10"):
        for r in _find(
            records,
            subject,
            fleet=fleet,
            capacities="equal",
            service="exponential",
            load="0.9",
            gossip="1.0",
            delay="0.0",
            event="none",
        ):
            pooled = _ref(records, r, "pooled")
            if pooled is None:
                continue
            m = r["summary"]["mean"] / pooled["summary"]["mean"]
            p = r["summary"]["p99"] / pooled["summary"]["p99"]
            w = r["summary"]["wait_mean"] / pooled["summary"]["wait_mean"]
            out.append(
                (
                    f"{fleet} load 0.9 gossip 1 equal: mean <= 1.5x pooled",
                    m <= 1.5,
                    f"{m:.2f}x (waiting {w:.1f}x pooled's)",
                )
            )
            out.append(
                (f"{fleet} load 0.9 gossip 1 equal: p99 <= 1.6x pooled", p <= 1.6, f"{p:.2f}x")
            )
    mixed = _find(records, subject, capacities="mixed", event="none")
    if mixed:
        bad = [label(r) for r in mixed if not r["summary"]["stable"]]
        out.append(
            (
                f"stable in every mixed-capacity scenario ({len(mixed)} run)",
                not bad,
                "all stable" if not bad else "unstable: " + "; ".join(bad),
            )
        )
    for r in _find(records, subject, event="slow"):
        pooled = _ref(records, r, "pooled")
        if pooled is None:
            continue
        m = r["window"]["mean"] / pooled["window"]["mean"]
        p = r["window"]["p99"] / pooled["window"]["p99"]
        out.append(
            (
                f"slow cloud ({r['labels']['fleet']}): <= 2x pooled during the event",
                m <= 2 and p <= 2,
                f"mean {m:.2f}x, p99 {p:.2f}x",
            )
        )
    slow_gossip = [
        r for r in _find(records, subject, gossip="10.0") if r["labels"]["event"] == "none"
    ]
    worse = []
    for r in slow_gossip:
        rnd = _ref(records, r, "random")
        if rnd is None:
            continue
        for k in ("mean", "p99"):
            if r["summary"][k] > rnd["summary"][k]:
                worse.append(f"{label(r)} {k} {r['summary'][k]:.2f} > {rnd['summary'][k]:.2f}")
    if slow_gossip:
        out.append(
            (
                f"never worse than random at gossip 10 ({len(slow_gossip)} scenarios)",
                not worse,
                "; ".join(worse) or "better in mean and p99 everywhere",
            )
        )
    return out


def wins(records: list[Record], subject: str, rivals: tuple[str, ...]) -> list[str]:
    """Scenarios where `subject` has the lowest mean or p99 among itself and `rivals`."""
    lines = []
    by_key: dict[tuple[str, ...], list[Record]] = defaultdict(list)
    for r in records:
        if r["locality"] == "none" and r["strategy"] in (subject, *rivals):
            by_key[scenario_key(r)].append(r)
    for rows in by_key.values():
        mine = next((r for r in rows if r["strategy"] == subject), None)
        if mine is None or len(rows) < 2:
            continue
        part = "window" if mine.get("window") else "summary"
        for k in ("mean", "p99"):
            best = min(rows, key=lambda r: r[part][k])
            if best is mine:
                lines.append(f"- {label(mine)}: best {k} ({mine[part][k]:.3f})")
    return lines
