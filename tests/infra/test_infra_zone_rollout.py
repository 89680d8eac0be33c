"""A new runtime is a rolling replacement, one zone at a time: under the engine mocks,
the chain the program declares (hosts of zone k take the gate of zone k-1 as input, and
every gate waits for a new runtime); against real agents, the gate's wait."""

from __future__ import annotations

import asyncio
import dataclasses
from pathlib import Path

import pytest

from infra import program
from infra.components.zone_rollout import RolloutError, ZoneRejoinedProvider, wait_for_zone
from skyfleet.config.agent import load_agent_config
from skyfleet.node import Agent
from tests.infra.mocks import (
    HOST_TYPES,
    host_name,
    run_stack,
    stack_file_config,
    user_data,
    write_policy,
)
from tests.runtime.joined_agents import joined_layout, until

AFTER = {"aws": ("tags", "skyfleet:after"), "azure": ("tags", "skyfleet:after"),
         "gcp": ("labels", "skyfleet-after")}


def test_a_new_runtime_replaces_hosts_zone_after_zone(stack_runs, stack_secrets, tmp_path,
                                                      monkeypatch) -> None:
    before = stack_runs("prod")
    built = program.build_bundle

    def next_build(*args, **kwargs):
        return dataclasses.replace(built(*args, **kwargs), sha256="f" * 64)

    monkeypatch.setattr(program, "build_bundle", next_build)
    config = stack_file_config("prod")
    write_policy(tmp_path, config)
    after = run_stack("prod", config, stack_secrets, tmp_path, previous=before)

    order = after.exports["rolloutOrder"]
    assert len(order) == 9  # three clouds x three zones, one chain
    hosts = {cloud: after.mocks.of_type(typ) for cloud, typ in HOST_TYPES.items()}
    old = {host_name(r): user_data(r) for typ in HOST_TYPES.values()
           for r in before.mocks.of_type(typ)}
    gates = {r.inputs["zone"]: r for r in after.mocks.dynamic("ZoneRejoined")}
    old_gates = {r.inputs["zone"]: r for r in before.mocks.dynamic("ZoneRejoined")}
    position = {r.name: i for i, r in enumerate(after.mocks.resources)}
    for cloud, records in hosts.items():
        field, key = AFTER[cloud]
        for r in records:
            # New user data, which replaces the host (AWS says so in its inputs).
            assert user_data(r) != old[host_name(r)]
            if cloud == "aws":
                assert r.inputs["userDataReplaceOnChange"] is True
            zone = next(z for z, g in gates.items() if host_name(r) in g.inputs["nodes"])
            k = order.index(zone)
            # Zone k's hosts come after gate k-1: its output is their input.
            assert r.inputs.get(field, {}).get(key) == (order[k - 1] if k else None)
            if k:
                assert position[r.name] > position[gates[order[k - 1]].name]
            assert f"{r.name}-id" in gates[zone].inputs["hosts"]
    for zone, gate in gates.items():
        # Every gate sees the new runtime: its update waits for the zone to rejoin.
        assert ZoneRejoinedProvider().diff(gate.name, old_gates[zone].inputs,
                                           gate.inputs).changes
        # A zone is judged by the others: none of its own hosts observes it.
        endpoints = after.exports["endpoints"]
        assert set(gate.inputs["observers"]).isdisjoint(
            endpoints[n] for n in gate.inputs["nodes"])


@pytest.fixture
def fleet(tmp_path: Path, free_ports):
    return joined_layout(tmp_path, free_ports(2))


def gate_props(layout, n0, n1, zone_nodes: list[str]) -> dict:
    tls = layout.tls
    return {"zone": "aws-z", "nodes": zone_nodes, "observers": [n0.address],
            "own": [n1.address],
            "ca_pem": (tls / "ca.pem").read_text(),
            "admin_cert_pem": (tls / "admin.pem").read_text(),
            "admin_key_pem": (tls / "admin.key").read_text()}


async def test_the_gate_waits_for_a_new_agent_process_in_the_zone(fleet) -> None:
    layout, (n0, n1) = fleet
    props = gate_props(layout, n0, n1, ["n1"])
    async with Agent(load_agent_config(layout.config_path("n0"))) as a0:
        async with Agent(load_agent_config(layout.config_path("n1")), incarnation=1000):
            await until(lambda: a0.swim.member("n1") is not None, "n0 to see n1")
            seen = await asyncio.to_thread(wait_for_zone, props, {"n1": -1}, timeout=10,
                                           poll=0.1)
            assert seen == {"n1": 1000}
            # The same process is not a rejoin: the gate times out naming the zone and node.
            with pytest.raises(RolloutError, match="zone aws-z: n1 not back in the fleet"):
                await asyncio.to_thread(wait_for_zone, props, seen, timeout=1, poll=0.1)
        # n1 replaced: a new process, a new incarnation, seen by the other zone's n0.
        async with Agent(load_agent_config(layout.config_path("n1")), incarnation=2000):
            seen = await asyncio.to_thread(wait_for_zone, props, {"n1": 1000}, timeout=20,
                                           poll=0.1)
            assert seen == {"n1": 2000}


async def test_a_first_zone_with_no_other_zone_yet_is_judged_by_its_own_hosts(fleet) -> None:
    layout, (n0, n1) = fleet
    props = {**gate_props(layout, n0, n1, ["n1"]), "observers": ["127.0.0.1:1"]}
    async with Agent(load_agent_config(layout.config_path("n1")), incarnation=7):
        seen = await asyncio.to_thread(wait_for_zone, props, {"n1": -1}, timeout=10, poll=0.1)
    assert seen == {"n1": 7}
