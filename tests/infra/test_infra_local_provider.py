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

from infra.components.local_hosts import LocalAgentProvider
from infra.components.policy_publication import LocalPolicyFileProvider
from infra.publication import POLICY_OBJECT, envelope_text
from skyfleet.client import AgentClient, AgentError, tls_files_in
from skyfleet.localfleet.layout import FleetLayout
from skyfleet.localfleet.procs import runs_agent
from skyfleet.policy.signing import sign_policy
from skyfleet.transport.tls import TlsMaterial
from tests.infra.mocks import REPO_ROOT


def test_local_policy_file_create_update_read_delete(tmp_path):
    provider = LocalPolicyFileProvider()
    path = tmp_path / "policy" / "current.json"
    created = provider.create({"path": str(path), "content": '{"v":1}'})
    assert path.read_text() == '{"v":1}'
    provider.update(created.id, created.outs, {"path": str(path), "content": '{"v":2}'})
    assert provider.read(created.id, created.outs).outs["content"] == '{"v":2}'
    provider.delete(created.id, created.outs)
    assert not path.exists()
    assert provider.read(created.id, created.outs).outs["content"] == ""


def agent_props(state_dir: Path, port: int, **changes: Any) -> dict[str, Any]:
    layout = FleetLayout(state_dir)
    layout.ensure_ca()
    props = {
        "node_name": "aws-a-0", "cloud": "aws", "region": "local", "zone": "a",
        "environment": "local", "endpoint": f"127.0.0.1:{port}", "seeds": [],
        "profile": "local", "state_dir": str(state_dir),
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


def publish_policy(layout: FleetLayout, version: int) -> None:
    """What the local stack's PolicyPublication does: sign with the fleet key, write the
    envelope into the folder the agents watch."""
    document = json.loads((REPO_ROOT / "policies" / "default.json").read_text())
    document["version"] = version
    envelope = sign_policy(document, layout.signing_key.read_bytes())
    path = layout.policy_source / POLICY_OBJECT
    LocalPolicyFileProvider().create({"path": str(path), "content": envelope_text(envelope)})


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
    publish_policy(layout, 3)
    provider = LocalAgentProvider()
    created = provider.create(props)
    pid = int(created.id)
    later = LocalAgentProvider()  # what the next `pulumi up` runs: knows only the pid
    try:
        for path in (layout.tls / "aws-a-0.pem", layout.tls / "aws-a-0.key",
                     layout.config_path("aws-a-0"), tmp_path / "state" / "aws-a-0",
                     tmp_path / "logs" / "aws-a-0.log"):
            assert path.exists(), path
        assert created.outs["config"] == str(layout.config_path("aws-a-0"))
        await wait_for_version(layout, props["endpoint"], "aws-a-0", 3)
        publish_policy(layout, 4)  # a rollout: `pulumi up` rewrites the watched file
        await wait_for_version(layout, props["endpoint"], "aws-a-0", 4)
        assert later.read(created.id, created.outs).id == created.id
    finally:
        later.delete(created.id, created.outs)
    assert not runs_agent(pid, created.outs["config"])
    assert provider.read(created.id, created.outs).id == ""
    assert later.read(created.id, created.outs).id == ""
