"""The local stack's dynamic providers, called directly (mocks never call them)."""

from __future__ import annotations

import asyncio
import json
import os
import socket
import time
from pathlib import Path
from typing import Any

import pytest

from infra.components.local_hosts import LocalAgentProvider, LocalFleetReadyProvider
from infra.components.local_policy import LocalPolicyFileProvider
from infra.publication import POLICY_OBJECT, policy_hash
from skyfleet.client import AgentClient, AgentError, tls_files_in
from skyfleet.localfleet.layout import FleetLayout
from skyfleet.localfleet.procs import runs_agent
from skyfleet.policy.envelope import wire_text
from skyfleet.policy.signing import sign_policy
from skyfleet.transport.tls import TlsMaterial
from tests.infra.mocks import REPO_ROOT


def policy_props(path: Path, version: int, content: str = "{}", **extra: Any) -> dict[str, Any]:
    return {"path": str(path), "content": content, "version": version,
            "hash": f"h{version}", "endpoints": {}, "state_dir": str(path.parent), **extra}


def test_local_policy_file_create_update_read_delete(tmp_path):
    provider = LocalPolicyFileProvider()
    path = tmp_path / "policy" / "current.json"
    created = provider.create(policy_props(path, 1, '{"v":1}'))
    assert path.read_text() == '{"v":1}'
    # No agent to wait for (endpoints {}): the update is the write.
    provider.update(created.id, created.outs, policy_props(path, 2, '{"v":2}'))
    assert provider.read(created.id, created.outs).outs["content"] == '{"v":2}'
    provider.delete(created.id, created.outs)
    assert not path.exists()
    assert provider.read(created.id, created.outs).outs["content"] == ""


@pytest.mark.parametrize(
    ("old", "new", "refused"),
    [
        (None, (1, "h1"), None),                      # a new stack publishes anything
        ((1, "h1"), (2, "h2"), None),                 # forward
        ((2, "h2"), (2, "h2"), None),                 # nothing changes
        ((2, "h2"), (1, "h1"), "1 is older than the published version 2"),
        ((2, "h2"), (2, "hX"), "version 2 is already published with another document"),
    ],
)
def test_check_refuses_a_rollout_backwards_or_a_second_document_under_one_version(
        tmp_path, old, new, refused):
    olds = {} if old is None else {"version": old[0], "hash": old[1]}
    news = {**policy_props(tmp_path / "p.json", new[0]), "hash": new[1]}
    failures = LocalPolicyFileProvider().check(olds, news).failures
    if refused is None:
        assert failures == []
    else:
        (failure,) = failures
        assert failure.property == "version"
        assert failure.reason.startswith("skyfleet:policyVersion: ") and refused in failure.reason


def test_an_update_waits_for_agents_that_never_adopt_and_names_them(tmp_path, monkeypatch):
    from infra.components import local_policy

    monkeypatch.setattr(local_policy, "ROLLOUT_TIMEOUT", 0.3)
    monkeypatch.setattr(local_policy, "lagging", lambda endpoints, tls, version: [
        f"{n} (runs v1)" for n in sorted(endpoints)])
    path = tmp_path / "p.json"
    old = policy_props(path, 1, endpoints={"a": "127.0.0.1:1"})
    with pytest.raises(RuntimeError, match=r"policy v2 written to .*: a \(runs v1\)"):
        LocalPolicyFileProvider().update("x", old, {**old, "version": 2, "hash": "h2"})
    assert path.exists()  # written: the agents that did adopt keep v2


def agent_props(state_dir: Path, port: int, **changes: Any) -> dict[str, Any]:
    layout = FleetLayout(state_dir)
    layout.ensure_ca()
    props = {
        "node_name": "aws-a-0", "cloud": "aws", "region": "local", "zone": "a",
        "environment": "local", "endpoint": f"127.0.0.1:{port}", "seeds": [],
        "profile": "local", "state_dir": str(state_dir), "netns": "", "metrics_port": 0,
        "ca_cert_pem": (layout.tls / "ca.pem").read_text(),
        "trusted_key_pem": (layout.policy / "fleet.pub").read_text(),
    }
    props.update(changes)
    return props


def test_any_input_change_replaces_the_agent_stopping_the_old_one_first(tmp_path):
    provider = LocalAgentProvider()
    old = agent_props(tmp_path, 7470)
    assert not provider.diff("1", old, dict(old)).changes
    new = {**old, "seeds": ["127.0.0.1:7471"], "ca_cert_pem": "another CA"}
    diff = provider.diff("1", old, new)
    assert diff.changes
    assert sorted(diff.replaces) == ["ca_cert_pem", "seeds"]
    assert diff.delete_before_replace  # the new agent needs the old one's port


def test_handlers_left_at_the_default_replace_no_agent_of_an_older_state(tmp_path):
    """A state written before `handlers` was an input has none: the default (None) is no
    change, a configured list replaces the agent (it must restart to serve it)."""
    provider = LocalAgentProvider()
    old = agent_props(tmp_path, 7470)
    assert not provider.diff("1", old, {**old, "handlers": None}).changes
    diff = provider.diff("1", old, {**old, "handlers": ["cpu"]})
    assert diff.replaces == ["handlers"]


def test_create_refuses_a_port_already_in_use(tmp_path):
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        props = agent_props(tmp_path, busy.getsockname()[1])
        with pytest.raises(RuntimeError, match=r"aws-a-0: 127\.0\.0\.1:\d+ is already in use"):
            LocalAgentProvider().create(props)
    assert not (tmp_path / "logs").exists()  # nothing was started


def test_read_of_a_pid_that_is_not_the_agent_reports_it_gone(tmp_path):
    """A recycled pid (here: this test's own process) is never taken for the agent."""
    props = {**agent_props(tmp_path, 7470), "config": str(tmp_path / "agents" / "x.toml")}
    assert LocalAgentProvider().read(str(os.getpid()), props).id == ""
    assert LocalAgentProvider().read("not-a-pid", props).id == ""


def publish_policy(layout: FleetLayout, version: int, old: dict[str, Any] | None = None,
                   endpoints: dict[str, str] | None = None) -> dict[str, Any]:
    """What the local stack's LocalPolicyFile does: the envelope signed with the fleet key,
    written into the folder the agents watch (an update waits for the agents)."""
    document = json.loads((REPO_ROOT / "policies" / "default.json").read_text())
    document["version"] = version
    envelope = sign_policy(document, layout.signing_key.read_bytes())
    props = {"path": str(layout.policy_source / POLICY_OBJECT),
             "content": wire_text(envelope), "version": version,
             "hash": policy_hash(document), "endpoints": endpoints or {},
             "state_dir": str(layout.root)}
    provider = LocalPolicyFileProvider()
    if old is None:
        return provider.create(props).outs
    return provider.update(props["path"], old, props).outs


async def own_policy_version(layout: FleetLayout, endpoint: str, name: str) -> int | None:
    tls = TlsMaterial.load(tls_files_in(layout.tls, "admin"))
    async with AgentClient(endpoint, tls, agent_name=name) as client:
        try:
            _, rows = await client.list_members(timeout=2.0)
        except AgentError:
            return None
    return next((r.policy_version for r in rows if r.name == name), None)


async def wait_for_version(layout: FleetLayout, endpoint: str, name: str, version: int,
                           timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    seen = None
    while time.monotonic() < deadline:
        seen = await own_policy_version(layout, endpoint, name)
        if seen == version:
            return
        await asyncio.sleep(0.1)
    raise AssertionError(f"{name} still on policy {seen}, expected {version}")


@pytest.mark.realproc
async def test_local_agent_runs_in_the_fleet_layout_and_adopts_the_published_policy(
    tmp_path: Path, free_ports
):
    (port,) = free_ports(1)
    props = agent_props(tmp_path, port)
    layout = FleetLayout(tmp_path)
    published = publish_policy(layout, 3, endpoints={"aws-a-0": props["endpoint"]})
    created = LocalAgentProvider().create(props)
    pid = int(created.id)
    agents = {"aws-a-0": {**{k: created.outs[k] for k in ("pid", "config", "log")},
                          "endpoint": props["endpoint"]}}
    ready = {"agents": agents, "state_dir": str(tmp_path)}
    later = LocalAgentProvider()  # what the next `pulumi up` runs: knows only the pid
    try:
        # LocalFleetReady returns once the fleet (of one) answers and sees itself alive.
        await asyncio.to_thread(LocalFleetReadyProvider().create, ready)
        for path in (layout.tls / "aws-a-0.pem", layout.tls / "aws-a-0.key",
                     layout.config_path("aws-a-0"), tmp_path / "state" / "aws-a-0",
                     tmp_path / "logs" / "aws-a-0.log"):
            assert path.exists(), path
        assert created.outs["config"] == str(layout.config_path("aws-a-0"))
        await wait_for_version(layout, props["endpoint"], "aws-a-0", 3)
        # A rollout: the update rewrites the watched file and returns once the agent runs it.
        await asyncio.to_thread(publish_policy, layout, 4, published,
                                {"aws-a-0": props["endpoint"]})
        assert await own_policy_version(layout, props["endpoint"], "aws-a-0") == 4
        assert later.read(created.id, created.outs).id == created.id
        assert LocalFleetReadyProvider().read("ready", ready).id == "ready"
    finally:
        later.delete(created.id, created.outs)
    assert not runs_agent(pid, created.outs["config"])
    assert later.read(created.id, created.outs).id == ""
    assert LocalFleetReadyProvider().read("ready", ready).id == ""  # an agent of it died
    # A deleted agent leaves its log and nothing else: a new one of that name starts clean.
    assert not layout.config_path("aws-a-0").exists()
    assert not (tmp_path / "state" / "aws-a-0").exists()
    assert not (layout.tls / "aws-a-0.key").exists()
    assert (tmp_path / "logs" / "aws-a-0.log").exists()


@pytest.mark.realproc
def test_fleet_ready_reports_an_agent_that_exits_during_start_with_its_log(tmp_path):
    log = tmp_path / "x.log"
    log.write_text("config error: boom\n")
    ready = {"agents": {"x": {"pid": 2**22 + 1, "config": str(tmp_path / "x.toml"),
                              "log": str(log), "endpoint": "127.0.0.1:1"}},
             "state_dir": str(tmp_path)}
    FleetLayout(tmp_path).ensure_ca()
    with pytest.raises(RuntimeError, match=r"agent x exited during start:\nconfig error: boom"):
        LocalFleetReadyProvider().create(ready)
