"""What the Pulumi engine costs the local stack, side by side with the runtime on its own.

A run, for a fleet of 3 agents (one cloud, three zones) and one of 9 (3 x 3), in a fresh
copy of the project (loopback network, so it needs no root and runs anywhere):

1. engine start: `pulumi up` of the new stack, until it returns (LocalFleetReady: every
   agent sees every other alive), checked by polling every agent afterwards;
2. engine fixed cost: `pulumi up` again with nothing to change (the program, the engine's
   bookkeeping of every resource, no provider operation);
3. rollout through the stack: `pulumi config set` of policyFile and policyVersion, then
   `pulumi up` (which returns once every agent runs the new version), until every agent
   reports it;
4. rollout through the runtime: the next version signed with the same key and published
   to one agent (`Policy.Publish`, admin identity), until every agent reports it;
5. `pulumi destroy`; then the runtime's own start of the very same agents (names,
   addresses, seeds, config): `LocalFleet.start()` until every agent sees every other.

The bar: the engine adds at most its own fixed cost and nothing per agent, so
(engine start - runtime start) should not grow from 3 to 9 agents, and the rollout through
the stack should cost the rollout through the runtime plus about one fixed cost.

    .venv/bin/python bench/engine_local.py [--runs 3] [--out bench/out/engine_local.json]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from skyfleet.localfleet import ops  # noqa: E402
from skyfleet.localfleet.layout import AgentSpec  # noqa: E402
from skyfleet.localfleet.procs import LocalFleet  # noqa: E402
from skyfleet.localfleet.stack import FleetOutputs, LocalStack  # noqa: E402
from skyfleet.policy.signing import sign_policy  # noqa: E402
from tests.infra.engine_project import make_project  # noqa: E402

TIMEOUT = 120.0


@dataclass(slots=True)
class Run:
    agents: int
    engine_up_s: float = 0.0
    engine_noop_up_s: float = 0.0
    runtime_start_s: float = 0.0
    rollout_stack_s: float = 0.0
    rollout_publish_s: float = 0.0


async def all_run(outputs: FleetOutputs, version: int) -> float:
    fleet, names = ops.watch(outputs), list(outputs.endpoints)
    return await fleet.wait_for(
        lambda views: all(v[n].policy_version == version for n, v in views.items()),
        names, timeout=TIMEOUT, what=f"v{version} on every agent")


async def publish(outputs: FleetOutputs, version: int) -> float:
    """Sign `version` with the stack's key, publish it to the first agent, wait for all."""
    from skyfleet.client import AgentClient

    doc = json.loads((ROOT / "policies" / "latency-first.json").read_text())
    doc.update(version=version, description=f"bench version {version}")
    key = (outputs.state_dir / "policy" / "fleet.key").read_bytes()
    envelope = json.dumps(sign_policy(doc, key)).encode()
    name, address = next(iter(outputs.endpoints.items()))
    fleet = ops.watch(outputs)
    start = time.monotonic()
    async with AgentClient(address, fleet.tls, agent_name=name) as client:
        await client.publish_policy(envelope)
    await all_run(outputs, version)
    return time.monotonic() - start


def one_run(clouds: list[str], work: Path) -> Run:
    project = make_project(work, network="loopback", config={"skyfleet:clouds": clouds})
    stack = LocalStack(project)
    run = Run(agents=3 * len(clouds))
    try:
        run.engine_up_s = stack.up().seconds
        outputs = stack.outputs()
        asyncio.run(ops.settled(outputs))  # it is: up returned with a joined fleet
        run.engine_noop_up_s = stack.up().seconds
        start = time.monotonic()
        stack.set_config("skyfleet:policyFile", "policies/latency-first.json")
        stack.set_config("skyfleet:policyVersion", "2")
        stack.up()
        asyncio.run(all_run(outputs, 2))
        run.rollout_stack_s = time.monotonic() - start
        run.rollout_publish_s = asyncio.run(publish(outputs, 3))
    finally:
        stack.destroy()
    specs = [AgentSpec(name=n, cloud=outputs.clouds[n], zone=n.split("-")[1],
                       address=outputs.endpoints[n],
                       seeds=tuple(e for s, e in outputs.endpoints.items()
                                   if e in outputs.seeds and s != n),
                       profile="local")
             for n in outputs.endpoints]
    fleet = LocalFleet(work / "runtime", specs)
    try:
        start = time.monotonic()
        fleet.start()
        asyncio.run(fleet.wait_converged(list(fleet.specs), timeout=TIMEOUT))
        run.runtime_start_s = time.monotonic() - start
    finally:
        fleet.stop()
    return run


def summary(runs: list[Run]) -> dict[str, dict[str, float]]:
    out: dict[str, dict[str, float]] = {}
    for n in sorted({r.agents for r in runs}):
        mine = [r for r in runs if r.agents == n]

        def med(field: str, rows: list[Run] = mine) -> float:
            return statistics.median(getattr(r, field) for r in rows)

        out[str(n)] = {
            "engine_up_s": med("engine_up_s"),
            "runtime_start_s": med("runtime_start_s"),
            "engine_overhead_s": statistics.median(
                r.engine_up_s - r.runtime_start_s for r in mine),
            "start_ratio": statistics.median(r.engine_up_s / r.runtime_start_s for r in mine),
            "engine_noop_up_s": med("engine_noop_up_s"),
            "rollout_stack_s": med("rollout_stack_s"),
            "rollout_publish_s": med("rollout_publish_s"),
            "rollout_ratio": statistics.median(
                r.rollout_stack_s / r.rollout_publish_s for r in mine),
        }
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--out", type=Path, default=ROOT / "bench" / "out" / "engine_local.json")
    args = ap.parse_args()
    runs: list[Run] = []
    with tempfile.TemporaryDirectory(prefix="skyfleet-engine-bench-") as tmp:
        for i in range(args.runs):
            for clouds in (["aws"], ["aws", "azure", "gcp"]):
                run = one_run(clouds, Path(tmp) / f"run{i}-{len(clouds)}")
                runs.append(run)
                print(json.dumps(asdict(run)), flush=True)
    result = {"runs": [asdict(r) for r in runs], "summary": summary(runs)}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2))
    for n, row in result["summary"].items():
        print(f"N={n}: " + ", ".join(f"{k} {v:.2f}" for k, v in row.items()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
