"""A long-running task whose executor is `kill -9`ed mid-run, against the same task left
alone, and against one whose accepting agent is killed instead, side by side in one
invocation (issue 13).

Five real agents on loopback in three clouds (a0, a1 in aws; b0 in azure; c0, c1 in gcp),
each in its own zone, LAN membership profile, the example policy. Every task is `sleep`
with a fixed `--seconds` S, started through a0 (`Tasks.Start`) with the constraint
clouds = ["gcp"], so that its executor is never the agent that accepted it and the two
can be killed apart. The outcome is awaited (`Tasks.WaitTask`) and the record watched
(`Tasks.GetTask`, every `--poll` s) through b0, which is never killed and never runs the
task, so every variant is observed the same way. Variants:

- undisturbed: Start to the outcome seen by WaitTask;
- executor killed: the executor gets SIGKILL at S/2. Besides the outcome time, its parts:
  *detection*, from the kill until b0's record shows attempt 2 RUNNING on another
  executor (the supervisor acts on SWIM declaring the executor dead or on three missed
  reports, whichever comes first; its log line says which), then the *rerun*, from there
  to the outcome. Next to detection, the membership's own time for the kill: from the
  kill until the first, and until every, survivor lists the victim dead;
- accepting agent killed: a0 gets SIGKILL at S/2; nothing is to be redone, so the outcome
  time should be the undisturbed one.

Every measurement gets a fresh fleet (ready, then `--settle` s plus a random fraction of
`tasks.report_interval`), so no run inherits a dead member, a rejoined one, or the
previous task's records, and the supervisors' check ticks (every report_interval since
each agent started) fall at a different phase of the task in each run instead of at
nearly the same one; runs alternate the order of the variants. Each run is checked: the
outcome SUCCEEDED with the sleep's output, the expected attempts (2 after an executor
kill, else 1), a rerun away from the victim, and every live agent answering GetTask with
that same outcome.

Run from the repository root:
    .venv/bin/python bench/long_task_realproc.py              # 5 runs, S = 6 s, ~4.5 min
    .venv/bin/python bench/long_task_realproc.py --quick      # 1 run, S = 2 s
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import shutil
import signal
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from membership_procs import LOOPBACK, PortAllocator

from skyfleet._generated.skyfleet.v1 import tasks_pb2
from skyfleet.client import AgentClient, AgentError, tls_files_in
from skyfleet.config.tasks import TaskSettings
from skyfleet.localfleet.layout import AgentSpec
from skyfleet.localfleet.procs import LocalFleet
from skyfleet.policy.signing import sign_policy
from skyfleet.transport.tls import TlsMaterial

ROOT = Path(__file__).resolve().parent.parent
PLACEMENT = (("a0", "aws"), ("a1", "aws"), ("b0", "azure"), ("c0", "gcp"), ("c1", "gcp"))
ENTRY = "a0"
"""Accepts every task (Start)."""
OBSERVER = "b0"
"""Waits for and watches every task: never killed, never an executor (not in gcp)."""
CONSTRAINT = ("gcp",)
EXECUTORS = {"c0", "c1"}
VARIANTS = ("undisturbed", "executor_killed", "acceptor_killed")
SUCCEEDED = tasks_pb2.TASK_STATE_SUCCEEDED
RUNNING = tasks_pb2.TASK_STATE_RUNNING
INTERVAL = TaskSettings().report_interval
"""The agents' `tasks.report_interval` (they run the default): heartbeats and checks."""
DEAD_WAIT = 30.0
"""Seconds after the kill to keep watching membership for the victim's death."""


class RunFailed(AssertionError):
    """A run's task did not end as it must (outcome, attempts, output, agreement)."""


# --- the fleet -------------------------------------------------------------------------


def fleet_specs(ports: list[int]) -> list[AgentSpec]:
    """PLACEMENT on `ports`, each agent its own zone, a0 and c0 seeds; statuses refreshed
    every second so that routers learn every peer's capacity soon after the start."""
    seeds = (f"{LOOPBACK}:{ports[0]}", f"{LOOPBACK}:{ports[3]}")
    return [
        AgentSpec(name=name, cloud=cloud, zone=f"{name}-zone", address=f"{LOOPBACK}:{port}",
                  seeds=seeds, profile="lan", overrides={"status_refresh_interval": 1.0})
        for (name, cloud), port in zip(PLACEMENT, ports, strict=True)
    ]


def write_policy(fleet: LocalFleet) -> None:
    """The example policy (version 1), signed with the fleet key, where agents watch."""
    doc = json.loads((ROOT / "policies" / "default.json").read_text())
    envelope = sign_policy(doc, fleet.layout.signing_key.read_bytes())
    (fleet.layout.policy_source / "policy.json").write_text(json.dumps(envelope))


async def wait_ready(fleet: LocalFleet, timeout: float = 120.0) -> float:
    """Every agent lists every agent alive with a capacity, on policy version 1: before
    that a router may not know the gcp agents serve `sleep`. Seconds it took."""
    names = list(fleet.specs)
    took = await fleet.wait_converged(names, timeout=timeout)
    return took + await fleet.wait_for(
        lambda views: all(
            all(r.capacity > 0 and r.policy_version == 1 for r in v.values())
            for v in views.values()
        ),
        names,
        timeout=timeout,
        what="every agent to know every agent's capacity",
    )


# --- one measurement -------------------------------------------------------------------


@dataclass(slots=True)
class Watch:
    """What the bench saw: the record's times in seconds from the Start call, the
    membership's from the kill (monotonic clock)."""

    rerun_running: float | None = None
    ended: float | None = None
    rerun_executor: str = ""
    first_dead: float | None = None
    all_dead: float | None = None
    first_suspect: float | None = None
    record_polls: int = 0
    seen_dead: set[str] = field(default_factory=set)


async def watch_record(observer: AgentClient, task_id: str, started: float, watch: Watch,
                       poll: float, victim: str | None = None) -> None:
    """Poll the record (GetTask, which asks the holders directly) until it has ended:
    when it first shows a later attempt RUNNING away from `victim`, and when it first
    shows the outcome, in seconds from the Start call. Unlike WaitTask on an agent that
    holds no copy (it asks again every `long_tasks.WAIT_POLL`), this sees the outcome
    within one `poll`."""
    while True:
        try:
            record = await observer.task(task_id, timeout=2.0)
        except AgentError:
            record = None
        watch.record_polls += 1
        now = time.monotonic() - started
        if record is not None:
            if (watch.rerun_running is None and record.attempt >= 2
                    and record.state == RUNNING and record.executor != victim):
                watch.rerun_running = now
                watch.rerun_executor = record.executor
            if record.state not in (RUNNING, tasks_pb2.TASK_STATE_QUEUED):
                watch.ended = now
                return
        await asyncio.sleep(poll)


async def watch_membership(clients: dict[str, AgentClient], victim: str, killed: float,
                           watch: Watch, poll: float) -> None:
    """Poll every survivor's member table until each lists `victim` dead (or no longer
    lists it), for up to DEAD_WAIT s: the membership's own detection of the kill."""

    async def view(name: str) -> tuple[str, str | None]:
        try:
            _, rows = await clients[name].list_members(timeout=1.0)
        except AgentError:
            return name, None
        return name, next((r.state for r in rows if r.name == victim), "dead")

    while time.monotonic() - killed < DEAD_WAIT:
        for name, state in await asyncio.gather(*(view(n) for n in clients)):
            now = time.monotonic() - killed
            if state == "suspect" and watch.first_suspect is None:
                watch.first_suspect = now
            if state in ("dead", "left"):
                watch.seen_dead.add(name)
                if watch.first_dead is None:
                    watch.first_dead = now
        if watch.seen_dead >= set(clients):
            watch.all_dead = time.monotonic() - killed
            return
        await asyncio.sleep(poll)


def relaunches(fleet: LocalFleet, task_id: str, killed_wall: float) -> list[dict[str, Any]]:
    """The supervisors' "task run again" log lines for the task: who ran it again, when
    (s after the kill, the agent's wall clock) and why (executor lost vs silence)."""
    found = []
    for name in fleet.specs:
        path = fleet.layout.log_path(name)
        if not path.exists():
            continue
        for line in path.read_text().splitlines():
            try:
                entry = json.loads(line)
            except ValueError:
                continue
            if entry.get("msg") == "task run again" and entry.get("task") == task_id:
                found.append({"node": name, "after_kill_s": entry["ts"] - killed_wall,
                              "reason": entry.get("reason", ""),
                              "attempt": entry.get("attempt")})
    return sorted(found, key=lambda e: e["after_kill_s"])


def trigger(reason: str) -> str:
    """Which rule of `supervision._lost` fired, from its reason text."""
    if "is lost" in reason:
        return "membership"
    if "no report" in reason:
        return "silence"
    return reason or "none"


async def check_outcome(clients: dict[str, AgentClient], final: tasks_pb2.TaskRecord,
                        *, seconds: float, attempts: int, first_executor: str,
                        victim: str | None, variant: str) -> None:
    """Raise RunFailed unless the task ended as `variant` must and every live agent
    answers GetTask with the same ending (one outcome, not one per holder)."""
    expected = json.dumps({"slept": round(seconds, 6)}).encode()
    problems = []
    if final.state != SUCCEEDED:
        problems.append(f"state {tasks_pb2.TaskState.Name(final.state)}: {final.error}")
    if final.output != expected:
        problems.append(f"output {final.output!r}, expected {expected!r}")
    if final.attempt != attempts:
        problems.append(f"{final.attempt} attempts, expected {attempts}")
    if final.executor not in EXECUTORS:
        problems.append(f"ran on {final.executor}, outside {sorted(EXECUTORS)}")
    if victim is not None and final.executor == victim:
        problems.append(f"ended on the killed agent {victim}")
    if attempts == 1 and final.executor != first_executor:
        problems.append(f"ended on {final.executor}, started on {first_executor}")
    for name, client in clients.items():
        try:
            seen = await client.task(final.task_id, timeout=5.0)
        except AgentError as exc:
            problems.append(f"{name}: GetTask failed: {exc}")
            continue
        if (seen.state, seen.attempt, seen.executor, seen.output) != (
                final.state, final.attempt, final.executor, final.output):
            problems.append(f"{name} answers {tasks_pb2.TaskState.Name(seen.state)} "
                            f"attempt {seen.attempt} on {seen.executor}")
    if problems:
        raise RunFailed(f"{variant}, task {final.task_id}: " + "; ".join(problems))


async def measure(fleet: LocalFleet, clients: dict[str, AgentClient], variant: str,
                  seconds: float, poll: float) -> dict[str, Any]:
    """Start one task through ENTRY, kill what `variant` says at S/2, wait for the
    outcome through OBSERVER; the figures of this one run (seconds from the Start call
    unless named "after the kill")."""
    payload = json.dumps({"dist": "fixed", "mean": seconds}).encode()
    started = time.monotonic()
    record = await clients[ENTRY].start("sleep", payload, clouds=CONSTRAINT, timeout=10.0)
    accepted = time.monotonic() - started
    first_executor = record.executor
    waiter = asyncio.ensure_future(
        clients[OBSERVER].wait_task(record.task_id, timeout=4 * seconds + 60))
    victim = {"executor_killed": first_executor, "acceptor_killed": ENTRY}.get(variant)
    watch = Watch()
    watchers = [asyncio.ensure_future(
        watch_record(clients[OBSERVER], record.task_id, started, watch, poll, victim))]
    out: dict[str, Any] = {
        "variant": variant, "task_id": record.task_id, "start_call_s": accepted,
        "first_executor": first_executor, "holders": list(record.holders),
        "observer_holds_copy": OBSERVER in record.holders,
    }
    killed = killed_wall = 0.0
    if victim is not None:
        await asyncio.sleep(max(0.0, started + seconds / 2 - time.monotonic()))
        before = await clients[OBSERVER].task(record.task_id, timeout=2.0)
        fleet.agents[victim].signal(signal.SIGKILL)
        killed, killed_wall = time.monotonic(), time.time()
        survivors = {n: c for n, c in clients.items() if n != victim}
        out |= {"victim": victim, "killed_at_s": killed - started,
                "progress_at_kill": before.progress, "reports_at_kill": before.seq,
                "supervisor_at_kill": before.holders[0] if before.holders else "",
                # The run's heartbeats go every INTERVAL from its launch (~ the Start), the
                # first not before one INTERVAL: the last one before the kill came about
                # (seq - 1) intervals in, and silence (3 of them) is exceeded from 3 more.
                "silence_due_s": INTERVAL * (before.seq + 2) - (killed - started)}
        watchers.append(asyncio.ensure_future(
            watch_membership(survivors, victim, killed, watch, 0.1)))
        clients = survivors
    final = await waiter
    outcome = time.monotonic() - started
    await asyncio.gather(*watchers)
    out |= {"outcome_s": outcome, "outcome_polled_s": watch.ended, "attempts": final.attempt,
            "executor": final.executor, "state": tasks_pb2.TaskState.Name(final.state)}
    await check_outcome(clients, final, seconds=seconds, first_executor=first_executor,
                        attempts=2 if variant == "executor_killed" else 1, victim=victim,
                        variant=variant)
    if victim is not None:
        out |= {"membership_first_dead_s": watch.first_dead,
                "membership_all_dead_s": watch.all_dead,
                "membership_first_suspect_s": watch.first_suspect}
    if variant == "executor_killed":
        if watch.rerun_running is None or watch.ended is None:
            raise RunFailed(f"{variant}: attempt 2 never seen RUNNING ({watch.record_polls} polls)")
        out |= {"detection_s": watch.rerun_running - (killed - started),
                "rerun_s": watch.ended - watch.rerun_running,
                "lost_work_s": killed - started, "rerun_executor": watch.rerun_executor,
                "_killed_wall": killed_wall}
    return out


async def one_fleet(root: Path, ports: list[int], variant: str, seconds: float,
                    poll: float, settle: float) -> dict[str, Any]:
    """A fresh fleet for one measurement: started, ready, `settle` s of quiet, measured,
    stopped; the supervisors' relaunch log lines read once the agents have exited."""
    with LocalFleet(root, fleet_specs(ports)) as fleet:
        write_policy(fleet)
        admin = TlsMaterial.load(tls_files_in(fleet.layout.tls, "admin"))
        fleet.start()
        clients = {n: AgentClient(s.address, admin, agent_name=n) for n, s in fleet.specs.items()}
        try:
            ready = await wait_ready(fleet)
            await asyncio.sleep(settle)
            out = await measure(fleet, clients, variant, seconds, poll)
        finally:
            for client in clients.values():
                await client.__aexit__(None, None, None)
    out["ready_s"] = ready
    killed_wall = out.pop("_killed_wall", None)
    if killed_wall is not None:
        found = relaunches(fleet, out["task_id"], killed_wall)
        out["relaunches"] = found
        out["relaunch_decided_s"] = found[0]["after_kill_s"] if found else None
        out["trigger"] = trigger(found[0]["reason"]) if found else "none"
    return out


# --- the report ------------------------------------------------------------------------


def spread(values: list[float]) -> dict[str, float]:
    return {"median": statistics.median(values), "min": min(values), "max": max(values)}


FIGURES = (
    ("outcome_s", "outcome: Start to WaitTask's answer (s)"),
    ("outcome_polled_s", "outcome: Start to GetTask first showing it (s)"),
    ("ratio_to_undisturbed", "**ratio to undisturbed** (WaitTask)"),
    ("polled_ratio_to_undisturbed", "ratio to undisturbed (GetTask)"),
    ("attempts", "attempts"),
    ("lost_work_s", "lost work: the first run, Start to kill (s)"),
    ("progress_at_kill", "progress reported at the kill"),
    ("detection_s", "detection: kill to attempt 2 RUNNING (s)"),
    ("relaunch_decided_s", "supervisor's relaunch, after the kill (its log) (s)"),
    ("triggers", "relaunched on"),
    ("rerun_s", "rerun: attempt 2 RUNNING to the outcome (s)"),
    ("silence_due_s", "three reports missed, after the kill (from the report count) (s)"),
    ("supervisor_killed", "runs whose supervisor was the killed executor"),
    ("membership_first_suspect_s", "membership: first survivor sees it suspect (s)"),
    ("membership_first_dead_s", "membership: first survivor sees it dead (s)"),
    ("membership_all_dead_s", "membership: every survivor sees it dead (s)"),
)
"""(key, label) of the table's rows, in order."""


def summarize(runs: list[dict[str, dict[str, Any]]]) -> dict[str, Any]:
    """Per variant, each figure's median and min-max over runs; the per-run ratios of
    each disturbed outcome to that run's undisturbed one, and their median and min-max."""
    out: dict[str, Any] = {}
    for variant in VARIANTS:
        rows = [run[variant] for run in runs]
        figures: dict[str, Any] = {}
        for key, _ in FIGURES:
            values = [r[key] for r in rows if isinstance(r.get(key), int | float)]
            if values and key != "attempts":
                figures[key] = spread([float(v) for v in values])
        figures["attempts"] = sorted({r["attempts"] for r in rows})
        if variant == "executor_killed":
            figures["supervisor_killed"] = sum(r["supervisor_at_kill"] == r["victim"]
                                               for r in rows)
        triggers = [r["trigger"] for r in rows if "trigger" in r]
        if triggers:
            figures["triggers"] = {t: triggers.count(t) for t in sorted(set(triggers))}
        if variant != "undisturbed":
            for key, ratio in (("outcome_s", "ratio_to_undisturbed"),
                               ("outcome_polled_s", "polled_ratio_to_undisturbed")):
                figures[ratio] = spread(
                    [run[variant][key] / run["undisturbed"][key] for run in runs])
        out[variant] = figures
    return out


def _cell(figures: dict[str, Any], key: str) -> str:
    value = figures.get(key)
    if key == "attempts":
        return "/".join(map(str, value or [])) or "—"
    if key == "supervisor_killed":
        return "—" if value is None else str(value)
    if key == "triggers":
        return ", ".join(f"{k} × {v}" for k, v in (value or {}).items()) or "—"
    if not isinstance(value, dict):
        return "1" if key.endswith("ratio_to_undisturbed") else "—"
    cell = f"{value['median']:.2f} ({value['min']:.2f}–{value['max']:.2f})"
    return f"**{cell}**" if key == "ratio_to_undisturbed" else cell


def markdown(result: dict[str, Any]) -> str:
    """Figures as rows, variants as columns: median (min–max) over runs."""
    summary, half = result["summary"], result["seconds"] / 2
    head = (f"| S = {result['seconds']:g} s, {result['runs']} runs | undisturbed "
            f"| executor `kill -9`ed at {half:g} s | accepting agent `kill -9`ed at {half:g} s |")
    out = [head, "|---|---|---|---|"]
    for key, label in FIGURES:
        cells = [_cell(summary[v], key) for v in VARIANTS]
        if any(key in summary[v] for v in VARIANTS):
            out.append(f"| {label} | " + " | ".join(cells) + " |")
    return "\n".join(out)


# --- the invocation --------------------------------------------------------------------


async def run(args: argparse.Namespace, progress: Callable[[str], None] = print
              ) -> dict[str, Any]:
    allocator = PortAllocator()
    jitter = random.Random(args.seed)
    work = Path(tempfile.mkdtemp(prefix="skyfleet-long-task-"))
    load = os.getloadavg()
    began = time.monotonic()
    runs: list[dict[str, dict[str, Any]]] = []
    try:
        for i in range(args.runs):
            order = VARIANTS if i % 2 == 0 else VARIANTS[::-1]
            row: dict[str, dict[str, Any]] = {}
            for variant in order:
                row[variant] = await one_fleet(
                    work / f"run{i}-{variant}", allocator.take(len(PLACEMENT)), variant,
                    args.seconds, args.poll, args.settle + jitter.uniform(0, INTERVAL))
                r = row[variant]
                extra = ""
                if variant == "executor_killed":
                    extra = (f", detection {r['detection_s']:.2f} s ({r['trigger']}), "
                             f"membership dead {r['membership_first_dead_s']}")
                progress(f"run {i + 1} {variant}: outcome {r['outcome_s']:.2f} s, "
                         f"attempts {r['attempts']}{extra}")
            runs.append(row)
    finally:
        if not args.keep_workdir:
            shutil.rmtree(work, ignore_errors=True)
    return {
        "seconds": args.seconds,
        "runs": args.runs,
        "placement": dict(PLACEMENT),
        "entry": ENTRY,
        "observer": OBSERVER,
        "constraint_clouds": list(CONSTRAINT),
        "report_interval_s": INTERVAL,
        "loadavg_before": load,
        "loadavg_after": os.getloadavg(),
        "cpus": os.cpu_count(),
        "wall_s": time.monotonic() - began,
        "summary": summarize(runs),
        "each_run": runs,
        "workdir": str(work) if args.keep_workdir else None,
    }


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=5, help="runs of all three variants")
    parser.add_argument("--seconds", type=float, default=6.0, help="the task's length S")
    parser.add_argument("--poll", type=float, default=0.05, help="GetTask poll interval (s)")
    parser.add_argument("--settle", type=float, default=1.0,
                        help="quiet seconds between a fleet being ready and the Start")
    parser.add_argument("--seed", type=int, default=13, help="of the settle jitter")
    parser.add_argument("--keep-workdir", action="store_true", help="keep agents' logs")
    parser.add_argument("--quick", action="store_true", help="1 run, S = 2 s")
    parser.add_argument("--out", type=Path, default=ROOT / "bench/out/long_task_realproc.json")
    args = parser.parse_args(argv)
    if args.quick:
        args.runs, args.seconds = 1, 2.0
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    result = asyncio.run(run(args))
    print()
    print(markdown(result))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=1) + "\n")
    print(f"\nwrote {args.out} ({result['wall_s']:.0f} s; load average before: "
          f"{result['loadavg_before']}, after: {result['loadavg_after']})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
