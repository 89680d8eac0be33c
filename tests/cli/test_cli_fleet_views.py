"""The commands that watch a fleet, run as processes against in-process agents over
mTLS: `policy status --wait` following a real rollout (progress as it changes, exit 0)
and timing out (exit 1 naming who lags), `top` on a remote agent, and the lines of
`local env` that point a shell's every command at the local fleet."""

from __future__ import annotations

import asyncio
import json
import socket
import sys
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

from skyfleet.cli.local import fleet_env
from skyfleet.client import AgentClient, tls_files_in
from skyfleet.config.agent import load_agent_config
from skyfleet.localfleet.layout import AgentSpec, FleetLayout
from skyfleet.localfleet.stack import FleetOutputs
from skyfleet.node import Agent
from skyfleet.policy.signing import sign_policy
from skyfleet.transport.tls import TlsMaterial
from tests.cli.cli_run import COMMAND, Run, environment, skyfleet, started

ROOT = Path(__file__).resolve().parents[2]
FAST = {"status_interval": 0.2, "status_refresh_interval": 0.5}
"""Statuses gossiped every 0.2 s: a rollout is seen within a second."""
DEADLINE = 30.0


@dataclass(frozen=True, slots=True)
class Pair:
    """n0 and n1, joined through n0; the commands call n0."""

    agents: dict[str, Agent]
    addresses: dict[str, str]
    layout: FleetLayout

    @property
    def env(self) -> dict[str, str]:
        return {"SKYFLEET_AGENT": self.addresses["n0"], "SKYFLEET_TLS_DIR": str(self.layout.tls)}

    async def publish(self, name: str, version: int) -> None:
        """Offer policies/default.json at `version` to agent `name` alone."""
        doc = json.loads((ROOT / "policies" / "default.json").read_text()) | {
            "version": version}
        envelope = json.dumps(sign_policy(doc, self.layout.signing_key.read_bytes()))
        admin = TlsMaterial.load(tls_files_in(self.layout.tls, "admin"))
        async with AgentClient(self.addresses[name], admin) as client:
            reply = await client.publish_policy(envelope.encode())
        assert reply.version == version, reply

    async def seen_by_n0(self, condition: Callable[[dict[str, tuple[str, int]]], bool],
                         what: str) -> None:
        """Wait, under a deadline, until n0's member table {name: (state, version)}
        satisfies `condition`."""
        admin = TlsMaterial.load(tls_files_in(self.layout.tls, "admin"))
        deadline = time.monotonic() + DEADLINE
        async with AgentClient(self.addresses["n0"], admin) as client:
            while True:
                _, rows = await client.list_members()
                if condition({r.name: (r.state, r.policy_version) for r in rows}):
                    return
                if time.monotonic() > deadline:
                    raise AssertionError(f"timed out waiting for {what}: {rows}")
                await asyncio.sleep(0.05)


@pytest.fixture
async def pair(tmp_path: Path, free_ports) -> AsyncIterator[Pair]:
    ports = free_ports(2)
    layout = FleetLayout(tmp_path)
    addresses = {f"n{i}": f"127.0.0.1:{port}" for i, port in enumerate(ports)}
    for name, address in addresses.items():
        seeds = () if name == "n0" else (addresses["n0"],)
        layout.write_agent(AgentSpec(name=name, cloud="aws", zone="z", address=address,
                                     seeds=seeds, overrides=dict(FAST)))
    agents = {name: Agent(load_agent_config(layout.config_path(name))) for name in addresses}
    for agent in agents.values():
        await agent.start()
    try:
        fleet = Pair(agents, addresses, layout)
        await fleet.seen_by_n0(lambda view: view.get("n1", ("",))[0] == "alive",
                               "n0 to see n1 alive")
        yield fleet
    finally:
        await asyncio.gather(*(a.shutdown() for a in agents.values()))


async def on_v1(pair: Pair) -> None:
    await pair.publish("n0", 1)
    await pair.seen_by_n0(lambda view: {v for _, v in view.values()} == {1},
                          "both on v1 as n0 sees them")


async def test_wait_follows_a_rollout_published_to_one_agent(pair: Pair) -> None:
    await on_v1(pair)
    proc = await started("policy", "status", "--wait", "--version", "2", "--timeout",
                         str(DEADLINE), env=pair.env)
    assert proc.stdout is not None
    first = await asyncio.wait_for(proc.stdout.readline(), DEADLINE)
    assert first == b"0 of 2 live members on v2\n"
    await pair.publish("n1", 2)  # n0 pulls it from n1, as every agent pulls a newer one
    out, err = await asyncio.wait_for(proc.communicate(), DEADLINE)
    assert (proc.returncode, err) == (0, b""), err
    *progress, done = [first.decode(), *out.decode().splitlines(keepends=True)]
    assert done == "policy v2 runs on every live member, as seen by n0\n"
    counts = [int(line.split()[0]) for line in progress]
    assert counts == sorted(set(counts)) and counts[-1] == 2  # a line per change, no repeat
    assert progress[-1] == "2 of 2 live members on v2\n"

    # Without --version it waits for the newest: here already everywhere, one look.
    shown = await skyfleet("policy", "status", "--wait", "-o", "json", env=pair.env)
    assert shown.code == 0, shown.err
    doc = json.loads(shown.out)
    assert (doc["version"], doc["done"], doc["lagging"], doc["on_newest"]) == (2, True, [], 2)


async def test_wait_that_times_out_exits_1_naming_the_members_that_lag(pair: Pair) -> None:
    await on_v1(pair)
    run = await skyfleet("policy", "status", "--wait", "--version", "3", "--timeout", "1.5",
                         env=pair.env)
    assert run.code == 1
    assert run.text == "0 of 2 live members on v3\n"  # said once, not on every look
    assert run.err == ("skyfleet: timed out after 1.5s: 2 of 2 live members not on v3: "
                       "n0 (v1), n1 (v1)\n")

    shown = await skyfleet("policy", "status", "--wait", "--version", "3", "--timeout", "0.5",
                           "-o", "json", env=pair.env)
    assert shown.code == 1 and shown.err.startswith("skyfleet: timed out after 0.5s: ")
    doc = json.loads(shown.out)  # one object, no progress lines
    assert (doc["version"], doc["done"], doc["lagging"]) == (3, False, ["n0", "n1"])
    assert doc["newest_version"] == 1 and doc["observer"] == "n0"


async def test_top_shows_a_remote_fleet_through_the_connection_options(pair: Pair) -> None:
    framed = await skyfleet("top", "--once", env=pair.env)
    assert framed.code == 0, framed.err
    title, blank, header, *rows, footnote = framed.text.splitlines()
    assert title.startswith("skyfleet top  ") and title.endswith(f"({pair.addresses['n0']})")
    assert header.split()[:4] == ["CLOUD", "ZONE", "NAME", "STATE"]
    assert [r.split()[2:4] for r in rows] == [["n0", "alive"], ["n1", "alive"]]
    assert footnote.endswith("as seen by n0")

    flags = ["--agent", pair.addresses["n1"], "--tls-dir", str(pair.layout.tls)]
    shown = await skyfleet("top", *flags, "-o", "json")
    assert shown.code == 0, shown.err
    doc = json.loads(shown.out)
    assert doc["local_node"] == "n1" and {m["name"] for m in doc["members"]} == {"n0", "n1"}


def outputs_of(pair: Pair, endpoints: dict[str, str]) -> FleetOutputs:
    """What a local stack of these agents would output (only what `local env` reads)."""
    return FleetOutputs(endpoints=endpoints, clouds={}, agents={}, seeds=[],
                        state_dir=pair.layout.root, network={}, policy_version=0,
                        policy_hash="", ca_cert="")


async def in_shell(lines: list[str], *args: str, env: dict[str, str]) -> Run:
    """`eval` the lines in a shell, then run `skyfleet ARGS` in it."""
    script = 'eval "$LINES"; exec "$@"'
    proc = await asyncio.create_subprocess_exec(
        "sh", "-c", script, "sh", *COMMAND, *args,
        env=environment(env) | {"LINES": "\n".join(lines)},
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    out, err = await asyncio.wait_for(proc.communicate(), DEADLINE)
    assert proc.returncode is not None
    return Run(proc.returncode, out, err.decode())


async def test_local_env_points_every_command_at_an_agent_that_answers(pair: Pair) -> None:
    with socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))  # never listening: the first agent asked is down
        down = f"127.0.0.1:{closed.getsockname()[1]}"
        endpoints = {"gone": down, "n1": pair.addresses["n1"]}
        lines = await fleet_env(outputs_of(pair, endpoints), timeout=1.0)
    assert lines[:2] == [f"export SKYFLEET_AGENT='{pair.addresses['n1']}'",
                         f"export SKYFLEET_TLS_DIR='{pair.layout.tls}'"]
    assert all(line.startswith("#") for line in lines[2:])
    assert "client --client" in lines[-1]  # how to get the identity task submit needs

    elsewhere = {"SKYFLEET_AGENT": down, "SKYFLEET_TLS_DIR": sys.prefix}
    members = await in_shell(lines, "members", "-o", "json", env=elsewhere)
    assert members.code == 0, members.err
    assert json.loads(members.out)["local_node"] == "n1"
    status = await in_shell(lines, "policy", "status", env=elsewhere)
    assert status.code == 0 and "as seen by n1" in status.text, status.err


async def test_local_env_without_a_fleet_unsets_the_agent(pair: Pair) -> None:
    stale = {"SKYFLEET_AGENT": pair.addresses["n0"], "SKYFLEET_TLS_DIR": str(pair.layout.tls)}
    for outputs in (None, outputs_of(pair, {})):
        lines = await fleet_env(outputs, timeout=1.0)
        assert lines[0] == "unset SKYFLEET_AGENT SKYFLEET_TLS_DIR"
        run = await in_shell(lines, "members", env=stale)
        assert run.code == 2 and "$SKYFLEET_AGENT" in run.err.splitlines()[-1], run.err
