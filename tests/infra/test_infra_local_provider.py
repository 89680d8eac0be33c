"""The local stack's dynamic providers, called directly (mocks never call them)."""

from __future__ import annotations

import importlib.util
import json
import socket
from ipaddress import IPv4Address, IPv4Network
from pathlib import Path

import pytest

from infra.bootstrap import render_agent_config
from infra.components.local_hosts import LocalAgentProvider, _pid_alive, local_files
from infra.components.policy_publication import LocalPolicyFileProvider
from infra.topology import HostSpec
from skyfleet.policy.signing import generate_signing_key
from skyfleet.security.certs import create_ca, issue_node_cert


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


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.realproc
@pytest.mark.skipif(
    importlib.util.find_spec("skyfleet.cli.agent") is None,
    reason="`skyfleet agent run` does not exist yet (runtime/skyfleet/cli/agent.py missing)",
)
def test_local_agent_create_read_delete_runs_a_real_agent(tmp_path: Path):
    port = _free_port()
    host = HostSpec(name="aws-a-0", cloud="aws", region="local", zone="a",
                    subnet=IPv4Network("127.0.0.0/8"), address=IPv4Address("127.0.0.1"),
                    port=port, metrics_port=_free_port(), seed=True)
    ca_cert, ca_key = create_ca("test local CA")
    cert, key = issue_node_cert(ca_cert, ca_key, host.name, ["127.0.0.1"])
    _, public = generate_signing_key()
    node_dir = tmp_path / "nodes" / host.name
    config = render_agent_config(host, (), local_files(node_dir, tmp_path / "policy.json"),
                                 profile="local", environment="local")
    props = {"node_name": host.name, "dir": str(node_dir), "endpoint": host.endpoint,
             "config": config, "ca_pem": ca_cert.decode(), "cert_pem": cert.decode(),
             "key_pem": key.decode(), "trusted_key_pem": public.decode()}
    provider = LocalAgentProvider()
    created = provider.create(props)
    try:
        pid = int(created.id)
        assert _pid_alive(pid)
        assert provider.read(created.id, created.outs).id == created.id
    finally:
        provider.delete(created.id, created.outs)
    assert not _pid_alive(pid)
    assert provider.read(created.id, created.outs).id == ""
    assert json.dumps(created.outs["node_name"]) == '"aws-a-0"'
