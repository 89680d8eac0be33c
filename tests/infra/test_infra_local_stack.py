"""The `local` stack through the whole program under mocks: 9 agents as 3 clouds x 3 zones
in the local fleet's layout, one policy publication into the folder they watch, and
nothing in any cloud."""

from __future__ import annotations

import asyncio
import json
import socket
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
import yaml
from pulumi.dynamic import CreateResult

from infra.components.local_hosts import LocalAgentProvider, agent_spec
from infra.components.policy_publication import LocalPolicyFileProvider
from skyfleet.localfleet.layout import FleetLayout
from skyfleet.localfleet.procs import LocalFleet
from skyfleet.policy.signing import verify_envelope
from tests.infra.mocks import (
    DYNAMIC,
    REPO_ROOT,
    StackRun,
    run_stack,
    stack_file_config,
    write_policy,
)

CLOUD_PREFIXES = ("aws:", "azure-native:", "gcp:")


def layout_of(run: StackRun) -> FleetLayout:
    agents = run.mocks.dynamic("LocalAgent")
    (state_dir,) = {a.inputs["state_dir"] for a in agents}
    return FleetLayout(Path(state_dir))


def test_committed_local_stack_is_three_clouds_by_three_zones():
    config = yaml.safe_load((REPO_ROOT / "Pulumi.local.yaml").read_text())["config"]
    clouds = config["skyfleet:clouds"]
    assert clouds == ["aws", "azure", "gcp"]
    for cloud in clouds:
        assert len(config[f"skyfleet:{cloud}Zones"]) == 3
        assert config[f"skyfleet:{cloud}HostsPerZone"] == 1


def test_local_stack_declares_nine_agents_over_three_clouds_and_zones(stack_runs):
    run = stack_runs("local")
    agents = run.mocks.dynamic("LocalAgent")
    assert len(agents) == 9
    spread = Counter((a.inputs["cloud"], a.inputs["zone"]) for a in agents)
    assert spread == Counter({(c, z): 1 for c in ("aws", "azure", "gcp") for z in "abc"})
    endpoints = [a.inputs["endpoint"] for a in agents]
    assert len(set(endpoints)) == 9 and all(e.startswith("127.0.0.1:") for e in endpoints)
    for agent in agents:
        assert agent.inputs["environment"] == "local"
        assert agent.inputs["profile"] == "local"
        # Every other zone's first host is a seed; an agent never seeds itself.
        assert agent.inputs["endpoint"] not in agent.inputs["seeds"]
        assert len(agent.inputs["seeds"]) == 8
    assert sorted(run.exports["hosts"]) == ["aws", "azure", "gcp"]


def test_local_stack_uses_the_local_fleet_layout(stack_runs):
    """The CA and trusted key the agents are declared with are FleetLayout's files, so
    `skyfleet local demo` and the local stack run one fleet from one folder."""
    run = stack_runs("local")
    layout = layout_of(run)
    ca = (layout.tls / "ca.pem").read_text()
    trusted = (layout.policy / "fleet.pub").read_text()
    for agent in run.mocks.dynamic("LocalAgent"):
        assert agent.inputs["ca_cert_pem"] == ca
        assert agent.inputs["trusted_key_pem"] == trusted
    assert layout.signing_key.stat().st_mode & 0o077 == 0


def test_local_stack_publishes_one_signed_policy_into_the_watched_folder(stack_runs):
    run = stack_runs("local")
    layout = layout_of(run)
    publications = run.mocks.of_type("skyfleet:infra:PolicyPublication")
    files = run.mocks.dynamic("LocalPolicyFile")
    assert len(publications) == 1 and len(files) == 1
    path = Path(files[0].inputs["path"])
    assert path.parent == layout.policy_source and path.suffix == ".json"
    envelope = json.loads(files[0].inputs["content"])
    document = verify_envelope(envelope, [(layout.policy / "fleet.pub").read_bytes()])
    assert document.version == run.exports["policyVersion"] == 1
    assert run.exports["policyLocations"] == {"local": f"file:{path}"}


def test_local_stack_creates_nothing_in_any_cloud(stack_runs):
    run = stack_runs("local")
    cloud = [r for r in run.mocks.resources if r.typ.startswith(CLOUD_PREFIXES)]
    assert cloud == []
    # Certificates are FleetLayout's files, not Pulumi state; no tunnels without clouds.
    assert run.mocks.dynamic("NodeCertificate") == []
    assert run.exports["tunnels"] == []
    kinds = {r.typ for r in run.mocks.resources}
    assert kinds == {"skyfleet:infra:PolicyPublication", "skyfleet:infra:LocalHosts",
                     f"{DYNAMIC}/skyfleet:LocalPolicyFile", f"{DYNAMIC}/skyfleet:LocalAgent"}


def consecutive_free_ports(count: int) -> int:
    """The first of `count` consecutive loopback ports that are free right now (the local
    stack gives host i the port agentPort + i)."""
    for base in range(23000, 60000, count + 7):
        socks = []
        try:
            for port in range(base, base + count):
                s = socket.socket()
                socks.append(s)
                s.bind(("127.0.0.1", port))
            return base
        except OSError:
            continue
        finally:
            for s in socks:
                s.close()
    raise AssertionError(f"no {count} consecutive free ports")


def engine_inputs(record) -> dict[str, Any]:  # type: ignore[no-untyped-def]
    return {k: v for k, v in record.inputs.items() if k != "__provider"}


@pytest.mark.realproc
@pytest.mark.slow
def test_local_stack_up_runs_a_fleet_that_converges_on_the_published_policy(
    stack_secrets, tmp_path
):
    """`pulumi up -s local` by hand: the program under mocks declares the resources, then
    the providers' `create` runs in dependency order (publication first), as the engine
    would. The agents are watched through `LocalFleet`, the demo's own view of the
    layout: one fleet, one folder. (Sync on purpose: the program must not run on
    pytest-asyncio's loop, whose executor threads would leave Pulumi's loops behind.)"""
    config = stack_file_config("local")
    config["skyfleet:agentPort"] = str(consecutive_free_ports(9))
    write_policy(tmp_path, config)
    run = run_stack("local", config, stack_secrets, tmp_path)
    (policy_file,) = run.mocks.dynamic("LocalPolicyFile")
    LocalPolicyFileProvider().create(engine_inputs(policy_file))
    provider = LocalAgentProvider()
    created: list[CreateResult] = []
    try:
        # The engine creates independent resources in parallel; so do we.
        with ThreadPoolExecutor(max_workers=9) as pool:
            for future in [pool.submit(provider.create, engine_inputs(r))
                           for r in run.mocks.dynamic("LocalAgent")]:
                created.append(future.result())
        fleet = LocalFleet(layout_of(run).root, [agent_spec(c.outs) for c in created])
        asyncio.run(converged_on_policy(fleet, version=1))
    finally:
        with ThreadPoolExecutor(max_workers=9) as pool:
            list(pool.map(lambda c: provider.delete(c.id, c.outs), created))
    assert all(provider.read(c.id, c.outs).id == "" for c in created)


async def converged_on_policy(fleet: LocalFleet, version: int) -> None:
    names = list(fleet.specs)
    await fleet.wait_converged(names, timeout=60)
    await fleet.wait_for(
        lambda views: all(v[n].policy_version == version for v in views.values() for n in names),
        names, timeout=30, what=f"every agent on policy v{version}")
