"""Two runs of bench/strategies.py side by side: every case both ran, its figures against
the pooled queue of its own run, before and after (a change to the simulator or to a
strategy shows as the ratio moving; the pooled reference does not move).

Run from the repository root, on two result files of the same grid:
    .venv/bin/python bench/strategies_compare.py BEFORE.json AFTER.json [--group load]
"""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path
from typing import Any

from strategies_report import label, name, scenario_key

Record = dict[str, Any]


def _index(records: list[Record]) -> dict[tuple[Any, ...], Record]:
    return {(scenario_key(r), r["strategy"], r["locality"]): r for r in records}


def _vs_pooled(r: Record, pooled: Record | None, part: str, key: str) -> float:
    if pooled is None or key not in r[part] or not pooled[part].get(key):
        return math.nan
    return float(r[part][key] / pooled[part][key])


def _fmt(x: float, digits: int = 2) -> str:
    return "-" if math.isnan(x) else f"{x:.{digits}f}"


def compare(before: list[Record], after: list[Record], group: str | None) -> list[str]:
    old, new = _index(before), _index(after)
    lines = []
    current: tuple[str, ...] | None = None
    for key, r in new.items():
        if key not in old or r["strategy"] == "pooled" or (group and r["group"] != group):
            continue
        scen = key[0]
        part = "window" if r.get("window") else "summary"
        if scen != current:
            current = scen
            where = " (tasks created during the event)" if part == "window" else ""
            lines += [
                "",
                f"### {label(r)}{where}",
                "",
                "| strategy | mean × pooled, before | after | p99 × pooled, before | after "
                "| wait × pooled, after | failed, before | after |",
                "|---|---:|---:|---:|---:|---:|---:|---:|",
            ]
        o = old[key]
        po, pn = old.get((scen, "pooled", "none")), new.get((scen, "pooled", "none"))
        lines.append(
            f"| {name(r)} | {_fmt(_vs_pooled(o, po, part, 'mean'))} "
            f"| {_fmt(_vs_pooled(r, pn, part, 'mean'))} "
            f"| {_fmt(_vs_pooled(o, po, part, 'p99'))} | {_fmt(_vs_pooled(r, pn, part, 'p99'))} "
            f"| {_fmt(_vs_pooled(r, pn, part, 'wait_mean'), 1)} "
            f"| {o[part]['failed']} | {r[part]['failed']} |"
        )
    return lines


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("before", type=Path)
    ap.add_argument("after", type=Path)
    ap.add_argument("--group", help="only this group of the grid (load, gossip, mixed, ...)")
    args = ap.parse_args(argv)
    try:
        runs = [json.loads(p.read_text()) for p in (args.before, args.after)]
        before, after = (run["records"] for run in runs)
    except (OSError, ValueError, KeyError, TypeError) as exc:
        ap.exit(1, f"strategies_compare.py: cannot read the results: {exc}\n")
    modes = [run.get("mode") for run in runs]
    if modes[0] != modes[1]:
        ap.exit(1, f"strategies_compare.py: {args.before} is a {modes[0]} grid, "
                   f"{args.after} a {modes[1]} one: their runs differ in length\n")  # fmt: skip
    print("\n".join(compare(before, after, args.group)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
