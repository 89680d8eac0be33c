"""The `local` stack under the real Pulumi engine (the CLI tools/pulumi/install.sh built or
found), in a throwaway copy of the project with its own backend: preview, up, up again
with nothing to do, refresh after agents died and up bringing them back, a rollout by
stack config, refused rollouts, the guardrail pack passing and failing, no private key in
the exported state, destroy leaving nothing behind; and, for every committed stack, the
CLI's own config check.

The stack is one per module (engine commands cost seconds), so the tests run in order
and each leaves the stack as the next expects it."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import re
import signal
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from infra import pack_config
from skyfleet.localfleet import ops
from skyfleet.localfleet.stack import FleetOutputs, LocalStack, StackError, engine_env
from tests.infra.engine_project import REPO_ROOT, make_project

pytestmark = [pytest.mark.realproc, pytest.mark.slow]


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalStack]:
    local = LocalStack(make_project(tmp_path_factory.mktemp("engine") / "project"))
    try:
        yield local
    finally:
        with contextlib.suppress(StackError):  # already destroyed, or a test says why
            local.destroy()


def own_versions(outputs: FleetOutputs) -> dict[str, int]:
    async def ask() -> dict[str, int]:
        views = await ops.watch(outputs).views(list(outputs.endpoints))
        return {name: view[name].policy_version for name, view in views.items()}

    return asyncio.run(ask())


def alive(outputs: FleetOutputs) -> list[str]:
    return [n for n, a in outputs.agents.items() if Path(f"/proc/{a.pid}").exists()
            and "Z" not in Path(f"/proc/{a.pid}/stat").read_text().rpartition(")")[2][:3]]


def test_preview_of_a_new_stack_plans_the_whole_fleet(stack):
    step, changes = stack.preview()
    assert step.changes == {"create": 14}
    kinds = sorted(line.split(" (")[1].split(")")[0] for line in changes)
    assert kinds.count("LocalAgent") == 9
    assert {"LocalNetwork", "LocalPolicyFile", "LocalFleetReady", "LocalHosts"} <= set(kinds)


def test_up_creates_nine_agents_in_three_clouds_and_zones_that_see_each_other(stack):
    step = stack.up()
    assert step.changes == {"create": 14}
    outputs = stack.outputs()
    assert sorted(outputs.clouds.values()) == ["aws"] * 3 + ["azure"] * 3 + ["gcp"] * 3
    assert len(outputs.endpoints) == 9 and len(alive(outputs)) == 9
    assert set(outputs.seeds) <= set(outputs.endpoints.values()) and len(outputs.seeds) == 9
    assert outputs.policy_version == 1 and re.fullmatch(r"[0-9a-f]{64}", outputs.policy_hash)
    assert outputs.ca_cert.startswith("-----BEGIN CERTIFICATE-----")
    assert outputs.network["mode"] == "loopback"
    # `pulumi up` returned with a joined fleet (LocalFleetReady): nothing to wait for.
    assert own_versions(outputs) == dict.fromkeys(outputs.endpoints, 1)


def test_up_again_changes_nothing(stack):
    before = stack.outputs()
    step = stack.up()
    assert set(step.changes) == {"same"}
    assert stack.outputs().agents == before.agents  # the same processes


def test_refresh_notices_dead_agents_and_the_next_up_brings_them_back(stack):
    before = stack.outputs()
    victims = sorted(n for n, c in before.clouds.items() if c == "gcp")[:2]
    for name in victims:
        os.kill(before.agents[name].pid, signal.SIGKILL)
    refreshed = stack.refresh()
    # The two agents and the fleet they belonged to are gone from the state.
    assert refreshed.changes.get("delete") == 3
    step = stack.up()
    assert step.changes.get("create") == 3
    after = stack.outputs()
    assert {after.agents[n].pid for n in victims}.isdisjoint(
        {before.agents[n].pid for n in victims})
    assert len(alive(after)) == 9
    asyncio.run(ops.settled(after))


def test_rollout_by_stack_config_is_one_update_and_reaches_every_agent(stack):
    stack.set_config("skyfleet:policyFile", "policies/latency-first.json")
    stack.set_config("skyfleet:policyVersion", "2")
    step, changes = stack.preview()
    assert step.changes.get("update") == 1 and "replace" not in step.changes
    (line,) = changes
    assert line.startswith("update policy (LocalPolicyFile)")
    assert "version" in line and "content" in line
    before = stack.outputs()
    step = stack.up()
    assert step.changes.get("update") == 1
    after = stack.outputs()
    assert after.policy_version == 2 and after.agents == before.agents  # no host touched
    # The update returned once every agent ran v2.
    assert own_versions(after) == dict.fromkeys(after.endpoints, 2)


@pytest.mark.parametrize(
    ("policy_file", "version", "message"),
    [
        ("policies/default.json", "1", "skyfleet:policyVersion: 1 is older than the published "
                                       "version 2"),
        ("policies/default.json", "2", "skyfleet:policyVersion: 2 does not match version 1 in "
                                       "policies/default.json"),
    ],
)
def test_a_rollout_backwards_or_at_a_mismatched_version_fails_the_preview(
        stack, policy_file, version, message):
    published = Path(stack.outputs().state_dir) / "policy" / "source" / "policy.json"
    text = published.read_text()
    stack.set_config("skyfleet:policyFile", policy_file)
    stack.set_config("skyfleet:policyVersion", version)
    try:
        with pytest.raises(StackError) as refused:
            stack.preview()
        assert message in str(refused.value)
        assert "Traceback" not in str(refused.value)
    finally:
        stack.set_config("skyfleet:policyFile", "policies/latency-first.json")
        stack.set_config("skyfleet:policyVersion", "2")
    assert published.read_text() == text  # nothing written, every agent still on v2
    assert set(own_versions(stack.outputs()).values()) == {2}


def pulumi(stack: LocalStack, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, **engine_env(stack.project)}
    return subprocess.run([str(REPO_ROOT / ".venv" / "bin" / "pulumi"), *args, "-s", "local",
                           "--non-interactive", "--color", "never"],
                          cwd=stack.project, env=env, capture_output=True, text=True,
                          timeout=300)


def with_pack(stack: LocalStack, config: dict[str, object], tmp: Path) -> (
        subprocess.CompletedProcess[str]):
    path = tmp / "pack.json"
    path.write_text(json.dumps(config))
    return pulumi(stack, "preview", "--policy-pack", str(REPO_ROOT / "infra" / "guardrails"),
                  "--policy-pack-config", str(path))


def test_the_guardrail_pack_passes_the_stack_under_the_engine(stack, tmp_path):
    run = with_pack(stack, pack_config.for_stack(stack.project, "local"), tmp_path)
    assert run.returncode == 0, run.stdout + run.stderr
    assert "skyfleet-guardrails@" in run.stdout


def test_the_pack_refuses_a_fleet_below_its_redundancy_naming_the_violation(stack, tmp_path):
    config = pack_config.for_stack(stack.project, "local")
    config["minimum-redundancy"]["environments"]["local"]["minHostsPerZone"] = 2
    run = with_pack(stack, config, tmp_path)
    assert run.returncode != 0
    assert ("minimum-redundancy: aws zone a (local-aws-a-0): 1 host(s), local needs at least 2 "
            "per zone") in run.stdout


def test_the_pack_refuses_a_world_open_admin_range_naming_the_violation(stack, tmp_path):
    # Wide enough for the pack, not the whole internet the config loader refuses outright.
    stack.set_config("skyfleet:adminRanges[0]", "0.0.0.0/1", path=True)
    stack.set_config("skyfleet:adminRanges[1]", "128.0.0.0/1", path=True)
    try:
        run = with_pack(stack, pack_config.for_stack(stack.project, "local"), tmp_path)
    finally:
        stack.remove_config("skyfleet:adminRanges")
    assert run.returncode != 0
    assert ("no-world-open-agent-ports: network (pulumi-python:dynamic/skyfleet:LocalNetwork): "
            "ingress[0] opens the agent/admin port") in run.stdout
    assert "0.0.0.0/1, 128.0.0.0/1" in run.stdout


def test_the_exported_state_holds_no_private_key(stack):
    run = pulumi(stack, "stack", "export", "--show-secrets")
    assert run.returncode == 0, run.stderr
    assert "PRIVATE KEY" not in run.stdout
    assert '"type": "pulumi-python:dynamic/skyfleet:LocalAgent"' in run.stdout


def test_destroy_leaves_no_process_and_nothing_of_the_agents(stack):
    outputs = stack.outputs()
    step = stack.destroy()
    assert step.changes.get("delete") == 14
    assert alive(outputs) == []
    assert ops.leftovers(outputs) == []
    state = outputs.state_dir
    assert not list((state / "agents").glob("*.toml"))
    assert not list((state / "state").glob("*"))
    assert not (state / "policy" / "source" / "policy.json").exists()
    # Everything the engine wrote is inside the copy's .skyfleet folder.
    assert not (Path.home() / ".pulumi" / "workspaces").exists() or not [
        p for p in (Path.home() / ".pulumi" / "workspaces").iterdir()
        if str(stack.project.name) in p.name]


@pytest.mark.parametrize("name", ["local", "dev", "staging", "prod"])
def test_the_cli_finds_no_configuration_missing_in_any_committed_stack(name, tmp_path):
    """`pulumi preview` checks the stack file against Pulumi.yaml before the program runs.
    The local stack previews cleanly; a cloud stack gets past the check to the program,
    which asks for its first secret by name (no provider plugin could run it further)."""
    project = make_project(tmp_path / "p", stacks=(name,), network="loopback") \
        if name == "local" else make_project(tmp_path / "p", stacks=(name,))
    env = {**os.environ, **engine_env(project)}
    (project / ".skyfleet" / "pulumi").mkdir(parents=True)
    if name != "local":
        env["PULUMI_CONFIG_PASSPHRASE"] = "test"
    cli = str(REPO_ROOT / ".venv" / "bin" / "pulumi")
    init = subprocess.run([cli, "stack", "init", name, "--non-interactive"], cwd=project,
                          env=env, capture_output=True, text=True, timeout=120)
    assert init.returncode == 0, init.stdout + init.stderr
    run = subprocess.run([cli, "preview", "-s", name, "--non-interactive", "--color", "never"],
                         cwd=project, env=env, capture_output=True, text=True, timeout=300)
    out = run.stdout + run.stderr
    assert "missing configuration" not in out
    if name == "local":
        assert run.returncode == 0, out
    else:
        assert run.returncode != 0
        assert "skyfleet:fleetSigningKey" in out and "pulumi config set --secret" in out
