"""The `local` stack through the whole program under mocks: 9 agents as 3 clouds x 3 zones
in the local fleet's layout, one policy publication into the folder they watch, and
nothing in any cloud."""

from __future__ import annotations

import json
import tomllib
from collections import Counter
from pathlib import Path

import yaml

from infra.components.local_hosts import agent_spec
from skyfleet.config.agent import parse_agent_config, render_agent_config
from skyfleet.localfleet.layout import FleetLayout
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
        assert config[f"skyfleet:{cloud}HostsPerZone"] == "1"  # as `pulumi config set` writes it


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
    (policy,) = run.mocks.dynamic("LocalPolicyFile")
    path = Path(policy.inputs["path"])
    assert path.parent == layout.policy_source and path.suffix == ".json"
    envelope = json.loads(policy.inputs["content"])
    document = verify_envelope(envelope, [(layout.policy / "fleet.pub").read_bytes()])
    assert document.version == policy.inputs["version"] == run.exports["policyVersion"] == 1
    assert policy.inputs["hash"] == run.exports["policyHash"]
    assert run.exports["policyLocations"] == {"local": f"file:{path}"}
    # An update waits for these agents to run the new version.
    assert policy.inputs["endpoints"] == run.exports["endpoints"]


def test_local_stack_creates_nothing_in_any_cloud(stack_runs):
    run = stack_runs("local")
    cloud = [r for r in run.mocks.resources if r.typ.startswith(CLOUD_PREFIXES)]
    assert cloud == []
    # Certificates are FleetLayout's files, not Pulumi state.
    assert run.mocks.dynamic("NodeCertificate") == []
    kinds = {r.typ for r in run.mocks.resources}
    assert kinds == {"skyfleet:infra:LocalHosts", f"{DYNAMIC}/skyfleet:LocalNetwork",
                     f"{DYNAMIC}/skyfleet:LocalPolicyFile", f"{DYNAMIC}/skyfleet:LocalAgent",
                     f"{DYNAMIC}/skyfleet:LocalFleetReady"}


def test_local_network_admits_the_agent_ports_from_the_fleet_this_machine_and_admins_only(
        stack_runs):
    run = stack_runs("local")
    (network,) = run.mocks.dynamic("LocalNetwork")
    assert network.inputs["ingress"] == [
        {"ports": [7470, 7478], "sources": ["fleet", "host"]},
        {"ports": [9470, 9478], "sources": ["fleet", "host"]},
    ]
    assert [a for a, _ in network.inputs["agents"]] == list(run.exports["endpoints"])


def test_the_fleet_is_ready_once_every_agent_of_the_stack_is(stack_runs):
    run = stack_runs("local")
    (ready,) = run.mocks.dynamic("LocalFleetReady")
    assert sorted(ready.inputs["agents"]) == sorted(run.exports["endpoints"])
    assert all(a["endpoint"] == run.exports["endpoints"][n]
               for n, a in ready.inputs["agents"].items())


def test_a_mixed_local_stack_renders_each_clouds_handlers(stack_secrets, tmp_path):
    """`skyfleet:<cloud>Handlers` reaches each local agent's TOML (`[tasks] handlers`), and
    a cloud left at the default is written as before the key, without a [tasks] table."""
    config = stack_file_config("local")
    config["skyfleet:awsHandlers"] = json.dumps(["cpu", "echo"])
    config["skyfleet:azureHandlers"] = json.dumps(["echo"])
    write_policy(tmp_path, config)
    run = run_stack("local", config, stack_secrets, tmp_path)
    layout = layout_of(run)
    texts = {a.inputs["cloud"] + "-" + a.inputs["zone"]:
             render_agent_config(layout.agent_config(agent_spec(a.inputs)), layout.agents)
             for a in run.mocks.dynamic("LocalAgent")}
    assert len(texts) == 9
    for name, text in texts.items():
        cloud = name.split("-")[0]
        expected = {"aws": '[tasks]\nhandlers = ["cpu", "echo"]\n',
                    "azure": '[tasks]\nhandlers = ["echo"]\n'}.get(cloud)
        if expected is None:
            assert "[tasks]" not in text
        else:
            assert expected in text
        parsed = parse_agent_config(tomllib.loads(text), layout.agents)
        assert parsed.tasks.handlers == {"aws": ("cpu", "echo"), "azure": ("echo",)}.get(cloud)


def test_the_committed_local_stack_points_every_agent_at_the_stand_in_model(stack_runs):
    """`skyfleet:handlerSettings` reaches each local agent's TOML as its
    `[handlers.assistant]` table, `{host}` filled in with this machine as the agents reach
    it (loopback under mocks; the root namespace's address in the fleet's block on netns)."""
    run = stack_runs("local")
    layout = layout_of(run)
    for agent in run.mocks.dynamic("LocalAgent"):
        text = render_agent_config(layout.agent_config(agent_spec(agent.inputs)), layout.agents)
        parsed = parse_agent_config(tomllib.loads(text), layout.agents)
        assert parsed.handler_config == {
            "assistant": {"base_url": "http://127.0.0.1:7490/v1", "model": "standin"}}


def test_an_agent_that_does_not_serve_a_handler_gets_no_table_for_it(stack_secrets, tmp_path):
    """An agent refuses a table for a handler it does not serve; no settings at all is
    absent from the agent's inputs, as in states written before the key (no replacement)."""
    config = stack_file_config("local")
    config["skyfleet:awsHandlers"] = json.dumps(["echo"])
    write_policy(tmp_path, config)
    run = run_stack("local", config, stack_secrets, tmp_path)
    for agent in run.mocks.dynamic("LocalAgent"):
        settings = agent.inputs.get("handler_settings")
        if agent.inputs["cloud"] == "aws":
            assert settings is None
            assert agent_spec(agent.inputs).handler_config == {}
        else:
            assert set(settings) == {"assistant"}
