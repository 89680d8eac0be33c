"""Streamed tasks with real agents: through the routing agent against straight to the
executor, and a bare grpc.aio server-streaming echo, side by side in one invocation
(issue 13).

Two agent processes, `a0` (cloud aws) and `c0` (cloud gcp), each in its own zone, and the
client in this process. Every stream runs the built-in `chunks` handler with the
constraint clouds = ["gcp"], so c0 is the only eligible executor:

- routed: `Tasks.Stream` to a0, which forwards to c0 over `ExecuteStream` (two gRPC hops,
  each chunk re-framed by a0);
- direct: `Tasks.Stream` to c0, whose router picks itself (one hop);
- bare: `Tasks.Stream` to a grpc.aio server in its own process with the same mTLS and the
  same messages, which makes the chunks as the handler does and sends them: no router,
  no executor, no membership. What is left is gRPC + TLS + protobuf.

Two measurements, each cell run `--runs` times with the three paths back to back in an
order that alternates run by run (drift in the machine's load hits them alike):

1. Time to first chunk: `--ttfc-streams` streams of one 16-byte chunk per run at each
   `--ttfc-concurrency`, timed by the client from the call to the first chunk event
   (p50 and p99 of each run), next to what the entry agent itself reports
   (`StreamEnd.first_chunk_ms`).
2. Chunk throughput: C concurrent streams of each `--shapes` COUNTxSIZE, MB/s (10^6 bytes)
   and chunks/s as read by the client, and the CPU each process spent per chunk over the
   measurement (`/proc/PID/stat`): where the time goes on a 2-core machine.

Ratios are per run (routed / direct, direct / bare), then the median and min-max of
those. Run from the repository root:

    .venv/bin/python bench/stream_realproc.py --quick    # under a minute
    .venv/bin/python bench/stream_realproc.py            # 5 runs, about 3 minutes
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc
from membership_procs import LOOPBACK, PortAllocator, cpu_seconds

from skyfleet._generated.skyfleet.v1 import tasks_pb2, tasks_pb2_grpc
from skyfleet.client import AgentClient, tls_files_in
from skyfleet.localfleet.layout import AgentSpec
from skyfleet.localfleet.procs import LocalFleet
from skyfleet.policy.signing import sign_policy
from skyfleet.security.certs import issue_node_cert, write_cert_file, write_key_file
from skyfleet.transport.peers import SERVER_OPTIONS
from skyfleet.transport.tls import TlsMaterial

ROOT = Path(__file__).resolve().parent.parent
BARE = "bare-stream"
ENTRY, EXECUTOR = "a0", "c0"
CONSTRAINT = ("gcp",)
LABELS = ("routed", "direct", "bare")
SUCCEEDED = tasks_pb2.TASK_OUTCOME_SUCCEEDED
TTFC_SIZE = 16
STREAM_TIMEOUT = 600.0
"""Deadline of one measured stream: long enough for the largest shape on a loaded machine,
so a slow run is a slow figure, not a failure."""


IDLE_US_PER_CHUNK = 3.0
"""Below this CPU per chunk a process only gossiped during a measurement (a0 while the
direct path runs): left out of the table, kept in the JSON."""


class BenchError(RuntimeError):
    """A stream did not deliver what was asked: the figures of that run mean nothing."""


# --- the bare server (run in its own process: `--serve-bare`) ---------------------------


class BareStreamTasks(tasks_pb2_grpc.TasksServicer):
    """`Tasks.Stream` with the `chunks` handler's payload and per-chunk work, and nothing
    of an agent behind it: the floor a streamed task through gRPC in Python can reach."""

    def __init__(self, name: str) -> None:
        self._name = name

    async def Stream(  # noqa: N802 - gRPC method name
        self, request: tasks_pb2.SubmitTaskRequest, context: grpc.aio.ServicerContext
    ) -> AsyncIterator[tasks_pb2.TaskStreamEvent]:
        doc = json.loads(request.payload or b"{}")
        count, size = int(doc.get("count", 10)), int(doc.get("size", 16))
        body = b"." * size
        sent = 0
        for i in range(count):
            data = (b"%d:" % i + body)[:size]  # what the handler yields
            sent += len(data)
            yield tasks_pb2.TaskStreamEvent(chunk=tasks_pb2.OutputChunk(data=data))
        yield tasks_pb2.TaskStreamEvent(
            end=tasks_pb2.StreamEnd(
                request_id=request.request_id, outcome=SUCCEEDED, executed_by=self._name,
                attempts=1, chunks=count, bytes=sent,
            )
        )


async def serve_bare(bind: str, tls_dir: Path, name: str) -> None:
    tls = TlsMaterial.load(tls_files_in(tls_dir, name))
    server = grpc.aio.server(options=SERVER_OPTIONS)  # the agent's server options
    tasks_pb2_grpc.add_TasksServicer_to_server(BareStreamTasks(name), server)
    server.add_secure_port(bind, tls.server_credentials())
    await server.start()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    await server.stop(1.0)


def start_bare(fleet: LocalFleet, port: int) -> tuple[subprocess.Popen[bytes], str]:
    """This script as the bare server in its own process (as an agent is its own
    process), with a node certificate of the fleet CA."""
    tls = fleet.layout.tls
    ca, ca_key = (tls / "ca.pem").read_bytes(), (tls / "ca.key").read_bytes()
    cert, key = issue_node_cert(ca, ca_key, BARE, [LOOPBACK])
    write_cert_file(tls / f"{BARE}.pem", cert)
    write_key_file(tls / f"{BARE}.key", key)
    address = f"{LOOPBACK}:{port}"
    argv = [sys.executable, str(Path(__file__).resolve()), "--serve-bare", address,
            "--tls", str(tls), "--name", BARE]
    return subprocess.Popen(argv, start_new_session=True), address


# --- the fleet -------------------------------------------------------------------------


def fleet_specs(ports: list[int]) -> list[AgentSpec]:
    """a0 in aws and c0 in gcp, each its own zone, both seeds; statuses refreshed every
    second so a0 learns c0's capacity and handlers soon after the start."""
    seeds = (f"{LOOPBACK}:{ports[0]}", f"{LOOPBACK}:{ports[1]}")
    return [
        AgentSpec(name=name, cloud=cloud, zone=f"{cloud}-a", address=f"{LOOPBACK}:{port}",
                  seeds=seeds, profile="lan", overrides={"status_refresh_interval": 1.0})
        for (name, cloud), port in zip(((ENTRY, "aws"), (EXECUTOR, "gcp")), ports, strict=True)
    ]


def write_policy(fleet: LocalFleet) -> None:
    """The example policy (version 1), signed with the fleet key, where agents watch."""
    doc = json.loads((ROOT / "policies" / "default.json").read_text())
    envelope = sign_policy(doc, fleet.layout.signing_key.read_bytes())
    (fleet.layout.policy_source / "policy.json").write_text(json.dumps(envelope))


async def wait_ready(fleet: LocalFleet, timeout: float = 120.0) -> None:
    """Both agents list both alive, each with a capacity, on policy version 1."""
    names = list(fleet.specs)
    await fleet.wait_converged(names, timeout=timeout)
    await fleet.wait_for(
        lambda views: all(
            all(r.capacity > 0 and r.policy_version == 1 for r in v.values())
            for v in views.values()
        ),
        names,
        timeout=timeout,
        what="both agents to know both agents' capacity",
    )


# --- measuring -------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Route:
    """One way of getting a streamed task run on the executor."""

    label: str
    client: AgentClient
    executor: str  # who must have run it, or the run is wrong


@dataclass(frozen=True, slots=True)
class StreamRecord:
    first_chunk_ms: float
    """Client-measured: the call to the first chunk event."""
    seconds: float
    chunks: int
    bytes: int
    agent_first_chunk_ms: float
    """The entry agent's own view (StreamEnd.first_chunk_ms); 0 for the bare server."""


def payload(count: int, size: int) -> bytes:
    return json.dumps({"count": count, "size": size}).encode()


async def one_stream(route: Route, count: int, size: int) -> StreamRecord:
    """One streamed task read to its end, checked: every chunk, every byte, the right
    executor, succeeded."""
    start = time.perf_counter()
    first = 0.0
    chunks = size_read = 0
    end: tasks_pb2.StreamEnd | None = None
    events = route.client.stream(
        "chunks", payload(count, size), clouds=CONSTRAINT, timeout=STREAM_TIMEOUT
    )
    async for event in events:
        if event.WhichOneof("event") == "chunk":
            if not chunks:
                first = time.perf_counter()
            chunks += 1
            size_read += len(event.chunk.data)
        else:
            end = event.end
    done = time.perf_counter()
    if end is None:
        raise BenchError(f"{route.label}: stream ended without an end event")
    if end.outcome != SUCCEEDED or end.executed_by != route.executor:
        raise BenchError(f"{route.label}: {end.outcome=} by {end.executed_by!r}: {end.error}")
    if not (chunks == end.chunks == count and size_read == end.bytes == count * size):
        raise BenchError(f"{route.label}: read {chunks} chunks / {size_read} B, end says "
                         f"{end.chunks} / {end.bytes}, asked {count} x {size}")
    return StreamRecord((first - start) * 1000, done - start, chunks, size_read,
                        end.first_chunk_ms)


def percentile(values: list[float], q: float) -> float:
    """Nearest-rank percentile (no interpolation: a p99 of 200 samples is a sample)."""
    ordered = sorted(values)
    rank = max(1, min(len(ordered), round(q / 100 * len(ordered) + 0.5)))
    return ordered[rank - 1]


async def ttfc_run(route: Route, streams: int, concurrency: int) -> dict[str, float]:
    """`streams` one-chunk streams from `concurrency` callers, each starting its next
    stream when its last one ends (closed loop)."""
    records: list[StreamRecord] = []
    left = streams

    async def caller() -> None:
        nonlocal left
        while left > 0:
            left -= 1
            records.append(await one_stream(route, 1, TTFC_SIZE))

    start = time.perf_counter()
    await asyncio.gather(*(caller() for _ in range(concurrency)))
    wall = time.perf_counter() - start
    firsts = [r.first_chunk_ms for r in records]
    return {
        "streams": len(records),
        "p50_ms": percentile(firsts, 50),
        "p99_ms": percentile(firsts, 99),
        "max_ms": max(firsts),
        "agent_first_chunk_p50_ms": statistics.median(r.agent_first_chunk_ms for r in records),
        "streams_per_s": len(records) / wall,
    }


async def throughput_run(
    route: Route, count: int, size: int, concurrency: int, pids: dict[str, int]
) -> dict[str, object]:
    """`concurrency` streams of `count` x `size` at once; aggregate rates as the client
    read them, and each process's CPU per chunk over the same interval."""
    cpu_before = {name: cpu_seconds(pid) for name, pid in pids.items()}
    start = time.perf_counter()
    records = await asyncio.gather(*(one_stream(route, count, size) for _ in range(concurrency)))
    wall = time.perf_counter() - start
    cpu = {name: cpu_seconds(pid) - cpu_before[name] for name, pid in pids.items()}
    chunks = sum(r.chunks for r in records)
    size_read = sum(r.bytes for r in records)
    return {
        "seconds": wall,
        "chunks": chunks,
        "mb_per_s": size_read / wall / 1e6,
        "chunks_per_s": chunks / wall,
        "first_chunk_ms": statistics.median(r.first_chunk_ms for r in records),
        "cpu_us_per_chunk": {name: 1e6 * s / chunks for name, s in cpu.items()},
        "cpu_cores_busy": sum(cpu.values()) / wall,
    }


async def side_by_side(
    cell: dict[str, object],
    routes: dict[str, Route],
    runs: int,
    offset: int,
    measure: Callable[[Route], Awaitable[Mapping[str, object]]],
) -> list[dict[str, dict[str, object]]]:
    """`runs` runs of one cell, the paths back to back, their order reversed every other
    run (and shifted per cell by `offset`)."""
    results = []
    for run in range(runs):
        order = list(routes) if (run + offset) % 2 == 0 else list(routes)[::-1]
        result: dict[str, dict[str, object]] = {}
        for label in order:
            result[label] = dict(await measure(routes[label]))
        results.append(result)
        print(f"{cell} run {run + 1}/{runs}: " + "; ".join(
            f"{label} " + ", ".join(
                f"{k}={v:.4g}" for k, v in result[label].items() if isinstance(v, float)
            ) for label in routes
        ), flush=True)
    return results


def number(value: object) -> float:
    """A figure of a run (JSON-shaped dicts hold objects)."""
    if not isinstance(value, int | float):
        raise TypeError(f"not a number: {value!r}")
    return float(value)


def spread(values: list[float]) -> dict[str, float]:
    return {"median": statistics.median(values), "min": min(values), "max": max(values)}


def summarize(
    cell: dict[str, object], runs: list[dict[str, dict[str, object]]], metrics: tuple[str, ...]
) -> dict[str, object]:
    """Median and min-max of every metric per path, and of the per-run ratios routed /
    direct and direct / bare."""
    labels = list(runs[0])
    row: dict[str, object] = dict(cell)
    row["runs"] = len(runs)
    for label in labels:
        row[label] = {m: spread([number(r[label][m]) for r in runs])
                      for m in metrics} | {"each_run": [r[label] for r in runs]}
    for num, den in (("routed", "direct"), ("direct", "bare")):
        if num in labels and den in labels:
            row[f"{num}_over_{den}"] = {
                m: spread([number(r[num][m]) / number(r[den][m]) for r in runs])
                for m in metrics
                if all(r[den][m] for r in runs)  # the bare server has no agent's own view
            }
    return row


async def warm_up(routes: dict[str, Route], timeout: float = 60.0) -> None:
    """Open every channel (a0's to c0 included) and wait until each path delivers: a0
    may still be learning that c0 serves `chunks` when the statuses first agree."""
    for route in routes.values():
        deadline = time.monotonic() + timeout
        while True:
            try:
                await one_stream(route, 1, TTFC_SIZE)
                break
            except Exception:
                if time.monotonic() > deadline:
                    raise
                await asyncio.sleep(0.2)
        for _ in range(20):
            await one_stream(route, 1, TTFC_SIZE)
        await one_stream(route, 500, 1024)


def parse_shape(text: str) -> tuple[int, int]:
    count, _, size = text.lower().partition("x")
    return int(count), int(size)


async def measure_all(args: argparse.Namespace, routes: dict[str, Route],
                      pids: dict[str, int]) -> dict[str, list[dict[str, object]]]:
    ttfc_rows, throughput_rows = [], []
    offset = 0
    for c in args.ttfc_concurrency:
        cell: dict[str, object] = {"concurrency": c, "streams_per_run": args.ttfc_streams}

        async def ttfc(route: Route, c: int = c) -> dict[str, float]:
            return await ttfc_run(route, args.ttfc_streams, c)

        runs = await side_by_side(cell, routes, args.runs, offset, ttfc)
        ttfc_rows.append(summarize(cell, runs, ("p50_ms", "p99_ms", "agent_first_chunk_p50_ms",
                                                "streams_per_s")))
        offset += 1
    for count, size in (parse_shape(s) for s in args.shapes):
        for c in args.throughput_concurrency:
            cell = {"chunks_per_stream": count, "chunk_bytes": size, "concurrency": c}

            async def rate(route: Route, count: int = count, size: int = size,
                           c: int = c) -> dict[str, object]:
                return await throughput_run(route, count, size, c, pids)

            runs = await side_by_side(cell, routes, args.runs, offset, rate)
            throughput_rows.append(summarize(cell, runs, ("mb_per_s", "chunks_per_s")))
            offset += 1
    return {"time_to_first_chunk": ttfc_rows, "throughput": throughput_rows}


async def run(args: argparse.Namespace) -> dict[str, object]:
    ports = PortAllocator().take(3)
    work = Path(tempfile.mkdtemp(prefix="skyfleet-stream-"))
    load = os.getloadavg()
    with LocalFleet(work, fleet_specs(ports[:2])) as fleet:
        admin = TlsMaterial.load(tls_files_in(fleet.layout.tls, "admin"))
        write_policy(fleet)
        bare = None
        try:
            fleet.start()
            clients = {
                "routed": AgentClient(fleet.specs[ENTRY].address, admin, agent_name=ENTRY),
                "direct": AgentClient(fleet.specs[EXECUTOR].address, admin, agent_name=EXECUTOR),
            }
            if not args.no_bare:
                bare, address = start_bare(fleet, ports[2])
                clients["bare"] = AgentClient(address, admin, agent_name=BARE)
            routes = {
                label: Route(label, client, BARE if label == "bare" else EXECUTOR)
                for label, client in clients.items()
            }
            pids = {"client": os.getpid()}
            for name, agent in fleet.agents.items():
                assert agent.proc is not None
                pids[name] = agent.proc.pid
            if bare is not None:
                pids[BARE] = bare.pid
            try:
                await wait_ready(fleet)
                await warm_up(routes)
                figures = await measure_all(args, routes, pids)
            finally:
                for client in clients.values():
                    await client.__aexit__(None, None, None)
        finally:
            if bare is not None:
                bare.terminate()
                bare.wait(10)
    if not args.keep_workdir:
        shutil.rmtree(work, ignore_errors=True)
    return {
        "loadavg_before": load,
        "loadavg_after": os.getloadavg(),
        "cpus": os.cpu_count(),
        "runs": args.runs,
        "paths": {"routed": f"client -> {ENTRY} (aws) -> {EXECUTOR} (gcp)",
                  "direct": f"client -> {EXECUTOR} (gcp), which runs it",
                  "bare": "client -> bare grpc.aio server-streaming echo (no agent)"},
        **figures,
        "workdir": str(work) if args.keep_workdir else None,
    }


# --- the report ------------------------------------------------------------------------


def _cell(row: dict[str, Any], label: str, metric: str, fmt: str = ".1f") -> str:
    figures = row.get(label)
    if not isinstance(figures, dict):
        return "—"
    s = figures[metric]
    return f"{s['median']:{fmt}} ({s['min']:{fmt}}–{s['max']:{fmt}})"


def _cpu(row: dict[str, Any], label: str) -> str:
    """Median CPU µs per chunk of each busy process over the runs of one path."""
    figures = row.get(label)
    if not isinstance(figures, dict):
        return "—"
    each = figures["each_run"]
    names = list(each[0]["cpu_us_per_chunk"])
    parts = []
    for name in names:
        value = statistics.median(r["cpu_us_per_chunk"][name] for r in each)
        if value >= IDLE_US_PER_CHUNK:
            parts.append(f"{name} {value:.0f}")
    return ", ".join(parts)


def markdown(result: dict[str, Any]) -> str:
    """The two tables of docs/benchmarks.md section 10, from `run`'s result."""
    out = [
        "Time to first chunk (one 16-byte chunk per stream; client-measured, ms; "
        "median (min–max) over runs of each run's percentile):",
        "",
        "| C | routed p50 | direct p50 | bare gRPC p50 | routed / direct p50 "
        "| routed p99 | direct p99 | bare gRPC p99 | routed / direct p99 "
        "| direct / bare p50 | entry agent's own p50, routed / direct |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for row in result["time_to_first_chunk"]:
        agent = (f"{row['routed']['agent_first_chunk_p50_ms']['median']:.2f} / "
                 f"{row['direct']['agent_first_chunk_p50_ms']['median']:.2f}")
        out.append(
            f"| {row['concurrency']} | {_cell(row, 'routed', 'p50_ms', '.2f')} "
            f"| {_cell(row, 'direct', 'p50_ms', '.2f')} | {_cell(row, 'bare', 'p50_ms', '.2f')} "
            f"| **{_cell(row, 'routed_over_direct', 'p50_ms', '.2f')}** "
            f"| {_cell(row, 'routed', 'p99_ms', '.2f')} | {_cell(row, 'direct', 'p99_ms', '.2f')} "
            f"| {_cell(row, 'bare', 'p99_ms', '.2f')} "
            f"| **{_cell(row, 'routed_over_direct', 'p99_ms', '.2f')}** "
            f"| {_cell(row, 'direct_over_bare', 'p50_ms', '.2f')} | {agent} |"
        )
    out += [
        "",
        "Chunk throughput (C concurrent streams, aggregate as read by the client; "
        "MB = 10^6 bytes; median (min–max) over runs):",
        "",
        "| chunk | chunks per stream | C | routed MB/s | direct MB/s | bare gRPC MB/s "
        "| routed / direct | direct / bare | routed chunks/s | direct chunks/s "
        "| bare gRPC chunks/s | CPU µs per chunk, routed | direct | bare |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for row in result["throughput"]:
        size = row["chunk_bytes"]
        chunk = f"{size // 1024} KiB" if size >= 1024 and size % 1024 == 0 else f"{size} B"
        out.append(
            f"| {chunk} | {row['chunks_per_stream']:,} | {row['concurrency']} "
            f"| {_cell(row, 'routed', 'mb_per_s')} | {_cell(row, 'direct', 'mb_per_s')} "
            f"| {_cell(row, 'bare', 'mb_per_s')} "
            f"| **{_cell(row, 'routed_over_direct', 'mb_per_s', '.2f')}** "
            f"| {_cell(row, 'direct_over_bare', 'mb_per_s', '.2f')} "
            f"| {_cell(row, 'routed', 'chunks_per_s', ',.0f')} "
            f"| {_cell(row, 'direct', 'chunks_per_s', ',.0f')} "
            f"| {_cell(row, 'bare', 'chunks_per_s', ',.0f')} "
            f"| {_cpu(row, 'routed')} | {_cpu(row, 'direct')} | {_cpu(row, 'bare')} |"
        )
    return "\n".join(out)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=5, help="runs of every cell")
    parser.add_argument("--ttfc-streams", type=int, default=500,
                        help="one-chunk streams per run and concurrency")
    parser.add_argument("--ttfc-concurrency", type=int, nargs="+", default=[1, 8])
    parser.add_argument("--shapes", nargs="+", default=["20000x1024", "2000x65536"],
                        help="throughput streams as COUNTxSIZE (chunks x bytes)")
    parser.add_argument("--throughput-concurrency", type=int, nargs="+", default=[1, 4])
    parser.add_argument("--no-bare", action="store_true", help="skip the bare gRPC server")
    parser.add_argument("--keep-workdir", action="store_true", help="keep agents' logs")
    parser.add_argument("--quick", action="store_true",
                        help="1 run, 100 one-chunk streams, 4000x1 KiB and 100x64 KiB")
    parser.add_argument("--out", type=Path, default=ROOT / "bench/out/stream_realproc.json")
    parser.add_argument("--serve-bare", metavar="ADDRESS", help=argparse.SUPPRESS)
    parser.add_argument("--tls", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--name", default=BARE, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.quick:
        args.runs, args.ttfc_streams, args.shapes = 1, 100, ["4000x1024", "100x65536"]
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.serve_bare:
        asyncio.run(serve_bare(args.serve_bare, args.tls, args.name))
        return 0
    result = asyncio.run(run(args))
    print()
    print(markdown(result))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=1) + "\n")
    print(f"\nwrote {args.out} (load average before: {result['loadavg_before']}, "
          f"after: {result['loadavg_after']})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
